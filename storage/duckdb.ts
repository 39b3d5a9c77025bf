import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { processStartMarker } from "./meta.ts";
import { checkParquetFile } from "./corrupt.ts";

/** Options for {@link openDuckDB}; unset values keep DuckDB's defaults (all cores, 80% of RAM). */
export interface OpenDuckDBOptions {
  /** Worker threads for query execution. */
  threads?: number;
  /** Memory limit such as `"2GB"`. */
  memoryLimit?: string;
  /** Most bytes of spill files, such as `"4GB"` (DuckDB's default: 90% of the free disk). */
  tempLimit?: string;
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

/**
 * A fresh spill folder for one DuckDB instance, not yet created: DuckDB creates it at the first
 * spill and removes it when the instance closes. It sits in a folder only this user can enter
 * (`marketpipe-spill-<uid>` in the system temp directory), holds nothing but that instance's
 * spill files, and its name carries the owner's pid and start time, so folders left by a killed
 * process are removed here, by the next instance any MarketPipe process opens.
 */
export async function privateSpillDir(): Promise<string> {
  let root = join(tmpdir(), `marketpipe-spill-${Deno.uid() ?? "user"}`);
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(root);
  if (!info.isDirectory || (info.uid !== null && info.uid !== Deno.uid())) {
    // Someone else's folder (or a link) under that name: use a fresh one of our own instead.
    root = await Deno.makeTempDir({ prefix: "marketpipe-spill-" });
  }
  try {
    for await (const entry of Deno.readDir(root)) {
      const match = /^(\d+)-([^-]*)-[0-9a-f]{8}$/.exec(entry.name);
      if (match === null) continue;
      const marker = processStartMarker(Number(match[1]));
      if (marker !== null && marker === (match[2] || null)) continue;
      if (marker === null && Deno.build.os !== "linux") continue; // no way to tell: keep it
      await Deno.remove(join(root, entry.name), { recursive: true }).catch(() => {});
    }
  } catch {
    // Cleaning up is best effort; the new folder's name is unique anyway.
  }
  const self = `${Deno.pid}-${processStartMarker(Deno.pid) ?? ""}`;
  return join(root, `${self}-${crypto.randomUUID().slice(0, 8)}`);
}

/**
 * `read_parquet` of stored files (layout 2) as a SQL relation with every bar column: `symbol` and
 * `timeframe` (and `year`) come from the folder names, as VARCHAR (a symbol like "1234" stays text).
 */
export function readFilesSql(paths: readonly string[]): string {
  return `read_parquet([${paths.map(sqlString).join(", ")}], hive_partitioning = true, ` +
    "hive_types_autocast = false)";
}

/** Quotes a value as a SQL string literal (`it's` -> `'it''s'`), for paths in DDL that cannot take parameters. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Quotes a SQL identifier (`bars_1m` -> `"bars_1m"`). */
export function sqlIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The bar columns as a SQL select list, in file order. */
export const BAR_COLUMNS_SQL = BAR_COLUMNS.map((column) => sqlIdent(column.name)).join(", ");

/** An empty relation with the bar columns and their types, for reads that have no file. */
export const NO_BARS_SQL = `SELECT ${
  BAR_COLUMNS.map((column) => `NULL::${column.type} AS ${sqlIdent(column.name)}`).join(", ")
} WHERE false`;

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
 *   await createBarViews(connection, [{ timeframe: "1m", path: "/data/bars/timeframe=1m/..." }]);
 * } finally {
 *   instance.closeSync();
 * }
 * ```
 */
export async function openDuckDB(options: OpenDuckDBOptions = {}): Promise<DuckDBInstance> {
  const config: Record<string, string> = {
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
    // DuckDB's default is ".tmp" in the working directory, which a sandboxed query may read.
    temp_directory: await privateSpillDir(),
  };
  if (options.threads !== undefined) config.threads = String(options.threads);
  if (options.memoryLimit !== undefined) config.memory_limit = options.memoryLimit;
  if (options.tempLimit !== undefined) config.max_temp_directory_size = options.tempLimit;
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
 * (Re)creates the views `bars_<tf>` over the live files of each timeframe (`files`: the bars
 * tree's manifest, absolute paths), drops those of timeframes without files, and (re)creates
 * `bars` over all of them (an empty relation with the bar columns when there is no data). A view
 * lists its files, so it reads exactly the manifest's snapshot, and filters on `symbol` (and
 * `year`) prune files by their folder names before any is opened.
 *
 * Returns the timeframes that have a view, shortest first; `listed`, when given, receives the
 * paths each view lists.
 */
export async function createBarViews(
  connection: DuckDBConnection,
  files: readonly { timeframe: Timeframe; path: string }[],
  listed?: Map<Timeframe, readonly string[]>,
): Promise<Timeframe[]> {
  const byTimeframe = Map.groupBy(files, (file) => file.timeframe);
  const present: Timeframe[] = [];
  for (const timeframe of TIMEFRAMES) {
    const view = sqlIdent(barViewName(timeframe));
    const paths = byTimeframe.get(timeframe)?.map((file) => file.path) ?? [];
    const viewed = paths.length === 0 ? [] : await _createView(connection, view, paths);
    if (viewed.length === 0) {
      await connection.run(`DROP VIEW IF EXISTS ${view}`);
    } else {
      present.push(timeframe);
      listed?.set(timeframe, viewed);
    }
  }
  const union = present.map((tf) => `SELECT * FROM ${sqlIdent(barViewName(tf))}`)
    .join(" UNION ALL BY NAME ") || NO_BARS_SQL;
  await connection.run(`CREATE OR REPLACE VIEW bars AS ${union}`);
  return present;
}

/** Creates `view` over `paths`; returns the files it lists (none when it could not be created). */
async function _createView(
  connection: DuckDBConnection,
  view: string,
  paths: readonly string[],
): Promise<readonly string[]> {
  // An explicit column list fixes the order and leaves out the path-only key year. Hive keys
  // stay VARCHAR (no autocast), so symbol "1234" is not turned into a number.
  const create = (files: readonly string[]) =>
    connection.run(
      `CREATE OR REPLACE VIEW ${view} AS SELECT ${BAR_COLUMNS_SQL} FROM ${readFilesSql(files)}`,
    );
  try {
    await create(paths);
    return paths;
  } catch (error) {
    // Binding reads the first file's footer: when that one cannot be read, the view lists the
    // files whose footers read instead (a snapshot: the caller reopens while files are bad),
    // so one corrupt file does not take every query of the timeframe down with it.
    const readable: string[] = [];
    for (const file of paths) {
      if (await checkParquetFile(connection, file, { footerOnly: true }) === undefined) {
        readable.push(file);
      }
    }
    if (readable.length === paths.length) throw error;
    if (readable.length > 0) await create(readable);
    return readable;
  }
}
