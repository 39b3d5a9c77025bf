import {
  type DuckDBConnection,
  type DuckDBDataChunk,
  DuckDBDoubleType,
  type DuckDBInstance,
  DuckDBIntegerType,
  DuckDBTableFunction,
  type DuckDBType,
  DuckDBUTinyIntType,
  DuckDBVarCharType,
} from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";
import { join } from "node:path";
import type { WriteResult } from "../core/jobs.ts";
import type { Bar, Session, Timeframe } from "../core/types.ts";
import { newFileName, partitionDir, type PartitionTree, TEMP_PREFIX } from "./layout.ts";
import { fsyncDir, fsyncFile } from "./fs.ts";
import { type BarFile, commitFiles, listFiles } from "./manifest.ts";
import type { MetaStore } from "./meta.ts";
import { BAR_COLUMNS, sqlString } from "./duckdb.ts";
import { storageErrorOf } from "./disk.ts";
import { corruptFileError, readerReason } from "./corrupt.ts";

/** Version of the Parquet bar schema written by this build (2: storage v2, no path columns). */
export const SCHEMA_VERSION = 2;

const SESSION_CODES: Record<Session, number> = { pre: 0, regular: 1, post: 2 };

/**
 * Columns of a bar file in layout 2, in file order: the bar columns without the partition keys
 * (`symbol`, `timeframe` and `year` come from the folder names).
 */
export const FILE_COLUMNS: readonly string[] = BAR_COLUMNS
  .map((column) => column.name)
  .filter((name) => name !== "symbol" && name !== "timeframe");

/** Live files per partition from which {@link writeBars} compacts on its own (default). */
export const DEFAULT_COMPACT_THRESHOLD = 16;

/** What {@link writeBars} needs: the data directory, a DuckDB instance and the metadata store. */
export interface PartitionWriter {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: Pick<MetaStore, "lockPartition" | "unlockPartition" | "db">;
  now?: () => number;
  /** Compact a partition once it holds this many live files (0: never). */
  compactThreshold?: number;
}

/** A partition: one folder of immutable files. */
export interface PartitionKey {
  tree: PartitionTree;
  timeframe: Timeframe;
  symbol: string;
  year: number;
}

/** The newest bar start written of one symbol and timeframe (epoch ms). */
export interface NewestBar {
  symbol: string;
  timeframe: Timeframe;
  lastTs: number;
}

const _inProcess = new Map<string, Promise<unknown>>();

/**
 * Store bars in their partitions (timeframe, symbol, year). New days become a new immutable file
 * beside the existing ones; files that hold any of the new bars' days are merged into it (old rows
 * whose key is not among the new bars, plus the new bars, sorted by ts) and replaced, all in one
 * manifest commit. The key (symbol, timeframe, ts) never repeats; the newer ingest wins.
 */
