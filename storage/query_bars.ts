/**
 * Bars of one symbol and timeframe for the HTTP API: read in columns, paged with a keyset cursor
 * or exported as Parquet, every request value bound as a parameter.
 *
 * @module
 */
import {
  type DuckDBDataChunk,
  type DuckDBPreparedStatement,
  type DuckDBValue,
  LIST,
  listValue,
  VARCHAR,
} from "@duckdb/node-api";
import { join } from "node:path";
import type { CorruptFileError } from "../core/errors.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { corruptFileError } from "./corrupt.ts";
import { BAR_COLUMNS_SQL, NO_BARS_SQL, sqlString } from "./duckdb.ts";
import {
  DEFAULT_QUERY_TIMEOUT_MS,
  type QueryEngine,
  QueryTimeoutError,
  retryReplaced,
  withConnection,
  type WithConnectionOptions,
} from "./query_engine.ts";

/** Which bars {@link readBars} and {@link exportBarsParquet} read: one symbol and timeframe. */
export interface BarsRequest {
  symbol: string;
  timeframe: Timeframe;
  /** First trading date `YYYY-MM-DD`, inclusive (default: no bound). */
  start?: string;
  /** Last trading date `YYYY-MM-DD`, inclusive (default: no bound). */
  end?: string;
  /** Keyset cursor: only bars that start after this instant (epoch microseconds). */
  after?: bigint;
  /** Only bars that start before this instant (epoch microseconds). */
  before?: bigint;
  /** Most bars to read. */
  limit: number;
  /** Newest first instead of oldest first. */
  descending?: boolean;
}

/**
 * A chunk of bars in columns (up to 2,048 rows); `symbol` and `timeframe` are the request's.
 * `tsMicros` is the bar start exactly as stored (epoch microseconds), `ts` the same instant in
 * epoch ms (floored); unknown `vwap` and `tradeCount` are `NaN`. `lineage` holds the remaining
 * stored columns when the read asked for them (`{ lineage: true }`).
 */
export interface BarColumns {
  length: number;
  ts: Float64Array;
  tsMicros: BigInt64Array;
  open: Float64Array;
  high: Float64Array;
  low: Float64Array;
  close: Float64Array;
  volume: Float64Array;
  vwap: Float64Array;
  tradeCount: Float64Array;
  /** `YYYY-MM-DD`. */
  tradingDate: string[];
  session: string[];
  lineage?: BarLineageColumns;
}

/** Where the bars of a {@link BarColumns} chunk came from: the stored columns beyond the bar. */
export interface BarLineageColumns {
  provider: string[];
  feed: string[];
  adjustment: string[];
  ingestId: string[];
  /** When the row was written, epoch microseconds. */
  ingestedAt: BigInt64Array;
  schemaVersion: Int32Array;
}

/** Options of {@link readBars}, {@link barsPageEnd} and {@link exportBarsParquet}. */
export interface ReadBarsOptions {
  /** Interrupt the read after this many milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Interrupts the read when aborted; the abort reason is thrown. */
  signal?: AbortSignal;
  /** Also read the lineage columns into `BarColumns.lineage` ({@link readBars} only). */
  lineage?: boolean;
}

// Bounds used when a request leaves a side open: every stored bar lies between them.
const _MIN_DATE = "1900-01-01";
const _MAX_DATE = "2199-12-31";
const _MIN_MICROS = -2_208_988_800_000_000n; // 1900-01-01
const _MAX_MICROS = 7_258_118_400_000_000n; // 2200-01-01

/**
 * Reads the bars of one symbol and timeframe in `ts` order with every value bound as a
 * parameter, calling `onChunk` for each chunk (awaiting it, so a slow consumer slows the read).
 * Returns the number of bars read; 0 when the timeframe has no view in this engine.
 *
 * @example
 * ```ts
 * await readBars(engine, { symbol: "AAPL", timeframe: "1m", start: "2024-03-04", limit: 1000 },
 *   (chunk) => console.log(chunk.length, chunk.close[0]));
 * ```
 */
export async function readBars(
  engine: QueryEngine,
  request: BarsRequest,
  onChunk: (chunk: BarColumns) => void | Promise<void>,
  options: ReadBarsOptions = {},
): Promise<number> {
  let delivered = false;
  // Lineage costs a string decode per row and column (ingest_id is read through a native call),
  // so only the formats that carry it ask for it.
  const lineage = options.lineage
    ? ", provider, feed, adjustment, ingest_id, epoch_us(ingested_at), schema_version::INTEGER"
    : "";
  const sql = `SELECT epoch_us(ts), open, high, low, close, volume, vwap,
      trade_count::DOUBLE, strftime(trading_date, '%Y-%m-%d'), session${lineage}
    FROM ${_barsSource(request)} LIMIT $limit::BIGINT`;
  // Once bars were handed on, a retry would hand them on twice: only an early failure retries.
  return await retryReplaced(engine, async () => {
    _checkBarsRequest(request);
    const files = _barFiles(engine, request);
    if (files.length === 0 || request.limit === 0) return 0;
    return await _namingCorrupt(engine, files, request, sql, options, async (prepared) => {
      _bindBars(prepared, files, request, { limit: request.limit });
      const result = await prepared.stream();
      let total = 0;
      while (true) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        total += chunk.rowCount;
        delivered = true;
        await onChunk(_barColumns(chunk));
      }
      return total;
    });
  }, () => !delivered);
}

