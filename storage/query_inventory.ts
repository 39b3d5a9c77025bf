/**
 * The inventory of stored bars: rows, first and last bar and bytes on disk of every series, with
 * the files that cannot be read.
 *
 * @module
 */
import {
  type DuckDBConnection,
  type DuckDBValue,
  LIST,
  listValue,
  VARCHAR,
} from "@duckdb/node-api";
import { join } from "node:path";
import { CorruptFileError, errorMessage } from "../core/errors.ts";
import { parseTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { checkParquetFile, type CorruptFile, corruptFileMessage } from "./corrupt.ts";
import { sqlString } from "./duckdb.ts";
import type { ReadBarsOptions } from "./query_bars.ts";
import {
  DEFAULT_QUERY_TIMEOUT_MS,
  type QueryEngine,
  QueryTimeoutError,
  retryReplaced,
  withConnection,
} from "./query_engine.ts";

/** What is stored for one symbol and timeframe. Times are epoch ms of the first and last bar. */
export interface StoredBarSeries {
  symbol: string;
  timeframe: Timeframe;
  rows: number;
  firstTs: number;
  lastTs: number;
  /** Parquet files and their bytes on disk. */
  files: number;
  bytes: number;
}

/** A Parquet file under `bars/` that cannot be read, with its series. */
export interface CorruptSeriesFile extends CorruptFile {
  symbol: string;
  timeframe: Timeframe;
}

/** Result of {@link storedInventory}. */
export interface StoredInventory {
  /** The series with readable bars, from their readable files only. */
  series: StoredBarSeries[];
  /** Files that cannot be read, with the reason; their bars are not counted in `series`. */
  corrupt: CorruptSeriesFile[];
}

/**
 * Every stored (symbol, timeframe) with its row count, first and last bar and bytes on disk,
 * ordered by symbol then timeframe. Scans the `ts` column of all bars: cache the result. Throws a
 * `CorruptFileError` when a file cannot be read; {@link storedInventory} lists such files instead.
 */
export async function storedBarSeries(
  engine: QueryEngine,
  options: ReadBarsOptions = {},
): Promise<StoredBarSeries[]> {
  const inventory = await storedInventory(engine, options);
  const [first] = inventory.corrupt;
  if (first !== undefined) {
    throw new CorruptFileError(corruptFileMessage("Cannot list the stored bars:", first), first);
  }
  return inventory.series;
}

/**
 * What {@link storedBarSeries} gives, without failing on unreadable files: one scan of all bars
 * first; when that fails, each series is read on its own and a file that cannot be read is
 * listed in `corrupt` with the reason, so one bad file hides only its own bars. Any other
 * failure is thrown.
 */
export async function storedInventory(
  engine: QueryEngine,
  options: ReadBarsOptions = {},
): Promise<StoredInventory> {
  return await retryReplaced(engine, async () => {
    const groups = new Map<string, _SeriesFiles>();
    // Every live file of the manifest now, not the views: those are fixed when the engine opens
    // and may leave out a file whose footer does not read, which must show up here as corrupt.
    for (const file of engine._liveFiles({ tree: "bars" })) {
      const id = `${file.timeframe}|${file.symbol}`;
      let group = groups.get(id);
      if (!group) {
        group = { symbol: file.symbol, timeframe: file.timeframe, bytes: 0, paths: [] };
        groups.set(id, group);
      }
      group.bytes += file.bytes;
      group.paths.push(join(engine.dataDir, file.path));
    }
    const files = [...groups.values()].flatMap((group) => group.paths);
    if (files.length === 0) return { series: [], corrupt: [] };
    const order = TIMEFRAMES.map((tf, index) => `WHEN ${sqlString(tf)} THEN ${index}`).join(" ");
    const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    let rows: DuckDBValue[][];
    try {
      rows = await withConnection(engine, timeoutMs, options.signal, (connection) =>
        _readFiles(
          connection,
          `SELECT symbol, timeframe, count(*)::DOUBLE, epoch_ms(min(ts))::DOUBLE,
             epoch_ms(max(ts))::DOUBLE FROM ${_FILES}
           GROUP BY symbol, timeframe ORDER BY symbol, CASE timeframe ${order} END`,
          files,
        ));
    } catch (error) {
      if (error instanceof QueryTimeoutError || options.signal?.aborted) throw error;
      return await _inventoryBySeries(engine, groups, error, { timeoutMs, signal: options.signal });
    }
    const series = rows.map(([symbol, timeframe, count, first, last]) => {
      const group = groups.get(`${timeframe}|${symbol}`);
      return {
        symbol: String(symbol),
        timeframe: parseTimeframe(timeframe),
        rows: Number(count),
        firstTs: Number(first),
        lastTs: Number(last),
        files: group?.paths.length ?? 0,
        bytes: group?.bytes ?? 0,
      };
    });
    return { series, corrupt: [] };
  });
}

/** The live files of one series and their bytes. */
interface _SeriesFiles {
  symbol: string;
  timeframe: Timeframe;
  bytes: number;
  paths: string[];
}

/** The slow path of {@link storedInventory}: series by series, file by file where one fails. */
async function _inventoryBySeries(
  engine: QueryEngine,
  groups: Map<string, _SeriesFiles>,
  scanError: unknown,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<StoredInventory> {
  const sorted = [...groups.values()].sort((a, b) =>
    a.symbol < b.symbol
      ? -1
      : a.symbol > b.symbol
      ? 1
      : TIMEFRAMES.indexOf(a.timeframe) - TIMEFRAMES.indexOf(b.timeframe)
  );
  const series: StoredBarSeries[] = [];
  const corrupt: CorruptSeriesFile[] = [];
  await withConnection(engine, options.timeoutMs, options.signal, async (connection) => {
    const summarize = async (paths: string[]) => {
      const [[count, first, last]] = await _readFiles(
        connection,
        `SELECT count(*)::DOUBLE, epoch_ms(min(ts))::DOUBLE, epoch_ms(max(ts))::DOUBLE
         FROM ${_FILES}`,
        paths,
      );
      return { rows: Number(count), firstTs: Number(first), lastTs: Number(last) };
    };
    for (const group of sorted) {
      let summary: { rows: number; firstTs: number; lastTs: number };
      let readable = group.paths;
      try {
        summary = await summarize(group.paths);
      } catch {
        readable = [];
        for (const path of group.paths) {
          try {
            await summarize([path]);
            readable.push(path);
          } catch (error) {
            const reason = await checkParquetFile(connection, path);
            // Every file reads: the scan failed for another reason, which is not ours to hide.
            if (reason === undefined) throw new Error(errorMessage(scanError), { cause: error });
            corrupt.push({ path, reason, symbol: group.symbol, timeframe: group.timeframe });
          }
        }
        if (readable.length === 0) continue;
        summary = await summarize(readable);
      }
      if (summary.rows === 0) continue;
      let bytes = 0;
      for (const path of readable) bytes += (await Deno.stat(path)).size;
      series.push({
        symbol: group.symbol,
        timeframe: group.timeframe,
        ...summary,
        files: readable.length,
        bytes,
      });
    }
  });
  return { series, corrupt };
}

/** The bars of the files bound as `$files`. */
const _FILES = "read_parquet($files, hive_partitioning = true, hive_types_autocast = false)";

/** The rows of `sql`, run with `files` bound as `$files`. */
async function _readFiles(
  connection: DuckDBConnection,
  sql: string,
  files: string[],
): Promise<DuckDBValue[][]> {
  const prepared = await connection.prepare(sql);
  try {
    prepared.bind({ files: listValue(files) }, { files: LIST(VARCHAR) });
    return (await prepared.runAndReadAll()).getRows();
  } finally {
    prepared.destroySync();
  }
}
