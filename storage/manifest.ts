/**
 * The manifest: the set of live Parquet files of the data directory, in the `bar_files` table
 * of the metadata database. A file is live once its row is committed, and gone once its row is
 * deleted, so every write, correction and compaction is one SQLite transaction for the readers
 * that go through the manifest (the query views, `/api/bars`, the dashboard). Files on disk
 * without a row are orphans of a killed writer; the next writer of their partition removes them.
 *
 * @module
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { join } from "node:path";
import { parseTimeframe, type Timeframe } from "../core/types.ts";
import { pathExists } from "./fs.ts";
import type { PartitionTree } from "./layout.ts";
import { META_FILE, openReadOnlyDatabase } from "./meta.ts";
import { transaction } from "./sqlite.ts";

/** One live file: where it is, what it holds, and how big it is. */
export interface BarFile {
  /** Path relative to the data directory. */
  path: string;
  tree: PartitionTree;
  timeframe: Timeframe;
  symbol: string;
  year: number;
  /** First and last trading date of its rows (`YYYY-MM-DD`). */
  firstDate: string;
  lastDate: string;
  rows: number;
  /** First and last bar start, epoch microseconds. */
  minTs: number;
  maxTs: number;
  bytes: number;
  /** The job (or aggregation run, compaction) that wrote it. */
  jobId: string | null;
  createdAt: number;
}

/** Which files {@link listFiles} returns; every field narrows. */
export interface FileFilter {
  tree?: PartitionTree;
  timeframe?: Timeframe;
  symbol?: string;
  year?: number;
  /** Only files holding a trading date on or after this one. */
  start?: string;
  /** Only files holding a trading date on or before this one. */
  end?: string;
}

/** Live files matching `filter`, by tree, timeframe, symbol and first date. */
export function listFiles(db: DatabaseSync, filter: FileFilter = {}): BarFile[] {
  const where: string[] = [];
  const values: SQLInputValue[] = [];
  const add = (sql: string, value: SQLInputValue | undefined) => {
    if (value === undefined) return;
    where.push(sql);
    values.push(value);
  };
  add("tree = ?", filter.tree);
  add("timeframe = ?", filter.timeframe);
  add("symbol = ?", filter.symbol);
  add("year = ?", filter.year);
  add("last_date >= ?", filter.start);
  add("first_date <= ?", filter.end);
  add("year >= ?", filter.start === undefined ? undefined : Number(filter.start.slice(0, 4)));
  add("year <= ?", filter.end === undefined ? undefined : Number(filter.end.slice(0, 4)));
  return db.prepare(
    `SELECT * FROM bar_files ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY tree, timeframe, symbol, first_date, path`,
  ).all(...values).map(_fileFrom);
}

/** Absolute paths of the live files matching `filter`. */
export function listFilePaths(
  db: DatabaseSync,
  dataDir: string,
  filter: FileFilter = {},
): string[] {
  return listFiles(db, filter).map((file) => join(dataDir, file.path));
}

/**
 * Makes `add` live and `remove` (relative paths) gone in one transaction. The files of `add`
 * must already be in place under their final names. `also` runs last in the same transaction,
 * for metadata that must change with the files (a prune forgets the days it removed).
 */
export function commitFiles(
  db: DatabaseSync,
  add: readonly BarFile[],
  remove: readonly string[],
  also?: () => void,
) {
  transaction(db, () => {
    db.prepare("UPDATE manifest_version SET version = version + 1 WHERE id = 1").run();
    const drop = db.prepare("DELETE FROM bar_files WHERE path = ?");
    for (const path of remove) drop.run(path);
    const insert = db.prepare(
      `INSERT INTO bar_files (path, tree, timeframe, symbol, year, first_date, last_date, rows,
         min_ts, max_ts, bytes, job_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const file of add) {
      insert.run(
        file.path,
        file.tree,
        file.timeframe,
        file.symbol,
        file.year,
        file.firstDate,
        file.lastDate,
        file.rows,
        file.minTs,
        file.maxTs,
        file.bytes,
        file.jobId,
        file.createdAt,
      );
    }
    also?.();
  });
}

/** A number that grows with every {@link commitFiles}, for readers that cache file lists. */
export function manifestVersion(db: DatabaseSync): number {
  const row = db.prepare("SELECT version FROM manifest_version WHERE id = 1").get();
  return Number(row?.version ?? 0);
}

/**
 * Runs `fn` on a read-only connection to the manifest of `dataDir`; `fallback` when the data
 * directory has no metadata database yet (nothing stored).
 */
export async function withManifest<T>(
  dataDir: string,
  fn: (db: DatabaseSync) => T,
  fallback: T,
): Promise<T> {
  const path = join(dataDir, META_FILE);
  if (!(await pathExists(path))) return fallback;
  const db = openReadOnlyDatabase(path);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Options of {@link listPartitionFiles}. */
export interface PartitionFilesOptions {
  /** Only files holding a trading date on or after this one (`YYYY-MM-DD`); default: all. */
  start?: string;
  /** Only files holding a trading date on or before this one; default: all. */
  end?: string;
}

/**
 * Absolute paths of the live files of `symbol`'s `timeframe` bars (or quarantine) that hold a
 * trading date in [start, end], oldest first. Read from the manifest: no folder is listed.
 */
export async function listPartitionFiles(
  dataDir: string,
  tree: PartitionTree,
  timeframe: Timeframe,
  symbol: string,
  options: PartitionFilesOptions = {},
): Promise<string[]> {
  return await withManifest(
    dataDir,
    (db) => listFilePaths(db, dataDir, { tree, timeframe, symbol, ...options }),
    [],
  );
}

/** Symbols with at least one live file of `timeframe` in `tree`, sorted. */
export async function listStoredSymbols(
  dataDir: string,
  tree: PartitionTree,
  timeframe: Timeframe,
): Promise<string[]> {
  return await withManifest(dataDir, (db) =>
    db.prepare(
      "SELECT DISTINCT symbol FROM bar_files WHERE tree = ? AND timeframe = ? ORDER BY symbol",
    ).all(tree, timeframe).map((row) => row.symbol as string), []);
}

function _fileFrom(row: Record<string, SQLInputValue>): BarFile {
  return {
    path: row.path as string,
    tree: row.tree as PartitionTree,
    timeframe: parseTimeframe(row.timeframe),
    symbol: row.symbol as string,
    year: Number(row.year),
    firstDate: row.first_date as string,
    lastDate: row.last_date as string,
    rows: Number(row.rows),
    minTs: Number(row.min_ts),
    maxTs: Number(row.max_ts),
    bytes: Number(row.bytes),
    jobId: row.job_id === null ? null : row.job_id as string,
    createdAt: Number(row.created_at),
  };
}
