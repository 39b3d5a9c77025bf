import {
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBDoubleType,
  type DuckDBInstance,
  DuckDBIntegerType,
  DuckDBUTinyIntType,
} from "@duckdb/node-api";
import { join } from "node:path";
import type { WriteResult } from "../core/jobs.ts";
import type { Bar, Session } from "../core/types.ts";
import { PARTITION_FILE, partitionDir, TEMP_PREFIX } from "./layout.ts";
import { fsyncDir, fsyncFile, pathExists } from "./fs.ts";
import type { MetaStore } from "./meta.ts";
import { sqlString } from "./duckdb.ts";
import { storageErrorOf } from "./disk.ts";
import { corruptFileError, readerReason } from "./corrupt.ts";

/** Version of the Parquet bar schema written by this build. */
export const SCHEMA_VERSION = 1;

const SESSION_CODES: Record<Session, number> = { pre: 0, regular: 1, post: 2 };

/** What {@link writeBars} needs: the data directory, a DuckDB instance and the lock store. */
export interface PartitionWriter {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: Pick<MetaStore, "lockPartition" | "unlockPartition">;
  now?: () => number;
}

const _inProcess = new Map<string, Promise<unknown>>();

/**
 * Merge bars into their partitions. For each partition: take the lock, write old rows whose key
 * is not among the new bars plus the new bars, sorted by ts, into a temp file in the same
 * directory, fsync it, rename it over the live file, fsync the directory. The key
 * (symbol, timeframe, ts) never repeats; the newer ingest wins.
 */
export async function writeBars(
  writer: PartitionWriter,
  bars: readonly Bar[],
  options: { jobId: string; signal?: AbortSignal },
): Promise<WriteResult> {
  // Group by partition and source. Consecutive bars almost always share both, so the key is
  // built only when one of its parts changes, and partitionDir() once per group.
  const groups = new Map<string, { dir: string; bars: Bar[]; increasing: boolean }>();
  let last: Bar | undefined;
  let current: { dir: string; bars: Bar[]; increasing: boolean } | undefined;
  for (const bar of bars) {
    if (
      last === undefined || bar.symbol !== last.symbol || bar.timeframe !== last.timeframe ||
      bar.provider !== last.provider || bar.feed !== last.feed ||
      bar.adjustment !== last.adjustment ||
      (bar.tradingDate !== last.tradingDate &&
        _period(bar.timeframe, bar.tradingDate) !== _period(last.timeframe, last.tradingDate))
    ) {
      const key = [
        bar.timeframe,
        bar.symbol,
        _period(bar.timeframe, bar.tradingDate),
        bar.provider,
        bar.feed,
        bar.adjustment,
      ].join("\0");
      current = groups.get(key);
      if (!current) {
        current = {
          dir: partitionDir(bar.timeframe, bar.symbol, bar.tradingDate),
          bars: [],
          increasing: true,
        };
        groups.set(key, current);
      }
    }
    const group = current!;
    if (
      group.increasing && group.bars.length > 0 && group.bars[group.bars.length - 1].ts >= bar.ts
    ) {
      group.increasing = false;
    }
    group.bars.push(bar);
    last = bar;
  }
  const total: WriteResult = { written: 0, replaced: 0, partitions: 0 };
  for (const { dir, bars: groupBars, increasing } of groups.values()) {
    // A repeated key in the input keeps only its last bar, so the file never holds the key twice
    // and the counts stay right; strictly increasing input (the usual case) needs no Map.
    const group = increasing ? groupBars : _lastPerTs(groupBars);
    const result = await replacePartition(
      writer,
      dir,
      (file) => _mergePartition(writer, file, group, options.jobId, increasing),
      { signal: options.signal },
    );
    total.written += result.written;
    total.replaced += result.replaced;
    total.partitions++;
  }
  return total;
}

/** What {@link replacePartition} hands to the function that writes a partition's new file. */
export interface PartitionFile {
  /** A DuckDB connection of the writer's instance, closed afterwards. */
  connection: DuckDBConnection;
  /** Absolute path of the temporary file to write; it never ends in `.parquet`. */
  temp: string;
  /** Absolute path of the live file, `<dir>/data.parquet`. */
  live: string;
  /** Whether the live file exists. */
  liveExists: boolean;
}

