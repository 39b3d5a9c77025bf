/**
 * Converting a data directory of storage layout 1 (one `data.parquet` per month, per year for
 * 1d, every file carrying `symbol` and `timeframe`) to layout 2 in place, and telling the layouts
 * apart (see storage/layout.ts for layout 2).
 *
 * Each layout-1 file is converted on its own, under the lock of its layout-2 partition (and of
 * its layout-1 folder, for a writer of an older build): its rows are written without `symbol` and
 * `timeframe`, sorted by ts, to a temp file in the layout-2 partition, which is fsynced, read back
 * and compared with the old file (row count and a checksum of every value), renamed to its final
 * name and committed to the manifest. Only then is the old file deleted.
 *
 * What is done is told by the manifest alone: a layout-1 file is converted once a manifest row
 * with a `migrate-` job id sits in its layout-2 partition within the file's period (its month, or
 * its year for 1d; layout 1 put every bar in the file of its trading date, and this is checked),
 * since months are disjoint at most one old file matches a row. So a kill -9 at any point leaves
 * one of: a temp or renamed file without a row (an orphan: removed, the file converted again), or
 * a committed row beside the old file (checked again against the old file, which is then deleted).
 * `layout.json` is written last; until then every write command refuses the directory.
 *
 * @module
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { dirname, join } from "node:path";
import { StorageError, UsageError } from "../core/errors.ts";
import { shellCommand } from "../core/format.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { checkParquetFile, readerReason } from "./corrupt.ts";
import { storageErrorOf } from "./disk.ts";
import { sqlString } from "./duckdb.ts";
import { fsyncDir, fsyncFile, ifFound, pathExists, subdirs } from "./fs.ts";
import {
  hasParquetFile,
  LAYOUT_FILE,
  LAYOUT_VERSION,
  newFileName,
  partitionDir,
  type PartitionTree,
  TEMP_PREFIX,
} from "./layout.ts";
import { type BarFile, commitFiles } from "./manifest.ts";
import { type MetaStore, newJobId } from "./meta.ts";
import { sqliteWrite } from "./sqlite.ts";

/** The layout of a data directory: 1 (old), 2 (current) or `"empty"` (nothing stored yet). */
export type DataLayout = 1 | 2 | "empty";

/** A file of layout 1, as found by {@link listLayout1Files}. */
export interface Layout1File {
  /** Path relative to the data directory. */
  path: string;
  tree: PartitionTree;
  timeframe: Timeframe;
  symbol: string;
  year: number;
  /** 1-12 for intraday files; absent for daily ones. */
  month?: number;
  /** First and last trading date the file may hold (its month, or its year for 1d). */
  start: string;
  end: string;
  bytes: number;
  /** The layout-2 partition folder its rows go to, relative to the data directory. */
  partition: string;
}

/** Name of every layout-1 file. */
const _V1_FILE = "data.parquet";
/** Job id prefix of the files written by a conversion: the marker that a layout-1 file is done. */
const _JOB_PREFIX = "migrate-";
/** Name of a layout-2 file: `<first>_<last>-<8 hex>.parquet`. */
const _V2_NAME = /^\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}-[0-9a-f]{8}\.parquet$/;
const _TREES: readonly PartitionTree[] = ["bars", "quarantine"];

/**
 * Columns of a layout-2 file with their types, in file order (frozen: this is what layout 2 is,
 * whatever later builds write). Quarantine files add `rule` and `detail`.
 */
const _V2_COLUMNS: readonly [string, string][] = [
  ["ts", "TIMESTAMPTZ"],
  ["open", "DOUBLE"],
  ["high", "DOUBLE"],
  ["low", "DOUBLE"],
  ["close", "DOUBLE"],
  ["volume", "DOUBLE"],
  ["vwap", "DOUBLE"],
  ["trade_count", "BIGINT"],
  ["trading_date", "DATE"],
  ["session", "VARCHAR"],
  ["provider", "VARCHAR"],
  ["feed", "VARCHAR"],
  ["adjustment", "VARCHAR"],
  ["ingest_id", "VARCHAR"],
  ["ingested_at", "TIMESTAMPTZ"],
];
const _QUARANTINE_COLUMNS: readonly [string, string][] = [["rule", "VARCHAR"], [
  "detail",
  "VARCHAR",
]];
const _V2_SCHEMA_VERSION = 2;

