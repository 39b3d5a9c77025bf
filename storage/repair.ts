/**
 * `marketpipe repair`: find the Parquet files under `bars/` and `quarantine/` that cannot be read
 * and move them aside to `<data>/corrupt/`, forgetting the ingested days of their partitions so
 * that `gaps` reports those days missing and the next ingest fetches them again. A file is only
 * ever renamed, never rewritten or deleted.
 *
 * @module
 */
import type { DuckDBInstance } from "@duckdb/node-api";
import { dirname, join, relative, sep } from "node:path";
import type { Timeframe } from "../core/types.ts";
import { checkParquetFile } from "./corrupt.ts";
import { fsyncDir, pathExists } from "./fs.ts";
import type { MetaStore } from "./meta.ts";
import { BARS_DIR, parsePartitionPath, QUARANTINE_DIR, walkParquetFiles } from "./layout.ts";
import { type BarFile, commitFiles, listFiles, withManifest } from "./manifest.ts";

/** The folder of the data directory that `repair --move` moves unreadable files into. */
export const CORRUPT_DIR = "corrupt";

/** A stored Parquet file that cannot be read. */
export interface CorruptStoredFile {
  /** Path relative to the data directory, e.g. `bars/timeframe=1m/symbol=AAPL/year=2024/2024-03-01_2024-03-28-1a2b3c4d.parquet`. */
  path: string;
  /** What DuckDB said, one line. */
  reason: string;
  tree: "bars" | "quarantine";
  /** The partition the file belongs to, when its folders follow the layout. */
  partition?: { timeframe: Timeframe; symbol: string; start: string; end: string };
}

/** Outcome of {@link findCorruptFiles}. */
export interface CorruptScan {
  /** Parquet files read. */
  checked: number;
  corrupt: CorruptStoredFile[];
}

/**
 * Reads every Parquet file under `<dataDir>/bars` and `<dataDir>/quarantine` in full (footer and
 * every column) and lists the ones that cannot be read, in path order.
 */
export async function findCorruptFiles(
  dataDir: string,
  duckdb: DuckDBInstance,
  options: { signal?: AbortSignal; onProgress?: (checked: number, total: number) => void } = {},
): Promise<CorruptScan> {
  const files: string[] = [];
  for (const tree of [BARS_DIR, QUARANTINE_DIR]) {
    for (const found of await walkParquetFiles(join(dataDir, tree))) files.push(found.path);
  }
  const corrupt: CorruptStoredFile[] = [];
  // A live file stands for the trading dates the manifest records for it; an orphan for none.
  const live = new Map(
    (await withManifest(dataDir, (db) => listFiles(db), [])).map((file) => [file.path, file]),
  );
  const connection = await duckdb.connect();
  try {
    let checked = 0;
    for (const file of files) {
      options.signal?.throwIfAborted();
      const reason = await checkParquetFile(connection, file);
      if (reason !== undefined) {
        const path = relative(dataDir, file);
        corrupt.push(_describe(path, reason, live.get(path)));
      }
      checked++;
      options.onProgress?.(checked, files.length);
    }
    // A live file that is not on disk (deleted by hand): readers would fail on it.
    const onDisk = new Set(files.map((file) => relative(dataDir, file)));
    for (const [path, file] of live) {
      if (!onDisk.has(path)) corrupt.push(_describe(path, MISSING_REASON, file));
    }
    corrupt.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { checked, corrupt };
  } finally {
    connection.closeSync();
  }
}

/** The reason {@link findCorruptFiles} gives for a live file that is not on disk. */
export const MISSING_REASON = "listed in the manifest as live, but missing on disk";

/** What happened to one file in {@link moveCorruptFiles}. */
export interface MovedFile {
  file: CorruptStoredFile;
  /**
   * `moved` to `movedTo`; `readable` when it read fine under the partition lock (rewritten since
   * the scan) and was left in place; `gone` when it no longer existed (a file the manifest still
   * listed is taken out of it, and its days forgotten).
   */
  outcome: "moved" | "readable" | "gone";
  /** Where it went, relative to the data directory. */
  movedTo?: string;
  /** Ingested-day records removed for its partition (bars only). */
  daysForgotten: number;
}

/**
 * Moves each file to `<dataDir>/corrupt/<its path>` by rename (a numbered name when that is
 * taken), under its partition's lock and after checking it once more. For a `bars/` partition the
 * ingested-day records of the trading dates it holds are removed first, for every source, so a crash
 * in between leaves a file that `repair` finds again rather than days marked stored without data.
 * With `dryRun` nothing changes and `movedTo` says where each would go.
 */