/**
 * The keyset cursor of a page: the `ts` (epoch microseconds) of the `request.limit`-th bar when
 * more bars follow it, else `undefined` (the page is the last one).
 */
export async function barsPageEnd(
  engine: QueryEngine,
  request: BarsRequest,
  options: ReadBarsOptions = {},
): Promise<bigint | undefined> {
  const sql = `SELECT epoch_us(ts) FROM ${_barsSource(request)} LIMIT 2 OFFSET $offset::BIGINT`;
  return await retryReplaced(engine, async () => {
    _checkBarsRequest(request);
    const files = _barFiles(engine, request);
    if (files.length === 0 || request.limit === 0) return undefined;
    return await _namingCorrupt(engine, files, request, sql, options, async (prepared) => {
      _bindBars(prepared, files, request, { offset: request.limit - 1 });
      const rows = (await prepared.runAndReadAll()).getRows();
      return rows.length === 2 ? rows[0][0] as bigint : undefined;
    });
  });
}

/** Runs `use` on `sql` prepared on a connection of its own, within the read's timeout and signal. */
async function _withStatement<T>(
  engine: QueryEngine,
  sql: string,
  options: ReadBarsOptions,
  use: (prepared: DuckDBPreparedStatement) => Promise<T>,
  connectionOptions?: WithConnectionOptions,
): Promise<T> {
  return await withConnection(
    engine,
    options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
    options.signal,
    async (connection) => {
      const prepared = await connection.prepare(sql);
      try {
        return await use(prepared);
      } finally {
        prepared.destroySync();
      }
    },
    connectionOptions,
  );
}

/**
 * {@link _withStatement} reading `files`; when it fails on a file that cannot be read, a
 * `CorruptFileError` naming that file replaces DuckDB's error, so one bad partition shows up as
 * itself.
 */
async function _namingCorrupt<T>(
  engine: QueryEngine,
  files: readonly string[],
  request: BarsRequest,
  sql: string,
  options: ReadBarsOptions,
  use: (prepared: DuckDBPreparedStatement) => Promise<T>,
): Promise<T> {
  try {
    return await _withStatement(engine, sql, options, use);
  } catch (error) {
    if (error instanceof QueryTimeoutError || options.signal?.aborted) throw error;
    let corrupt: CorruptFileError | undefined;
    const connection = await engine._connect().catch(() => undefined);
    if (connection) {
      try {
        corrupt = await corruptFileError(
          connection,
          files,
          error,
          `Cannot read the ${request.timeframe} bars of ${request.symbol} from`,
        );
      } finally {
        connection.closeSync();
      }
    }
    throw corrupt ?? error;
  }
}

/**
 * Writes the bars of one request as a zstd Parquet file into the engine's `exportDir` and returns
 * it as a stream; the file is removed as soon as it is open, so nothing is left behind.
 */
export async function exportBarsParquet(
  engine: QueryEngine,
  request: BarsRequest,
  options: ReadBarsOptions = {},
): Promise<{ rows: number; size: number; stream: ReadableStream<Uint8Array> }> {
  return await retryReplaced(engine, async () => {
    _checkBarsRequest(request);
    if (engine.exportDir === undefined) {
      throw new TypeError(
        "Cannot export Parquet: the query engine was opened without an exportDir",
      );
    }
    const files = _barFiles(engine, request);
    const path = join(engine.exportDir, `bars-${crypto.randomUUID()}.parquet`);
    // The path is ours (a UUID); every request value travels as a bound parameter.
    const inner = files.length === 0
      ? NO_BARS_SQL
      : `SELECT ${BAR_COLUMNS_SQL} FROM ${_barsSource(request)} LIMIT $limit::BIGINT`;
    const copy = `COPY (${inner}) TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd)`;
    try {
      const rows = await _withStatement(engine, copy, options, async (prepared) => {
        if (files.length > 0) _bindBars(prepared, files, request, { limit: request.limit });
        return Number((await prepared.run()).rowsChanged);
      }, { exporter: true });
      const file = await Deno.open(path, { read: true });
      const size = (await file.stat()).size;
      await Deno.remove(path);
      return { rows, size, stream: file.readable };
    } catch (error) {
      await Deno.remove(path).catch(() => {});
      throw error;
    }
  });
}