export async function writeBars(
  writer: PartitionWriter,
  bars: readonly Bar[],
  options: {
    jobId: string;
    signal?: AbortSignal;
    /** Called once every partition is written, with the newest bar of each series. */
    onWritten?: (newest: readonly NewestBar[]) => void;
  },
): Promise<WriteResult> {
  // Group by partition and source. Consecutive bars almost always share both, so the key is
  // built only when one of its parts changes, and a group is kept as runs of the input (the
  // input itself when it is one group).
  type Group = {
    key: PartitionKey;
    runs: [number, number][];
    lastTs: number;
    maxTs: number;
    increasing: boolean;
  };
  const groups = new Map<string, Group>();
  let last: Bar | undefined;
  let current: Group | undefined;
  let runStart = 0;
  for (let i = 0; i < bars.length; i++) {
    const bar = bars[i];
    if (
      last === undefined || bar.symbol !== last.symbol || bar.timeframe !== last.timeframe ||
      bar.provider !== last.provider || bar.feed !== last.feed ||
      bar.adjustment !== last.adjustment ||
      (bar.tradingDate !== last.tradingDate &&
        bar.tradingDate.slice(0, 4) !== last.tradingDate.slice(0, 4))
    ) {
      current?.runs.push([runStart, i]);
      runStart = i;
      const id = [
        bar.timeframe,
        bar.symbol,
        bar.tradingDate.slice(0, 4),
        bar.provider,
        bar.feed,
        bar.adjustment,
      ].join("\0");
      current = groups.get(id);
      if (!current) {
        current = {
          key: {
            tree: "bars",
            timeframe: bar.timeframe,
            symbol: bar.symbol,
            year: Number(bar.tradingDate.slice(0, 4)),
          },
          runs: [],
          lastTs: -Infinity,
          maxTs: -Infinity,
          increasing: true,
        };
        groups.set(id, current);
      }
    }
    const group = current!;
    if (group.increasing && group.lastTs >= bar.ts) group.increasing = false;
    if (bar.ts > group.maxTs) group.maxTs = bar.ts;
    group.lastTs = bar.ts;
    last = bar;
  }
  current?.runs.push([runStart, bars.length]);
  const total: WriteResult = { written: 0, replaced: 0, partitions: 0 };
  const newest: NewestBar[] = [];
  const threshold = writer.compactThreshold ?? DEFAULT_COMPACT_THRESHOLD;
  for (const { key, runs, increasing, maxTs } of groups.values()) {
    const groupBars = groups.size === 1 ? bars : runs.flatMap(([from, to]) => bars.slice(from, to));
    // A repeated key in the input keeps only its last bar, so a file never holds the key twice
    // and the counts stay right; strictly increasing input (the usual case) needs no Map.
    const group = increasing ? groupBars : _lastPerTs(groupBars);
    const result = await replacePartition(
      writer,
      key,
      (files) => _mergeBars(writer, files, group, options.jobId, increasing),
      { signal: options.signal, jobId: options.jobId, compactAbove: threshold },
    );
    total.written += result.written;
    total.replaced += result.replaced;
    total.partitions++;
    const series = newest.find((entry) =>
      entry.symbol === key.symbol && entry.timeframe === key.timeframe
    );
    if (!series) newest.push({ symbol: key.symbol, timeframe: key.timeframe, lastTs: maxTs });
    else if (maxTs > series.lastTs) series.lastTs = maxTs;
  }
  options.onWritten?.(newest);
  return total;
}

/** What {@link replacePartition} hands to the function that writes a partition's new file. */
export interface PartitionFiles {
  /** A DuckDB connection of the writer's instance, closed afterwards. */
  connection: DuckDBConnection;
  /** The partition's live files (from the manifest), oldest first. */
  live: readonly BarFile[];
  /** Absolute path of `file` (one of `live`). */
  pathOf(file: BarFile): string;
  /** Absolute path of the temporary file to write; it never ends in `.parquet`. */
  temp: string;
}

/** What the write function of {@link replacePartition} returns. */
export interface PartitionChange<T> {
  value: T;
  /** Live files the new file takes the place of (their rows it kept are in it). */
  replaces: readonly BarFile[];
  /** Whether `temp` was written; a file of no rows is not kept either. */
  wrote: boolean;
  /** Metadata changes to commit in the manifest's transaction (see `commitFiles`). */
  metadata?: () => void;
  /** What the new file holds, when the write knows it exactly; otherwise it is read back. */
  stats?: FileStats;
}

/** Rows, ts range (epoch microseconds) and trading dates of a file. */
export interface FileStats {
  rows: number;
  minTs: number;
  maxTs: number;
  firstDate: string;
  lastDate: string;
}