export async function moveCorruptFiles(
  store: {
    dataDir: string;
    duckdb: DuckDBInstance;
    meta: Pick<MetaStore, "lockPartition" | "unlockPartition" | "db">;
  },
  files: readonly CorruptStoredFile[],
  options: { dryRun?: boolean; signal?: AbortSignal } = {},
): Promise<MovedFile[]> {
  const { dataDir, meta } = store;
  const out: MovedFile[] = [];
  const connection = await store.duckdb.connect();
  try {
    for (const file of files) {
      options.signal?.throwIfAborted();
      const source = join(dataDir, file.path);
      if (options.dryRun) {
        const daysForgotten = _days(meta, file, "count");
        if (!(await pathExists(source))) out.push({ file, outcome: "gone", daysForgotten });
        else {
          const target = await _freeTarget(join(dataDir, CORRUPT_DIR, file.path));
          out.push({ file, outcome: "moved", movedTo: relative(dataDir, target), daysForgotten });
        }
        continue;
      }
      const lock = dirname(file.path);
      await meta.lockPartition(lock, { signal: options.signal });
      try {
        if (!(await pathExists(source))) {
          // Still listed as live: take it out of the manifest and forget its days, so they are
          // fetched again; nothing is left to move.
          const listed = meta.db.prepare("SELECT 1 FROM bar_files WHERE path = ?").get(file.path);
          let daysForgotten = 0;
          if (listed !== undefined) {
            daysForgotten = _days(meta, file, "forget");
            commitFiles(meta.db, [], [file.path]);
          }
          out.push({ file, outcome: "gone", daysForgotten });
          continue;
        }
        if (await checkParquetFile(connection, source) === undefined) {
          out.push({ file, outcome: "readable", daysForgotten: 0 });
          continue;
        }
        const daysForgotten = _days(meta, file, "forget");
        // Out of the manifest before it moves: readers stop listing it, and a crash after this
        // leaves an orphan that the next writer of the partition (or repair) deals with.
        commitFiles(meta.db, [], [file.path]);
        const target = await _freeTarget(join(dataDir, CORRUPT_DIR, file.path));
        await Deno.mkdir(dirname(target), { recursive: true });
        await Deno.rename(source, target);
        await fsyncDir(dirname(target));
        await fsyncDir(dirname(source));
        out.push({ file, outcome: "moved", movedTo: relative(dataDir, target), daysForgotten });
      } finally {
        meta.unlockPartition(lock);
      }
    }
    return out;
  } finally {
    connection.closeSync();
  }
}

/** The ingested-day records of the dates a `bars/` file holds: counted, or forgotten (deleted). */
function _days(meta: Pick<MetaStore, "db">, file: CorruptStoredFile, what: "count" | "forget") {
  const { partition } = file;
  if (file.tree !== "bars" || !partition) return 0;
  const where =
    "FROM ingested_days WHERE timeframe = ? AND symbol = ? AND trading_date BETWEEN ? AND ?";
  const params = [partition.timeframe, partition.symbol, partition.start, partition.end];
  return what === "forget"
    ? Number(meta.db.prepare(`DELETE ${where}`).run(...params).changes)
    : Number(meta.db.prepare(`SELECT count(*) AS n ${where}`).get(...params)?.n ?? 0);
}

/** `path`, or `name.1.parquet`, `name.2.parquet` ... when taken: a move never replaces a file. */
async function _freeTarget(path: string): Promise<string> {
  if (!(await pathExists(path))) return path;
  const stem = path.endsWith(".parquet") ? path.slice(0, -".parquet".length) : path;
  for (let n = 1;; n++) {
    const candidate = `${stem}.${n}.parquet`;
    if (!(await pathExists(candidate))) return candidate;
  }
}

/** The tree of a relative file path, and the trading dates it holds when it is a live file. */
function _describe(path: string, reason: string, live: BarFile | undefined): CorruptStoredFile {
  const tree = parsePartitionPath(path)?.tree ??
    (path.split(sep)[0] === QUARANTINE_DIR ? "quarantine" : "bars");
  const file: CorruptStoredFile = { path, reason, tree };
  if (live !== undefined) {
    file.partition = {
      timeframe: live.timeframe,
      symbol: live.symbol,
      start: live.firstDate,
      end: live.lastDate,
    };
  }
  return file;
}