function _checkBarsRequest(request: BarsRequest): void {
  if (!isValidSymbol(request.symbol)) {
    throw new RangeError(`Invalid symbol "${request.symbol}": expected a ticker like AAPL`);
  }
  if (!isTimeframe(request.timeframe)) {
    throw new RangeError(`Invalid timeframe "${request.timeframe}": expected one of ${TIMEFRAMES}`);
  }
  if (!Number.isSafeInteger(request.limit) || request.limit < 0) {
    throw new RangeError(`Invalid bars limit ${request.limit}: expected a whole number >= 0`);
  }
  for (const [name, value] of [["after", request.after], ["before", request.before]] as const) {
    if (
      value !== undefined &&
      (typeof value !== "bigint" || value < _MIN_MICROS || value > _MAX_MICROS)
    ) {
      throw new RangeError(
        `Invalid bars ${name} ${value}: expected epoch microseconds from 1900 to 2200`,
      );
    }
  }
}

/**
 * `FROM`/`WHERE`/`ORDER BY` of a bars read. The files come from {@link _barFiles} as a bound list;
 * every request value is a parameter.
 */
function _barsSource(request: BarsRequest): string {
  return `read_parquet($files, hive_partitioning = true, hive_types_autocast = false)
    WHERE symbol = $symbol AND trading_date BETWEEN $start::DATE AND $end::DATE
      AND ts > make_timestamptz($after::BIGINT) AND ts < make_timestamptz($before::BIGINT)
    ORDER BY ts ${request.descending ? "DESC" : "ASC"}`;
}

function _bindBars(
  prepared: DuckDBPreparedStatement,
  files: string[],
  request: BarsRequest,
  extra: { limit: number } | { offset: number },
): void {
  const values: Record<string, DuckDBValue> = {
    files: listValue(files),
    symbol: request.symbol,
    start: request.start ?? _MIN_DATE,
    end: request.end ?? _MAX_DATE,
    after: request.after ?? _MIN_MICROS,
    before: request.before ?? _MAX_MICROS,
  };
  for (const [name, value] of Object.entries(extra)) values[name] = BigInt(value);
  prepared.bind(values, { files: LIST(VARCHAR) });
}

/**
 * The live files of one symbol and timeframe that hold a trading date of the request, from the
 * manifest as it is now: no folder is listed, a read opens only those files whatever else is
 * stored, and it needs no view (new files and timeframes are seen at once).
 */
function _barFiles(engine: QueryEngine, request: BarsRequest): string[] {
  return engine._liveFiles({
    tree: "bars",
    timeframe: request.timeframe,
    symbol: request.symbol,
    start: request.start,
    end: request.end,
  }).map((file) => join(engine.dataDir, file.path));
}

function _barColumns(chunk: DuckDBDataChunk): BarColumns {
  const length = chunk.rowCount;
  const numbers = (index: number): Float64Array => {
    const vector = chunk.getColumnVector(index);
    const out = new Float64Array(length);
    for (let row = 0; row < length; row++) {
      const value = vector.getItem(row);
      out[row] = value === null ? NaN : value as number;
    }
    return out;
  };
  const strings = (index: number): string[] => {
    const vector = chunk.getColumnVector(index);
    const out = new Array<string>(length);
    for (let row = 0; row < length; row++) out[row] = vector.getItem(row) as string;
    return out;
  };
  const bigints = (index: number): BigInt64Array => {
    const vector = chunk.getColumnVector(index);
    const out = new BigInt64Array(length);
    for (let row = 0; row < length; row++) out[row] = vector.getItem(row) as bigint;
    return out;
  };
  const tsMicros = bigints(0);
  const ts = new Float64Array(length);
  for (let row = 0; row < length; row++) ts[row] = Math.floor(Number(tsMicros[row]) / 1000);
  let lineage: BarLineageColumns | undefined;
  if (chunk.columnCount > 10) {
    const version = chunk.getColumnVector(15);
    lineage = {
      provider: strings(10),
      feed: strings(11),
      adjustment: strings(12),
      ingestId: strings(13),
      ingestedAt: bigints(14),
      schemaVersion: Int32Array.from({ length }, (_, row) => version.getItem(row) as number),
    };
  }
  return {
    length,
    ts,
    tsMicros,
    open: numbers(1),
    high: numbers(2),
    low: numbers(3),
    close: numbers(4),
    volume: numbers(5),
    vwap: numbers(6),
    tradeCount: numbers(7),
    tradingDate: strings(8),
    session: strings(9),
    ...(lineage ? { lineage } : {}),
  };
}
