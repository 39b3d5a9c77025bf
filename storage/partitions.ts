import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import type { WriteResult } from "../core/jobs.ts";
import type { Bar, Session } from "../core/types.ts";
import { PARTITION_FILE, partitionDir, TEMP_PREFIX } from "./layout.ts";
import type { MetaStore } from "./meta.ts";
import { sqlString } from "./duckdb.ts";

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
  // Per partition (and source), bars by ts: a repeated key in the input keeps only its last bar,
  // so the file never holds the key twice and the counts stay right.
  const groups = new Map<string, Map<number, Bar>>();
  for (const bar of bars) {
    const key = [
      partitionDir(bar.timeframe, bar.symbol, bar.tradingDate),
      bar.provider,
      bar.feed,
      bar.adjustment,
    ].join("\0");
    let group = groups.get(key);
    if (!group) groups.set(key, group = new Map());
    group.set(bar.ts, bar);
  }
  const total: WriteResult = { written: 0, replaced: 0, partitions: 0 };
  for (const [key, byTs] of groups) {
    const dir = key.split("\0")[0];
    const group = [...byTs.values()];
    const result = await _serialized(dir, async () => {
      await writer.meta.lockPartition(dir, { signal: options.signal });
      try {
        return await _mergePartition(writer, dir, group, options.jobId);
      } finally {
        writer.meta.unlockPartition(dir);
      }
    });
    total.written += result.written;
    total.replaced += result.replaced;
    total.partitions++;
  }
  return total;
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

async function _mergePartition(
  writer: PartitionWriter,
  relativeDir: string,
  bars: Bar[],
  jobId: string,
): Promise<{ written: number; replaced: number }> {
  const dir = join(writer.dataDir, relativeDir);
  await Deno.mkdir(dir, { recursive: true });
  await _removeStaleTemps(dir);
  const live = join(dir, PARTITION_FILE);
  const temp = join(dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
  const oldExists = await _exists(live);
  const first = bars[0];
  const connection = await writer.duckdb.connect();
  try {
    await connection.run(
      "CREATE TEMP TABLE incoming (ts DOUBLE, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, vwap DOUBLE, trade_count DOUBLE, session UTINYINT, day INTEGER)",
    );
    await _append(connection, bars);
    const ingestedAt = new Date((writer.now ?? Date.now)()).toISOString();
    const incoming = `SELECT
        ${sqlString(first.symbol)} AS symbol,
        timezone('UTC', epoch_ms(CAST(ts AS BIGINT))) AS ts,
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
    let body = incoming;
    if (oldExists) {
      const counted = await connection.runAndReadAll(
        `SELECT count(*) AS n FROM read_parquet(${sqlString(live)})`,
      );
      oldCount = Number(counted.getRows()[0][0]);
      body = `WITH fresh AS (${incoming})
        SELECT * FROM fresh
        UNION ALL BY NAME
        SELECT * FROM read_parquet(${sqlString(live)}, hive_partitioning = false) AS old
        WHERE old.ts NOT IN (SELECT ts FROM fresh)`;
    }
    const copied = await connection.run(
      `COPY (SELECT * FROM (${body}) ORDER BY ts) TO ${
        sqlString(temp)
      } (FORMAT parquet, COMPRESSION zstd)`,
    );
    const after = Number(copied.rowsChanged);
    await _fsyncFile(temp);
    await Deno.rename(temp, live);
    await _fsyncDir(dir);
    const replaced = oldCount + bars.length - after;
    return { written: bars.length - replaced, replaced };
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new Error(`Cannot write partition ${relativeDir}`, { cause: error });
  } finally {
    connection.closeSync();
  }
}

async function _append(connection: DuckDBConnection, bars: Bar[]): Promise<void> {
  const appender = await connection.createAppender("incoming");
  try {
    let lastDate = "";
    let lastDay = 0;
    for (const bar of bars) {
      if (bar.tradingDate !== lastDate) {
        lastDate = bar.tradingDate;
        lastDay =
          Date.UTC(+lastDate.slice(0, 4), +lastDate.slice(5, 7) - 1, +lastDate.slice(8, 10)) /
          86_400_000;
      }
      appender.appendDouble(bar.ts);
      appender.appendDouble(bar.open);
      appender.appendDouble(bar.high);
      appender.appendDouble(bar.low);
      appender.appendDouble(bar.close);
      appender.appendDouble(bar.volume);
      if (bar.vwap === null) appender.appendNull();
      else appender.appendDouble(bar.vwap);
      if (bar.tradeCount === null) appender.appendNull();
      else appender.appendDouble(bar.tradeCount);
      appender.appendUTinyInt(SESSION_CODES[bar.session]);
      appender.appendInteger(lastDay);
      appender.endRow();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

async function _exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function _removeStaleTemps(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(TEMP_PREFIX)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
}

async function _fsyncFile(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.sync();
}

async function _fsyncDir(path: string): Promise<void> {
  try {
    using dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch (error) {
    // Directories cannot be opened for sync on every platform; the rename itself is atomic.
    if (Deno.build.os !== "windows") throw error;
  }
}