/**
 * Change one partition atomically: writes of a partition are serialized within the process and
 * locked across processes. Under the lock, files a killed writer left (temp files, and `.parquet`
 * files the manifest does not list) are removed; `write` gets the live files and produces the
 * new file at `temp`, which is fsynced and renamed to its final name (`<first>_<last>-<id>.parquet`);
 * then one manifest transaction makes it live and the replaced files gone, and only then are the
 * replaced files deleted. A reader of the manifest sees the old files or the new one, never both
 * and never neither. When `write` throws, nothing changes, the temp file is removed and the error
 * is wrapped as `Cannot write partition <dir>: <cause>`, or, when a live file cannot be read, a
 * `CorruptFileError` naming it. With `compactAbove`, a partition left with that many live files
 * or more is compacted (see {@link compactPartition}) under the same lock.
 */
export async function replacePartition<T>(
  writer: PartitionWriter,
  key: PartitionKey,
  write: (files: PartitionFiles) => Promise<PartitionChange<T>>,
  options: { signal?: AbortSignal; jobId?: string; compactAbove?: number } = {},
): Promise<T> {
  const relativeDir = partitionDir(key.timeframe, key.symbol, `${key.year}`, key.tree);
  return await _serialized(relativeDir, async () => {
    await writer.meta.lockPartition(relativeDir, { signal: options.signal });
    let failed = false;
    try {
      const change = await _change(writer, key, relativeDir, write, options.jobId ?? null, {
        signal: options.signal,
      });
      const threshold = options.compactAbove ?? 0;
      if (threshold > 0) {
        const live = _liveFiles(writer, key);
        // A partition at the threshold is merged whole; below it, the newest files are merged
        // like a binary counter (see tailMergeCount), so appends stay cheap and files few.
        const merge = live.length >= threshold ? _compactAll : _tailMerge(live);
        if (merge && live.length >= 2) {
          await _change(writer, key, relativeDir, merge, options.jobId ?? null, {
            signal: options.signal,
          });
        }
      }
      return change;
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      _unlock(writer, relativeDir, failed);
    }
  });
}

/** What {@link compactPartition} did. */
export interface CompactResult {
  /** Files merged (0 when the partition had fewer than two). */
  files: number;
  rows: number;
}

/**
 * Merge all live files of a partition into one, sorted by ts, atomically like every write. A
 * partition with one file or none is left as it is.
 */
export async function compactPartition(
  writer: PartitionWriter,
  key: PartitionKey,
  options: { signal?: AbortSignal; jobId?: string } = {},
): Promise<CompactResult> {
  return await replacePartition(writer, key, _compactAll, options);
}