/**
 * The layout of `dataDir`: what `layout.json` says; without it 1 when `bars/` or `quarantine/`
 * holds any Parquet file (layout-1 files, or the rest of a conversion that was interrupted before
 * it wrote `layout.json`), else `"empty"`. Throws when `layout.json` cannot be read or names a
 * layout newer than this build's.
 */
export async function detectLayout(dataDir: string): Promise<DataLayout> {
  const path = join(dataDir, LAYOUT_FILE);
  const text = await ifFound(Deno.readTextFile(path));
  if (text === undefined) {
    for (const tree of _TREES) {
      if (await hasParquetFile(join(dataDir, tree))) return 1;
    }
    return "empty";
  }
  let layout: unknown;
  try {
    layout = (JSON.parse(text) as { layout?: unknown })?.layout;
  } catch {
    layout = undefined;
  }
  if (layout !== 1 && layout !== 2) {
    if (Number.isInteger(layout) && (layout as number) > LAYOUT_VERSION) {
      throw new Error(
        `${dataDir} uses storage layout ${layout}, written by a newer MarketPipe (this build knows ${LAYOUT_VERSION}): upgrade marketpipe`,
      );
    }
    throw new Error(`Cannot read ${path}: expected {"layout": ${LAYOUT_VERSION}}`);
  }
  return layout;
}

/**
 * Throws a {@link UsageError} when `dataDir` is of layout 1: write commands call this before
 * they write anything, so layouts never mix.
 */
export async function assertLayoutCurrent(dataDir: string): Promise<void> {
  if (await detectLayout(dataDir) !== 1) return;
  throw new UsageError(
    `${dataDir} uses storage layout 1; run "${
      shellCommand(["marketpipe", "migrate", "--data-dir", dataDir])
    }" to convert it (nothing was written)`,
  );
}