/**
 * Replace the live file of one partition (`relativeDir` under the data directory) atomically, the
 * way {@link writeBars} does: writes of a partition are serialized within the process and locked
 * across processes; under the lock, `write` produces the new file at `file.temp` (reading the
 * live file if it likes), which is fsynced and renamed over `data.parquet`, then the directory is
 * fsynced. When `write` throws, the live file is untouched, the temp file is removed and the error
 * is wrapped as `Cannot write partition <dir>: <cause>`, or, when the live file cannot be read, a
 * `CorruptFileError` naming it.
 */
export async function replacePartition<T>(
  writer: PartitionWriter,
  relativeDir: string,
  write: (file: PartitionFile) => Promise<T>,
  options: { signal?: AbortSignal } = {},
): Promise<T> {
  return await _serialized(relativeDir, async () => {
    await writer.meta.lockPartition(relativeDir, { signal: options.signal });
    let failed = false;
    try {
      const dir = join(writer.dataDir, relativeDir);
      const live = join(dir, PARTITION_FILE);
      try {
        await Deno.mkdir(dir, { recursive: true });
        await _removeStaleTemps(dir);
      } catch (error) {
        throw _diskError(error, relativeDir, dir) ?? error;
      }
      const temp = join(dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
      const liveExists = await pathExists(live);
      const connection = await writer.duckdb.connect();
      try {
        const result = await write({ connection, temp, live, liveExists });
        await fsyncFile(temp);
        await Deno.rename(temp, live);
        await fsyncDir(dir);
        return result;
      } catch (error) {
        await Deno.remove(temp).catch(() => {});
        // A full or read-only disk is not the stored file's fault: say so and name the file.
        const disk = _diskError(error, relativeDir, live);
        if (disk) throw disk;
        // The usual reason a merge fails is a stored file that cannot be read: name it and leave
        // it alone (a retry would fail the same way; `marketpipe repair` moves it aside).
        const corrupt = liveExists && !options.signal?.aborted
          ? await corruptFileError(connection, [live], error, "Cannot write partition")
            .catch(() => undefined)
          : undefined;
        if (corrupt) throw corrupt;
        throw new Error(`Cannot write partition ${relativeDir}: ${readerReason(error)}`, {
          cause: error,
        });
      } finally {
        connection.closeSync();
      }
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      _unlock(writer, relativeDir, failed);
    }
  });
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

/** Under the partition's lock: the old rows not replaced plus the new bars, into the temp file. */
async function _mergePartition(
  writer: PartitionWriter,
  file: PartitionFile,
  bars: Bar[],
  jobId: string,
  sorted: boolean,
): Promise<{ written: number; replaced: number }> {
  const { connection, temp, live, liveExists: oldExists } = file;
  const first = bars[0];
  await connection.run(
    "CREATE TEMP TABLE incoming (ts DOUBLE, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, vwap DOUBLE, trade_count DOUBLE, session UTINYINT, day INTEGER)",
  );
  await _append(connection, bars);
  const ingestedAt = new Date((writer.now ?? Date.now)()).toISOString();
  const incoming = `SELECT
      ${sqlString(first.symbol)} AS symbol,
      to_timestamp(ts / 1000) AS ts,
      open, high, low, close, volume, vwap,
      CAST(trade_count AS BIGINT) AS trade_count,
      ${sqlString(first.timeframe)} AS timeframe,
      CAST(DATE '1970-01-01' + day AS DATE) AS trading_date,
      CASE session WHEN 0 THEN 'pre' WHEN 1 THEN 'regular' ELSE 'post' END AS session,
      ${sqlString(first.provider)} AS provider,
      ${sqlString(first.feed)} AS feed,
      ${sqlString(first.adjustment)} AS adjustment,
      ${sqlString(jobId)} AS ingest_id,
      CAST(${sqlString(ingestedAt)} AS TIMESTAMPTZ) AS ingested_at,
      ${SCHEMA_VERSION} AS schema_version
    FROM incoming`;
  let oldCount = 0;
  let ownReplaced = 0;
  let body = incoming;
  if (oldExists) {
    const old = `read_parquet(${sqlString(live)}, hive_partitioning = false) AS old`;
    const counted = await connection.runAndReadAll(
      `SELECT count(*), count(*) FILTER (WHERE ingest_id = ${sqlString(jobId)}) FROM ${old}`,
    );
    oldCount = Number(counted.getRows()[0][0]);
    if (Number(counted.getRows()[0][1]) > 0) {
      // Bars this job already stored (an earlier attempt of a resumed task, killed after its
      // file was renamed into place but before the task was marked done) are new bars of the
      // job, as a clean run reports them, not updates.
      const own = await connection.runAndReadAll(
        `SELECT count(*) FROM ${old} WHERE old.ingest_id = ${sqlString(jobId)}
           AND old.ts IN (SELECT to_timestamp(ts / 1000) FROM incoming)`,
      );
      ownReplaced = Number(own.getRows()[0][0]);
    }
    body = `WITH fresh AS (${incoming})
      SELECT * FROM fresh
      UNION ALL BY NAME
      SELECT * FROM read_parquet(${sqlString(live)}, hive_partitioning = false) AS old
      WHERE old.ts NOT IN (SELECT ts FROM fresh)`;
  }
  const copied = await connection.run(
    `COPY (${sorted && !oldExists ? body : `SELECT * FROM (${body}) ORDER BY ts`}) TO ${
      sqlString(temp)
    } (FORMAT parquet, COMPRESSION zstd)`,
  );
  const after = Number(copied.rowsChanged);
  const replaced = oldCount + bars.length - after - ownReplaced;
  return { written: bars.length - replaced, replaced };
}

const _INCOMING_TYPES = [
  ...Array.from({ length: 8 }, () => DuckDBDoubleType.instance),
  DuckDBUTinyIntType.instance,
  DuckDBIntegerType.instance,
];
const _CHUNK_ROWS = 2048;

/** Columnar append: values go into the chunk's typed arrays, one copy per column per 2048 rows. */
async function _append(connection: DuckDBConnection, bars: Bar[]): Promise<void> {
  const appender = await connection.createAppender("incoming");
  try {
    let lastDate = "";
    let lastDay = 0;
    for (let start = 0; start < bars.length; start += _CHUNK_ROWS) {
      const n = Math.min(_CHUNK_ROWS, bars.length - start);
      const chunk = DuckDBDataChunk.create(_INCOMING_TYPES, n);
      const v = _INCOMING_TYPES.map((_, i) => chunk.getColumnVector(i));
      for (let i = 0; i < n; i++) {
        const bar = bars[start + i];
        if (bar.tradingDate !== lastDate) {
          lastDate = bar.tradingDate;
          lastDay =
            Date.UTC(+lastDate.slice(0, 4), +lastDate.slice(5, 7) - 1, +lastDate.slice(8, 10)) /
            86_400_000;
        }
        v[0].setItem(i, bar.ts);
        v[1].setItem(i, bar.open);
        v[2].setItem(i, bar.high);
        v[3].setItem(i, bar.low);
        v[4].setItem(i, bar.close);
        v[5].setItem(i, bar.volume);
        v[6].setItem(i, bar.vwap);
        v[7].setItem(i, bar.tradeCount);
        v[8].setItem(i, SESSION_CODES[bar.session]);
        v[9].setItem(i, lastDay);
      }
      for (const vector of v) vector.flush();
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

function _period(timeframe: string, date: string): string {
  return timeframe === "1d" ? date.slice(0, 4) : date.slice(0, 7);
}

function _lastPerTs(bars: Bar[]): Bar[] {
  const byTs = new Map<number, Bar>();
  for (const bar of bars) byTs.set(bar.ts, bar);
  return [...byTs.values()];
}

async function _removeStaleTemps(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(TEMP_PREFIX)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
}