/** Options of {@link compactPartitions}. */
export interface CompactPartitionsOptions {
  tree?: PartitionTree;
  timeframe?: Timeframe;
  symbols?: readonly string[];
  /** Compact partitions with at least this many live files (default 2). */
  minFiles?: number;
  /** Only list what would be compacted. */
  dryRun?: boolean;
  jobId?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** What {@link compactPartitions} did (or would do, with `dryRun`). */
export interface CompactSummary {
  partitions: number;
  filesBefore: number;
  rows: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** Compact every partition of the manifest that matches `options` (see {@link compactPartition}). */
export async function compactPartitions(
  writer: PartitionWriter,
  options: CompactPartitionsOptions = {},
): Promise<CompactSummary> {
  const minFiles = Math.max(2, options.minFiles ?? 2);
  const groups = [
    ...Map.groupBy(
      listFiles(writer.meta.db, { tree: options.tree, timeframe: options.timeframe })
        .filter((file) => options.symbols === undefined || options.symbols.includes(file.symbol)),
      (file) => `${file.tree}|${file.timeframe}|${file.symbol}|${file.year}`,
    ).values(),
  ].map((files) => {
    const { tree, timeframe, symbol, year } = files[0];
    return { key: { tree, timeframe, symbol, year }, files };
  });
  const due = groups.filter((group) => group.files.length >= minFiles);
  if (!options.dryRun) {
    // A partition left with one file can still hold what a killed writer left: clear that too.
    for (const { key, files } of groups) {
      if (files.length >= minFiles) continue;
      const dir = join(
        writer.dataDir,
        partitionDir(key.timeframe, key.symbol, `${key.year}`, key.tree),
      );
      if (await _hasLeftovers(dir, files)) {
        await replacePartition(
          writer,
          key,
          () => Promise.resolve({ value: undefined, replaces: [], wrote: false }),
          options,
        );
      }
    }
  }
  const summary: CompactSummary = {
    partitions: due.length,
    filesBefore: 0,
    rows: 0,
    bytesBefore: 0,
    bytesAfter: 0,
  };
  let done = 0;
  for (const { key, files } of due) {
    options.signal?.throwIfAborted();
    summary.filesBefore += files.length;
    summary.bytesBefore += files.reduce((sum, file) => sum + file.bytes, 0);
    if (options.dryRun) {
      summary.rows += files.reduce((sum, file) => sum + file.rows, 0);
    } else {
      const result = await compactPartition(writer, key, options);
      summary.rows += result.rows;
      summary.bytesAfter += _liveFiles(writer, key).reduce((sum, file) => sum + file.bytes, 0);
    }
    options.onProgress?.(++done, due.length);
  }
  return summary;
}

/**
 * How many of the newest files (by trading date) to merge after an append: the newest file joins
 * the one before it while the run being built is at least half that file's rows, as digits carry
 * in a binary counter. A day appended to a year's file is left alone; a run of small daily files
 * is merged into ever larger ones, so a partition keeps about log2(days) files and a row is
 * rewritten about that many times, never with every append. Files of one job are not merged with
 * each other this way (see `_tailMerge`).
 */
export function tailMergeCount(rows: readonly number[]): number {
  let count = 1;
  let run = rows[rows.length - 1] ?? 0;
  while (count < rows.length && run * 2 >= rows[rows.length - 1 - count]) {
    run += rows[rows.length - 1 - count];
    count++;
  }
  return count >= 2 ? count : 0;
}

/**
 * The merge of the newest files that {@link tailMergeCount} asks for after an append, or
 * undefined when there is none (decided from the manifest, before the folder is touched).
 */
function _tailMerge(
  live: readonly BarFile[],
): ((files: PartitionFiles) => Promise<PartitionChange<CompactResult>>) | undefined {
  const [before, newest] = live.slice(-2);
  // A job that writes many files into a partition (a bulk ingest, month by month) is not slowed
  // by merging its own files again and again: its files wait for a later write, or the threshold.
  if (newest?.jobId != null && before?.jobId === newest.jobId) return undefined;
  const count = tailMergeCount(live.map((file) => file.rows));
  if (count === 0) return undefined;
  // `files.live` is read again under the same lock: the list this was decided from.
  return (files) => _compactAll({ ...files, live: files.live.slice(files.live.length - count) });
}

async function _compactAll(files: PartitionFiles): Promise<PartitionChange<CompactResult>> {
  if (files.live.length < 2) {
    return { value: { files: 0, rows: 0 }, replaces: [], wrote: false };
  }
  const sources = files.live.map((file) => sqlString(files.pathOf(file))).join(", ");
  const copied = await files.connection.run(
    `COPY (SELECT * FROM read_parquet([${sources}], hive_partitioning = false,
       union_by_name = true) ORDER BY ts) TO ${
      sqlString(files.temp)
    } (FORMAT parquet, COMPRESSION zstd)`,
  );
  return {
    value: { files: files.live.length, rows: Number(copied.rowsChanged) },
    replaces: files.live,
    wrote: true,
  };
}

/** One change of a partition under its lock (see {@link replacePartition}). */
async function _change<T>(
  writer: PartitionWriter,
  key: PartitionKey,
  relativeDir: string,
  write: (files: PartitionFiles) => Promise<PartitionChange<T>>,
  jobId: string | null,
  options: { signal?: AbortSignal },
): Promise<T> {
  const dir = join(writer.dataDir, relativeDir);
  const live = _liveFiles(writer, key);
  try {
    await _removeLeftovers(dir, relativeDir, live);
  } catch (error) {
    throw _diskError(error, relativeDir, dir) ?? error;
  }
  const temp = join(dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
  const pathOf = (file: BarFile) => join(writer.dataDir, file.path);
  const connection = await writer.duckdb.connect();
  let final: string | undefined;
  try {
    const change = await write({ connection, live, pathOf, temp });
    let added: BarFile | undefined;
    if (change.wrote) {
      const bytes = await fsyncFile(temp);
      const stats = change.stats ?? await _fileStats(connection, temp);
      if (stats.rows > 0) {
        const name = newFileName(stats.firstDate, stats.lastDate);
        final = join(dir, name);
        await Deno.rename(temp, final);
        await fsyncDir(dir);
        added = {
          path: join(relativeDir, name),
          ...key,
          ...stats,
          bytes,
          jobId,
          createdAt: (writer.now ?? Date.now)(),
        };
      } else {
        await Deno.remove(temp);
      }
    }
    if (added !== undefined || change.replaces.length > 0 || change.metadata) {
      commitFiles(
        writer.meta.db,
        added ? [added] : [],
        change.replaces.map((file) => file.path),
        change.metadata,
      );
      final = undefined; // committed: it stays
      for (const file of change.replaces) {
        // Not in the manifest any more: if it cannot go now, the next writer removes it.
        await Deno.remove(pathOf(file)).catch(() => {});
      }
      if (change.replaces.length > 0) await fsyncDir(dir);
    }
    return change.value;
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    if (final !== undefined) await Deno.remove(final).catch(() => {});
    // A full or read-only disk is not the stored files' fault: say so and name the file.
    const disk = _diskError(error, relativeDir, temp);
    if (disk) throw disk;
    // The usual reason a merge fails is a stored file that cannot be read: name it and leave
    // it alone (a retry would fail the same way; `marketpipe repair` moves it aside).
    const corrupt = live.length > 0 && !options.signal?.aborted
      ? await corruptFileError(connection, live.map(pathOf), error, "Cannot write partition")
        .catch(() => undefined)
      : undefined;
    if (corrupt) throw corrupt;
    throw new Error(`Cannot write partition ${relativeDir}: ${readerReason(error)}`, {
      cause: error,
    });
  } finally {
    connection.closeSync();
  }
}

function _liveFiles(writer: PartitionWriter, key: PartitionKey): BarFile[] {
  return listFiles(writer.meta.db, key);
}

/** Rows, ts range (epoch microseconds) and trading dates of a written file, from its footer. */
async function _fileStats(connection: DuckDBConnection, path: string): Promise<FileStats> {
  const reader = await connection.runAndReadAll(
    `SELECT count(*), epoch_us(min(ts)), epoch_us(max(ts)), strftime(min(trading_date), '%Y-%m-%d'),
       strftime(max(trading_date), '%Y-%m-%d') FROM read_parquet(${sqlString(path)})`,
  );
  const [rows, minTs, maxTs, firstDate, lastDate] = reader.getRows()[0];
  return {
    rows: Number(rows),
    minTs: Number(minTs ?? 0),
    maxTs: Number(maxTs ?? 0),
    firstDate: String(firstDate ?? ""),
    lastDate: String(lastDate ?? ""),
  };
}

/**
 * Release a partition lock. After a failed write (say, on a full disk) the reason it failed is
 * what matters, so an unlock error is dropped then: the lock row stays ours until this process
 * closes the store or dies, and is taken over after that.
 */
function _unlock(writer: PartitionWriter, relativeDir: string, failed: boolean): void {
  try {
    writer.meta.unlockPartition(relativeDir);
  } catch (error) {
    if (!failed) throw error;
  }
}

/** `Cannot write partition <dir>: No space left on device while writing <path>`, or undefined. */
function _diskError(error: unknown, relativeDir: string, path: string): Error | undefined {
  const disk = storageErrorOf(error, path);
  return disk &&
    new Error(`Cannot write partition ${relativeDir}: ${disk.message}`, { cause: disk });
}

async function _serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = _inProcess.get(key) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(fn);
  _inProcess.set(key, run);
  try {
    return await run;
  } finally {
    if (_inProcess.get(key) === run) _inProcess.delete(key);
  }
}

/**
 * Under a partition's lock: the files that hold any day of the new bars are merged with them
 * (their other rows kept) into the temp file, which replaces them.
 */
async function _mergeBars(
  writer: PartitionWriter,
  files: PartitionFiles,
  bars: readonly Bar[],
  jobId: string,
  sorted: boolean,
): Promise<PartitionChange<{ written: number; replaced: number }>> {
  const { connection, temp } = files;
  let firstDate = bars[0].tradingDate;
  let lastDate = firstDate;
  for (const bar of bars) {
    if (bar.tradingDate < firstDate) firstDate = bar.tradingDate;
    if (bar.tradingDate > lastDate) lastDate = bar.tradingDate;
  }
  const overlapping = files.live.filter((file) =>
    file.firstDate <= lastDate && file.lastDate >= firstDate
  );
  const first = bars[0];
  using feed = _feedBars(writer.duckdb, connection, bars);
  let source = feed.source;
  if (overlapping.length > 0) {
    // Merging reads the new bars several times: scan them from JS once, into a table.
    await connection.run(`CREATE TEMP TABLE incoming AS SELECT * FROM ${feed.source}`);
    source = "incoming";
  }
  const ingestedAt = new Date((writer.now ?? Date.now)()).toISOString();
  const incoming = `SELECT
      to_timestamp(ts / 1000) AS ts,
      open, high, low, close, volume, vwap,
      CAST(trade_count AS BIGINT) AS trade_count,
      CAST(DATE '1970-01-01' + day AS DATE) AS trading_date,
      CASE session WHEN 0 THEN 'pre' WHEN 1 THEN 'regular' ELSE 'post' END AS session,
      ${sqlString(first.provider)} AS provider,
      ${sqlString(first.feed)} AS feed,
      ${sqlString(first.adjustment)} AS adjustment,
      ${sqlString(jobId)} AS ingest_id,
      CAST(${sqlString(ingestedAt)} AS TIMESTAMPTZ) AS ingested_at,
      ${SCHEMA_VERSION} AS schema_version
    FROM ${source}`;
  let oldCount = 0;
  let ownReplaced = 0;
  let body = incoming;
  if (overlapping.length > 0) {
    const old = `read_parquet([${
      overlapping.map((file) => sqlString(files.pathOf(file))).join(", ")
    }], hive_partitioning = false) AS old`;
    const counted = await connection.runAndReadAll(
      `SELECT count(*), count(*) FILTER (WHERE ingest_id = ${sqlString(jobId)}) FROM ${old}`,
    );
    oldCount = Number(counted.getRows()[0][0]);
    if (Number(counted.getRows()[0][1]) > 0) {
      // Bars this job already stored (an earlier attempt of a resumed task, killed after its
      // file was committed but before the task was marked done) are new bars of the job, as a
      // clean run reports them, not updates.
      const own = await connection.runAndReadAll(
        `SELECT count(*) FROM ${old} WHERE old.ingest_id = ${sqlString(jobId)}
           AND old.ts IN (SELECT to_timestamp(ts / 1000) FROM incoming)`,
      );
      ownReplaced = Number(own.getRows()[0][0]);
    }
    body = `WITH fresh AS (${incoming})
      SELECT * FROM fresh
      UNION ALL BY NAME
      SELECT ${FILE_COLUMNS.join(", ")} FROM ${old}
      WHERE old.ts NOT IN (SELECT ts FROM fresh)`;
  }
  const ordered = sorted && overlapping.length === 0 ? body : `SELECT * FROM (${body}) ORDER BY ts`;
  const copied = await connection.run(
    `COPY (SELECT ${FILE_COLUMNS.join(", ")} FROM (${ordered})) TO ${
      sqlString(temp)
    } (FORMAT parquet, COMPRESSION zstd)`,
  );
  const after = Number(copied.rowsChanged);
  const replaced = oldCount + bars.length - after - ownReplaced;
  const last = bars[bars.length - 1];
  return {
    value: { written: bars.length - replaced, replaced },
    replaces: overlapping,
    wrote: true,
    // New bars alone, in ts order, all of them written: the file holds exactly these. Whole
    // seconds at both ends make `to_timestamp(ts / 1000)` exact, so the range needs no read.
    stats: overlapping.length === 0 && sorted && after === bars.length &&
        bars[0].ts % 1000 === 0 && last.ts % 1000 === 0
      ? { rows: after, minTs: bars[0].ts * 1000, maxTs: last.ts * 1000, firstDate, lastDate }
      : undefined,
  };
}

/** The columns `_feedBars` gives DuckDB: numbers as JS holds them, the trading date as days. */
const _FEED_COLUMNS: readonly [string, DuckDBType][] = [
  ...["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"].map((
    name,
  ): [string, DuckDBType] => [name, DuckDBDoubleType.instance]),
  ["session", DuckDBUTinyIntType.instance],
  ["day", DuckDBIntegerType.instance],
];
const _FEED_FUNCTION = "marketpipe_bars";
const _feeds = new Map<string, readonly Bar[]>();
const _feedInstances = new WeakSet<DuckDBInstance>();

/**
 * Bars handed to DuckDB as the table function `marketpipe_bars('<key>')` (`source`) until
 * disposed: a statement scans them straight from the JS array, 2048 rows a call, so the COPY of
 * a new file needs no table built first (that append cost as much main-thread time as the rest
 * of the write). The function is registered once per DuckDB instance.
 */
function _feedBars(
  instance: DuckDBInstance,
  connection: DuckDBConnection,
  bars: readonly Bar[],
): { source: string } & Disposable {
  if (!_feedInstances.has(instance)) {
    connection.registerTableFunction(_feedFunction());
    _feedInstances.add(instance);
  }
  const key = crypto.randomUUID();
  _feeds.set(key, bars);
  return {
    source: `${_FEED_FUNCTION}(${sqlString(key)})`,
    [Symbol.dispose]: () => _feeds.delete(key),
  };
}

function _feedFunction(): DuckDBTableFunction {
  return DuckDBTableFunction.create({
    name: _FEED_FUNCTION,
    parameterTypes: [DuckDBVarCharType.instance],
    bindFunction: (info) => {
      const key = String(info.getParameter(0));
      const bars = _feeds.get(key);
      if (bars === undefined) return info.setError(`No bars are being written under ${key}`);
      for (const [name, type] of _FEED_COLUMNS) info.addResultColumn(name, type);
      info.setBindData({ bars });
      info.setCardinality(bars.length, true);
    },
    initFunction: (info) => {
      info.setInitData({ next: 0, lastDate: "", lastDay: 0 });
      info.setMaxThreads(1); // one scan in order: the bars are sorted and stay so
    },
    mainFunction: (info, output) => {
      const { bars } = info.bindData as { bars: readonly Bar[] };
      _fillChunk(bars, info.initData as _FeedState, output);
    },
  });
}

interface _FeedState {
  next: number;
  lastDate: string;
  lastDay: number;
}

const _CHUNK = 2048;
/** Column buffers of one chunk, reused by every call (the main thread runs one call at a time). */
const _doubles = Array.from({ length: 8 }, () => new Float64Array(_CHUNK));
const _sessions = new Uint8Array(_CHUNK);
const _dayNumbers = new Int32Array(_CHUNK);
/** Validity bits (1: valid) of the nullable columns vwap and trade_count, 64 rows a word. */
const _valid = [new Uint8Array(_CHUNK / 8), new Uint8Array(_CHUNK / 8)];

/**
 * Columnar fill: the values go into typed arrays, and each column is copied into the chunk's
 * vector with one call (the vectors' own per-item setters cost several times as much).
 * Validity is written for a nullable column (vwap, trade_count) that has a null in this chunk or
 * whose vector carries a mask already; a vector without a mask holds only valid values.
 */
function _fillChunk(bars: readonly Bar[], state: _FeedState, output: DuckDBDataChunk): void {
  const start = state.next;
  const n = Math.min(_CHUNK, bars.length - start);
  output.rowCount = n;
  if (n === 0) return;
  const [ts, open, high, low, close, volume, vwap, trades] = _doubles;
  const [vwapValid, tradesValid] = _valid;
  let vwapNulls = 0;
  let tradesNulls = 0;
  vwapValid.fill(0xff);
  tradesValid.fill(0xff);
  for (let i = 0; i < n; i++) {
    const bar = bars[start + i];
    if (bar.tradingDate !== state.lastDate) {
      const date = state.lastDate = bar.tradingDate;
      state.lastDay = Date.UTC(+date.slice(0, 4), +date.slice(5, 7) - 1, +date.slice(8, 10)) /
        86_400_000;
    }
    ts[i] = bar.ts;
    open[i] = bar.open;
    high[i] = bar.high;
    low[i] = bar.low;
    close[i] = bar.close;
    volume[i] = bar.volume;
    const v = bar.vwap;
    if (v == null) {
      vwapValid[i >> 3] &= ~(1 << (i & 7));
      vwapNulls++;
    } else vwap[i] = v;
    const t = bar.tradeCount;
    if (t == null) {
      tradesValid[i >> 3] &= ~(1 << (i & 7));
      tradesNulls++;
    } else trades[i] = t;
    _sessions[i] = SESSION_CODES[bar.session];
    _dayNumbers[i] = state.lastDay;
  }
  const vectors = _FEED_COLUMNS.map((_, c) => duckdb.data_chunk_get_vector(output.chunk, c));
  [..._doubles, _sessions, _dayNumbers].forEach((values, c) =>
    duckdb.copy_data_to_vector(vectors[c], 0, values.buffer, 0, n * values.BYTES_PER_ELEMENT)
  );
  const bytes = Math.ceil(n / 64) * 8;
  const nullable = [
    [vectors[6], vwapValid, vwapNulls],
    [vectors[7], tradesValid, tradesNulls],
  ] as const;
  for (const [vector, bits, nulls] of nullable) {
    if (nulls > 0 || duckdb.vector_get_validity(vector, bytes)) {
      duckdb.vector_ensure_validity_writable(vector);
      duckdb.copy_data_to_vector_validity(vector, 0, bits.buffer, 0, bytes);
    }
  }
  state.next += n;
}

function _lastPerTs(bars: readonly Bar[]): Bar[] {
  const byTs = new Map<number, Bar>();
  for (const bar of bars) byTs.set(bar.ts, bar);
  return [...byTs.values()];
}

/** Whether a partition folder holds files that {@link _removeLeftovers} would remove. */
async function _hasLeftovers(dir: string, live: readonly BarFile[]): Promise<boolean> {
  const keep = new Set(live.map((file) => file.path.slice(file.path.lastIndexOf("/") + 1)));
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      if (entry.name.startsWith(TEMP_PREFIX)) return true;
      if (entry.name.endsWith(".parquet") && !keep.has(entry.name)) return true;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return false;
}

/**
 * Files a killed writer left in a partition folder: temp files, and `.parquet` files the manifest
 * does not list (renamed into place but never committed, or replaced but not yet deleted).
 */
async function _removeLeftovers(
  dir: string,
  relativeDir: string,
  live: readonly BarFile[],
): Promise<void> {
  const keep = new Set(live.map((file) => file.path));
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      const orphan = entry.name.endsWith(".parquet") && !keep.has(join(relativeDir, entry.name));
      if (orphan || entry.name.startsWith(TEMP_PREFIX)) {
        await Deno.remove(join(dir, entry.name)).catch(() => {});
      }
    }
  } catch (error) {
    // A new partition: nothing left over, and its folder is made here.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(dir, { recursive: true });
  }
}