/** Records in `<dataDir>/layout.json` that the directory is of the current layout (atomically). */
export async function writeLayoutFile(dataDir: string): Promise<void> {
  const temp = join(dataDir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
  try {
    await Deno.writeTextFile(temp, `${JSON.stringify({ layout: LAYOUT_VERSION })}\n`, {
      createNew: true,
    });
    await fsyncFile(temp);
    await Deno.rename(temp, join(dataDir, LAYOUT_FILE));
    await fsyncDir(dataDir);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw storageErrorOf(error, join(dataDir, LAYOUT_FILE)) ?? error;
  }
}

/**
 * Every layout-1 file under `<dataDir>/bars` and `<dataDir>/quarantine`, by tree, timeframe
 * (shortest first), symbol and period. Other files are not listed.
 */
export async function listLayout1Files(dataDir: string): Promise<Layout1File[]> {
  const out: Layout1File[] = [];
  for (const tree of _TREES) {
    const byTimeframe = new Map<string, string>();
    for (const name of await subdirs(join(dataDir, tree))) {
      const timeframe = name.slice("timeframe=".length);
      if (name.startsWith("timeframe=") && isTimeframe(timeframe)) {
        byTimeframe.set(timeframe, name);
      }
    }
    for (const timeframe of TIMEFRAMES) {
      const tfName = byTimeframe.get(timeframe);
      if (tfName === undefined) continue;
      for (const symbolName of await subdirs(join(dataDir, tree, tfName))) {
        if (!symbolName.startsWith("symbol=") || symbolName === "symbol=") continue;
        const symbol = symbolName.slice("symbol=".length);
        for (const yearName of await subdirs(join(dataDir, tree, tfName, symbolName))) {
          const year = /^year=(\d{4})$/.exec(yearName)?.[1];
          if (year === undefined) continue;
          const yearDir = join(tree, tfName, symbolName, yearName);
          const partition = partitionDir(timeframe, symbol, `${year}-01-01`, tree);
          const base = { tree, timeframe, symbol, year: Number(year), partition };
          if (timeframe === "1d") {
            const bytes = await _fileSize(join(dataDir, yearDir, _V1_FILE));
            if (bytes === undefined) continue;
            out.push({
              path: join(yearDir, _V1_FILE),
              ...base,
              start: `${year}-01-01`,
              end: `${year}-12-31`,
              bytes,
            });
            continue;
          }
          for (const monthName of await subdirs(join(dataDir, yearDir))) {
            const month = /^month=(\d{2})$/.exec(monthName)?.[1];
            if (month === undefined || Number(month) < 1 || Number(month) > 12) continue;
            const path = join(yearDir, monthName, _V1_FILE);
            const bytes = await _fileSize(join(dataDir, path));
            if (bytes === undefined) continue;
            const last = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
            out.push({
              path,
              ...base,
              month: Number(month),
              start: `${year}-${month}-01`,
              end: `${year}-${month}-${String(last).padStart(2, "0")}`,
              bytes,
            });
          }
        }
      }
    }
  }
  return out;
}

/** What `migrate --status` and `--dry-run` show about the layout. */
export interface LayoutStatus {
  layout: DataLayout;
  /** Layout-1 files still to convert (none once the layout is 2). */
  files: Layout1File[];
  bytes: number;
}

/** The layout of `dataDir` and the layout-1 files left in it; reads only. */
export async function layoutStatus(dataDir: string): Promise<LayoutStatus> {
  const layout = await detectLayout(dataDir);
  const files = layout === 1 ? await listLayout1Files(dataDir) : [];
  return { layout, files, bytes: files.reduce((sum, file) => sum + file.bytes, 0) };
}

/** A step of converting one file, for {@link MigrateLayoutOptions.onStep}. */
export type MigrateStep = "written" | "renamed" | "committed" | "deleted";

/** Progress of {@link migrateLayout}: after each file. */
export interface MigrateLayoutProgress {
  done: number;
  total: number;
  file: Layout1File;
  rows: number;
}

/** Options of {@link migrateLayout}. */
export interface MigrateLayoutOptions {
  signal?: AbortSignal;
  onProgress?: (progress: MigrateLayoutProgress) => void;
  /**
   * Called after each durable step of each file (the temp file fsynced, renamed, committed, the
   * old file deleted). For the kill tests: a test kills the process here.
   */
  onStep?: (step: MigrateStep, file: Layout1File) => void;
  now?: () => number;
}

/** A layout-1 file that could not be converted; it is left as it was. */
export interface MigrateFailure {
  path: string;
  error: string;
}

/** What {@link migrateLayout} did. */
export interface LayoutMigrationResult {
  /** The layout before the run. */
  layoutBefore: DataLayout;
  /** Whether the directory is now of layout 2 (`layout.json` written). */
  complete: boolean;
  /** Layout-1 files found (a file an older build's writer added meanwhile is found too). */
  total: number;
  /** Files converted (including those an interrupted run had committed but not yet deleted). */
  converted: number;
  /** Of those, files an interrupted run had already committed: checked again and deleted. */
  resumed: number;
  /** Rows compared between old and new files, by row count and checksum. */
  rows: number;
  /** Size of the converted layout-1 files and of the files that replace them. */
  bytesBefore: number;
  bytesAfter: number;
  /** Files left by an interrupted run (temp files, renamed files never committed), removed. */
  orphansRemoved: number;
  /** Aggregation states deleted (they name layout-1 folders); the next aggregate rebuilds. */
  aggregationStatesCleared: number;
  /** Folders left in place because they hold files this conversion does not know. */
  foldersKept: string[];
  failures: MigrateFailure[];
  /** The run stopped at the signal before every file was converted. */
  interrupted: boolean;
  jobId: string;
}

/**
 * Convert every layout-1 file of the data directory to layout 2 (see the module doc), then
 * clear the aggregation states and write `layout.json`. Resumable: a run after a kill or a
 * Ctrl-C finishes the job with no row lost or repeated. A file that cannot be converted is
 * listed in `failures` and left as it was (the layout stays 1); a full or read-only disk stops
 * the run. `meta.db` must be migrated (it needs the `bar_files` table).
 *
 * @example
 * ```ts
 * const { db } = openMigrated(join(dataDir, META_FILE));
 * const meta = new MetaStore(db, { command: "migrate" });
 * const duckdb = await openDuckDB();
 * try {
 *   const result = await migrateLayout({ dataDir, duckdb, meta });
 *   console.log(`${result.converted} files converted, ${result.rows} rows verified`);
 * } finally {
 *   duckdb.closeSync();
 *   meta.close();
 * }
 * ```
 */
export async function migrateLayout(
  store: {
    dataDir: string;
    duckdb: DuckDBInstance;
    meta: Pick<MetaStore, "db" | "lockPartition" | "unlockPartition">;
  },
  options: MigrateLayoutOptions = {},
): Promise<LayoutMigrationResult> {
  const { dataDir, meta } = store;
  const now = options.now ?? Date.now;
  const layoutBefore = await detectLayout(dataDir);
  const result: LayoutMigrationResult = {
    layoutBefore,
    complete: layoutBefore === 2,
    total: 0,
    converted: 0,
    resumed: 0,
    rows: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    orphansRemoved: 0,
    aggregationStatesCleared: 0,
    foldersKept: [],
    failures: [],
    interrupted: false,
    jobId: `${_JOB_PREFIX}${newJobId(now())}`,
  };
  if (layoutBefore === 2) return result;
  if (layoutBefore === "empty") {
    await writeLayoutFile(dataDir);
    result.complete = true;
    return result;
  }

  if (!meta.db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'bar_files'").get()) {
    throw new Error(
      `Cannot convert ${dataDir}: its metadata database has no manifest yet; apply the metadata migrations first`,
    );
  }
  // The states name layout-1 folders as their targets; without them the next aggregate
  // rebuilds every target once. Cleared first, so that no later step depends on them.
  result.aggregationStatesCleared = Number(
    sqliteWrite(meta.db, () => meta.db.prepare("DELETE FROM aggregation_state").run()).changes,
  );
  // Each commit is one file's move from the old layout to the new: make it durable before the
  // old file is deleted, power loss included (WAL mode with synchronous=NORMAL may lose it).
  const synchronous = meta.db.prepare("PRAGMA synchronous").get()?.synchronous;
  meta.db.exec("PRAGMA synchronous = FULL");
  const connection = await store.duckdb.connect();
  try {
    let done = 0;
    // A second pass finds files a writer of an older build added meanwhile (it takes the month
    // locks, not the manifest's): layout.json is written only once a pass finds none.
    for (let files = await listLayout1Files(dataDir); files.length > 0;) {
      result.total += files.length;
      for (const file of files) {
        if (options.signal?.aborted) {
          result.interrupted = true;
          break;
        }
        try {
          const rows = await _convertFile(connection, store, file, result, options, now);
          options.onProgress?.({ done: ++done, total: result.total, file, rows });
        } catch (error) {
          const disk = storageErrorOf(error, join(dataDir, file.partition));
          if (disk) throw disk;
          if (options.signal?.aborted) {
            result.interrupted = true;
            break;
          }
          done++;
          result.failures.push({ path: file.path, error: readerReason(error) });
        }
      }
      if (result.interrupted || result.failures.length > 0) break;
      files = await listLayout1Files(dataDir);
    }
    if (result.interrupted || result.failures.length > 0) return result;
    result.foldersKept = await _removeEmptyMonthFolders(store);
    await writeLayoutFile(dataDir);
    result.complete = true;
    return result;
  } finally {
    connection.closeSync();
    meta.db.exec(`PRAGMA synchronous = ${Number(synchronous ?? 1)}`);
  }
}

/** Convert one layout-1 file under its locks; returns the rows verified (0 when it was gone). */
async function _convertFile(
  connection: DuckDBConnection,
  store: {
    dataDir: string;
    meta: Pick<MetaStore, "db" | "lockPartition" | "unlockPartition">;
  },
  file: Layout1File,
  result: LayoutMigrationResult,
  options: MigrateLayoutOptions,
  now: () => number,
): Promise<number> {
  const { dataDir, meta } = store;
  // For 1d the old folder is the new partition; for intraday an older build's writer of the
  // month locks the month folder.
  const locks = new Set([file.partition, dirname(file.path)]);
  const held: string[] = [];
  try {
    for (const key of locks) {
      await meta.lockPartition(key, { signal: options.signal });
      held.push(key);
    }
    const source = join(dataDir, file.path);
    if (!(await pathExists(source))) return 0; // converted by another migrate meanwhile
    const partition = join(dataDir, file.partition);
    await Deno.mkdir(partition, { recursive: true });
    result.orphansRemoved += await _removeOrphans(meta, dataDir, file.partition);

    const old = await _checksum(connection, source, file, "old");
    if (old.rows > 0 && (old.firstDate < file.start || old.lastDate > file.end)) {
      throw new _Refusal(
        `Cannot convert ${file.path}: it holds trading dates ${old.firstDate} to ${old.lastDate}, outside its partition (${file.start} to ${file.end})`,
      );
    }
    const committed = _committedFiles(meta, file);
    if (committed.length > 0) {
      // An earlier run committed the new file and was stopped before it deleted the old one.
      const stored = await _checksum(
        connection,
        committed.map((path) => join(dataDir, path)),
        file,
        "new",
      );
      if (!_sameRows(old, stored)) {
        throw new _Refusal(
          `Cannot finish converting ${file.path}: its ${old.rows} rows differ from the ${stored.rows} rows of ${
            committed.join(", ")
          }, committed by an earlier run; both are left in place`,
        );
      }
      result.resumed++;
    } else if (old.rows > 0) {
      const temp = join(partition, `${TEMP_PREFIX}${crypto.randomUUID()}`);
      try {
        await _writeV2File(connection, source, temp, file);
        await fsyncFile(temp);
        options.onStep?.("written", file);
        const fresh = await _checksum(connection, temp, file, "new");
        if (!_sameRows(old, fresh)) {
          throw new _Refusal(
            `Cannot convert ${file.path}: the new file does not hold the same values (${old.rows} rows before, ${fresh.rows} after, checksums ${old.xor}/${old.sum} and ${fresh.xor}/${fresh.sum}); the old file is kept`,
          );
        }
        const name = newFileName(fresh.firstDate, fresh.lastDate);
        const target = join(partition, name);
        await Deno.rename(temp, target);
        await fsyncDir(partition);
        options.onStep?.("renamed", file);
        const bytes = (await Deno.stat(target)).size;
        const entry: BarFile = {
          path: join(file.partition, name),
          tree: file.tree,
          timeframe: file.timeframe,
          symbol: file.symbol,
          year: file.year,
          firstDate: fresh.firstDate,
          lastDate: fresh.lastDate,
          rows: fresh.rows,
          minTs: fresh.minTs,
          maxTs: fresh.maxTs,
          bytes,
          jobId: result.jobId,
          createdAt: now(),
        };
        commitFiles(meta.db, [entry], []);
        options.onStep?.("committed", file);
        result.bytesAfter += bytes;
      } finally {
        await Deno.remove(temp).catch(() => {});
      }
    }
    if (committed.length > 0) result.bytesAfter += _committedBytes(meta, committed);
    await Deno.remove(source);
    await fsyncDir(dirname(source));
    options.onStep?.("deleted", file);
    if (file.month !== undefined) await _removeMonthFolder(dirname(source));
    result.converted++;
    result.rows += old.rows;
    result.bytesBefore += file.bytes;
    return old.rows;
  } catch (error) {
    if (error instanceof _Refusal || error instanceof StorageError) throw error;
    if (options.signal?.aborted) throw error;
    const disk = storageErrorOf(error, join(dataDir, file.partition));
    if (disk) throw disk;
    const reason = await checkParquetFile(connection, join(dataDir, file.path)).catch(() =>
      undefined
    );
    if (reason !== undefined) {
      throw new Error(
        `Cannot convert ${file.path}: cannot read the stored file (corrupt Parquet: ${reason}); move it out of the data directory and run "marketpipe migrate" again`,
        { cause: error },
      );
    }
    throw new Error(`Cannot convert ${file.path}: ${readerReason(error)}`, { cause: error });
  } finally {
    for (const key of held.reverse()) {
      try {
        meta.unlockPartition(key);
      } catch {
        // The lock row stays ours until this process closes its store or dies.
      }
    }
  }
}

/** Write the rows of a layout-1 file as a layout-2 file: no symbol/timeframe, sorted by ts, zstd. */
async function _writeV2File(
  connection: DuckDBConnection,
  source: string,
  temp: string,
  file: Layout1File,
): Promise<void> {
  const cast = ([name, type]: [string, string]) => `CAST(${name} AS ${type}) AS ${name}`;
  const columns = [
    ..._V2_COLUMNS.map(cast),
    `CAST(${_V2_SCHEMA_VERSION} AS INTEGER) AS schema_version`,
    ...(file.tree === "quarantine" ? _QUARANTINE_COLUMNS.map(cast) : []),
  ];
  await connection.run(
    `COPY (SELECT ${columns.join(", ")}
       FROM read_parquet(${sqlString(source)}, hive_partitioning = false) ORDER BY ts)
     TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`,
  );
}

/** The columns of a layout-2 file of `tree` but `schema_version`. */
function _v2Columns(tree: PartitionTree): readonly [string, string][] {
  return tree === "quarantine" ? [..._V2_COLUMNS, ..._QUARANTINE_COLUMNS] : _V2_COLUMNS;
}

/** Row count and checksum of every value of a set of rows, with its range. */
interface _Checksum {
  rows: number;
  xor: string;
  sum: string;
  firstDate: string;
  lastDate: string;
  minTs: number;
  maxTs: number;
}

/**
 * Count, `bit_xor` and `sum` of a hash of every value of each row (symbol and timeframe from the
 * file for an old file, from its path for a new one; schema_version, which changes, left out).
 * Two sums of one hash: rows repeated or dropped in pairs do not cancel out in both.
 */
async function _checksum(
  connection: DuckDBConnection,
  paths: string | string[],
  file: Layout1File,
  side: "old" | "new",
): Promise<_Checksum> {
  const values = _v2Columns(file.tree).map(([name, type]) => `CAST(${name} AS ${type})`);
  const keys = side === "old"
    ? ["CAST(symbol AS VARCHAR)", "CAST(timeframe AS VARCHAR)"]
    : ["$symbol::VARCHAR", "$timeframe::VARCHAR"];
  const list = (Array.isArray(paths) ? paths : [paths]).map(sqlString).join(", ");
  const reader = await connection.runAndReadAll(
    `SELECT count(*) AS n, coalesce(bit_xor(h), 0)::VARCHAR AS x,
       coalesce(sum(h::HUGEINT), 0)::VARCHAR AS s,
       strftime(min(trading_date), '%Y-%m-%d') AS first_date,
       strftime(max(trading_date), '%Y-%m-%d') AS last_date,
       epoch_us(min(ts)) AS min_ts, epoch_us(max(ts)) AS max_ts,
       count(*) FILTER (WHERE ts IS NULL OR trading_date IS NULL) AS missing
     FROM (SELECT hash(${[...keys, ...values].join(", ")}) AS h, ts, trading_date
       FROM read_parquet([${list}], hive_partitioning = false))`,
    side === "old" ? {} : { symbol: file.symbol, timeframe: file.timeframe },
  );
  const row = reader.getRowObjectsJson()[0];
  if (Number(row.missing) > 0) {
    throw new _Refusal(
      `Cannot convert ${file.path}: ${row.missing} rows have no ts or trading date`,
    );
  }
  return {
    rows: Number(row.n),
    xor: String(row.x),
    sum: String(row.s),
    firstDate: String(row.first_date),
    lastDate: String(row.last_date),
    minTs: Number(row.min_ts),
    maxTs: Number(row.max_ts),
  };
}

/** A conversion refused for a reason it states: not a read failure to look into further. */
class _Refusal extends Error {}

function _sameRows(a: _Checksum, b: _Checksum): boolean {
  return a.rows === b.rows && a.xor === b.xor && a.sum === b.sum;
}

/** Manifest files a conversion committed for `file` (its partition, within its period). */
function _committedFiles(
  meta: Pick<MetaStore, "db">,
  file: Layout1File,
): string[] {
  return meta.db.prepare(
    `SELECT path FROM bar_files WHERE tree = ? AND timeframe = ? AND symbol = ? AND year = ?
       AND job_id LIKE ? AND first_date >= ? AND last_date <= ? ORDER BY path`,
  ).all(
    file.tree,
    file.timeframe,
    file.symbol,
    file.year,
    `${_JOB_PREFIX}%`,
    file.start,
    file.end,
  ).map((row) => row.path as string);
}

function _committedBytes(meta: Pick<MetaStore, "db">, paths: string[]): number {
  const get = meta.db.prepare("SELECT bytes FROM bar_files WHERE path = ?");
  return paths.reduce((sum, path) => sum + Number(get.get(path)?.bytes ?? 0), 0);
}

/**
 * Remove what a killed writer left in a layout-2 partition (the caller holds its lock): temp
 * files, and files named like layout-2 files that the manifest does not list. Returns how many.
 */
async function _removeOrphans(
  meta: Pick<MetaStore, "db">,
  dataDir: string,
  partition: string,
): Promise<number> {
  const listed = meta.db.prepare("SELECT 1 FROM bar_files WHERE path = ?");
  let removed = 0;
  for await (const entry of Deno.readDir(join(dataDir, partition))) {
    if (!entry.isFile) continue;
    const orphan = entry.name.startsWith(TEMP_PREFIX) ||
      (_V2_NAME.test(entry.name) && listed.get(join(partition, entry.name)) === undefined);
    if (!orphan) continue;
    await Deno.remove(join(dataDir, partition, entry.name));
    removed++;
  }
  if (removed > 0) await fsyncDir(join(dataDir, partition));
  return removed;
}

/**
 * Remove a month folder whose file is gone, with the temp files a killed writer of an older build
 * left in it; true when it is gone, false when it holds other files.
 */
async function _removeMonthFolder(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(TEMP_PREFIX)) {
      await Deno.remove(join(dir, entry.name));
    }
  }
  try {
    await Deno.remove(dir);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    if ((await Array.fromAsync(Deno.readDir(dir))).length > 0) return false;
    throw error;
  }
}

