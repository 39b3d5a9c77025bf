import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";

/** Options for {@link openDuckDB}; unset values keep DuckDB's defaults (all cores, 80% of RAM). */
export interface OpenDuckDBOptions {
  /** Worker threads for query execution. */
  threads?: number;
  /** Memory limit such as `"2GB"`. */
  memoryLimit?: string;
}

/** Bar columns in file order with their DuckDB types, as stored in every partition file. */
export const BAR_COLUMNS: readonly { readonly name: string; readonly type: string }[] = [
  { name: "symbol", type: "VARCHAR" },
  { name: "ts", type: "TIMESTAMPTZ" },
  { name: "open", type: "DOUBLE" },
  { name: "high", type: "DOUBLE" },
  { name: "low", type: "DOUBLE" },
  { name: "close", type: "DOUBLE" },
  { name: "volume", type: "DOUBLE" },
  { name: "vwap", type: "DOUBLE" },
  { name: "trade_count", type: "BIGINT" },
  { name: "timeframe", type: "VARCHAR" },
  { name: "trading_date", type: "DATE" },
  { name: "session", type: "VARCHAR" },
  { name: "provider", type: "VARCHAR" },
  { name: "feed", type: "VARCHAR" },
  { name: "adjustment", type: "VARCHAR" },
  { name: "ingest_id", type: "VARCHAR" },
  { name: "ingested_at", type: "TIMESTAMPTZ" },
  { name: "schema_version", type: "INTEGER" },
];

/** Quotes a value as a SQL string literal (`it's` -> `'it''s'`), for paths in DDL that cannot take parameters. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Quotes a SQL identifier (`bars_1m` -> `"bars_1m"`). */
export function sqlIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Name of the view over one timeframe's bars, e.g. `bars_5m`. */
export function barViewName(timeframe: Timeframe): string {
  return `bars_${timeframe}`;
}

/**
 * Opens an in-memory DuckDB instance that never touches the network, with the session time zone UTC.
 *
 * @example
 * ```ts
 * const instance = await openDuckDB({ threads: 2 });
 * try {
 *   const connection = await instance.connect();
 *   await createBarViews(connection, "./data");
 * } finally {
 *   instance.closeSync();
 * }
 * ```
 */
export async function openDuckDB(options: OpenDuckDBOptions = {}): Promise<DuckDBInstance> {
  const config: Record<string, string> = {
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
  };
  if (options.threads !== undefined) config.threads = String(options.threads);
  if (options.memoryLimit !== undefined) config.memory_limit = options.memoryLimit;
  const instance = await DuckDBInstance.create(":memory:", config);
  try {
    const connection = await instance.connect();
    try {
      // A plain SET is per connection; GLOBAL makes every later connection UTC too. TimeZone
      // cannot go into the create() config: it belongs to the icu extension.
      await connection.run("SET GLOBAL TimeZone = 'UTC'");
    } finally {
      connection.closeSync();
    }
  } catch (error) {
    instance.closeSync();
    throw error;
  }
  return instance;
}

/**
 * (Re)creates the views `bars_<tf>` for each timeframe with at least one Parquet file under
 * `<dataDir>/bars/timeframe=<tf>/`, drops those of timeframes without files, and (re)creates `bars`
 * over all of them (an empty relation with the bar columns when there is no data).
 *
 * Returns the timeframes that have a view, shortest first.
 */
export async function createBarViews(
  connection: DuckDBConnection,
  dataDir: string,
): Promise<Timeframe[]> {
  const present: Timeframe[] = [];
  for (const timeframe of TIMEFRAMES) {
    if (await _hasParquetFile(_timeframeDir(dataDir, timeframe))) present.push(timeframe);
  }
  const columns = BAR_COLUMNS.map((column) => sqlIdent(column.name)).join(", ");
  for (const timeframe of TIMEFRAMES) {
    const view = sqlIdent(barViewName(timeframe));
    if (!present.includes(timeframe)) {
      await connection.run(`DROP VIEW IF EXISTS ${view}`);
      continue;
    }
    // An explicit column list fixes the order and leaves out the path-only keys year and month.
    // Hive keys stay VARCHAR (no autocast), so symbol "1234" or month "03" are not turned into
    // numbers; symbol and timeframe are also file columns, and filters on them still prune files.
    const glob = sqlString(`${_timeframeDir(dataDir, timeframe)}/**/*.parquet`);
    await connection.run(
      `CREATE OR REPLACE VIEW ${view} AS SELECT ${columns} FROM read_parquet(${glob}, ` +
        `hive_partitioning = true, hive_types_autocast = false)`,
    );
  }
  const union = present.length > 0
    ? present.map((tf) => `SELECT * FROM ${sqlIdent(barViewName(tf))}`).join(
      " UNION ALL BY NAME ",
    )
    : `SELECT ${
      BAR_COLUMNS.map((column) => `NULL::${column.type} AS ${sqlIdent(column.name)}`).join(", ")
    } WHERE false`;
  await connection.run(`CREATE OR REPLACE VIEW bars AS ${union}`);
  return present;
}

function _timeframeDir(dataDir: string, timeframe: Timeframe): string {
  return join(dataDir, "bars", `timeframe=${timeframe}`);
}

async function _hasParquetFile(dir: string): Promise<boolean> {
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".parquet")) return true;
      if (entry.isDirectory && await _hasParquetFile(join(dir, entry.name))) return true;
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  return false;
}