/**
 * The month folders left without a layout-1 file (by a run killed between deleting a file and its
 * folder): removed, under their lock. Returns those kept because they hold other files.
 */
async function _removeEmptyMonthFolders(
  store: { dataDir: string; meta: Pick<MetaStore, "lockPartition" | "unlockPartition"> },
): Promise<string[]> {
  const kept: string[] = [];
  for (const tree of _TREES) {
    for (const tfName of await subdirs(join(store.dataDir, tree))) {
      if (tfName === "timeframe=1d") continue;
      for (const symbolName of await subdirs(join(store.dataDir, tree, tfName))) {
        for (const yearName of await subdirs(join(store.dataDir, tree, tfName, symbolName))) {
          const yearDir = join(tree, tfName, symbolName, yearName);
          for (const monthName of await subdirs(join(store.dataDir, yearDir))) {
            if (!/^month=\d{2}$/.test(monthName)) continue;
            const dir = join(yearDir, monthName);
            await store.meta.lockPartition(dir);
            try {
              if (!(await _removeMonthFolder(join(store.dataDir, dir)))) kept.push(dir);
            } finally {
              store.meta.unlockPartition(dir);
            }
          }
        }
      }
    }
  }
  return kept;
}

async function _fileSize(path: string): Promise<number | undefined> {
  const info = await ifFound(Deno.stat(path));
  return info?.isFile ? info.size : undefined;
}
