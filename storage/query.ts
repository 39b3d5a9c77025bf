/**
 * User SQL on the query engine: one read-only statement, its rows as JSON-safe values or its
 * result written to a Parquet file.
 *
 * @module
 */
import type { DuckDBConnection, DuckDBResult } from "@duckdb/node-api";
import { resolve } from "node:path";
import { BAR_COLUMNS_SQL, barViewName, readFilesSql, sqlIdent, sqlString } from "./duckdb.ts";
import { writeFileAtomic } from "./output.ts";
import {
  DEFAULT_QUERY_TIMEOUT_MS,
  type QueryEngine,
  retryReplaced,
  withConnection,
} from "./query_engine.ts";
import { checkNotEmpty, prepareReadOnly, toQueryError } from "./query_guard.ts";
import { filesInScope, statsQuery, type ViewFile, viewScopes } from "./query_narrow.ts";
import { REFERENCE_TABLES } from "./query_reference.ts";
import { toJsonSafe } from "./query_values.ts";

/** Rows returned by {@link runQuery} when no `limit` is given. */
export const DEFAULT_QUERY_LIMIT = 10_000;

/** Options for {@link runQuery}. */
export interface RunQueryOptions {
  /** Most rows to return; `truncated` tells whether more exist (default 10,000; `Infinity`: all). */
  limit?: number;
  /** Interrupt the query after this many milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Interrupts the query when aborted; the abort reason is thrown. */
  signal?: AbortSignal;
}

/** Options for {@link writeQueryParquet}. */
export interface WriteQueryParquetOptions {
  /** Most rows to write (default and `Infinity`: all). */
  limit?: number;
  /** Interrupt the export after this many milliseconds (default: no timeout). */
  timeoutMs?: number;
  /** Interrupts the export when aborted; the abort reason is thrown. */
  signal?: AbortSignal;
}

/** One result column: its name (made unique) and DuckDB type such as `TIMESTAMP WITH TIME ZONE`. */
export interface QueryColumn {
  name: string;
  type: string;
}

/**
 * Result of {@link runQuery}: JSON-safe rows (BIGINT as number or string beyond 2^53, TIMESTAMPTZ as
 * ISO-8601 UTC with milliseconds, DATE as `YYYY-MM-DD`, DECIMAL as number, lists and structs as
 * arrays and objects).
 */
export interface QueryResult {
  columns: QueryColumn[];
  rows: unknown[][];
  /** Number of rows in `rows`. */
  rowCount: number;
  /** Whether the query had more rows than the limit. */
  truncated: boolean;
}

/**
 * Runs one read-only statement (SELECT, DESCRIBE, SHOW, SUMMARIZE, read-only PRAGMA, EXPLAIN [ANALYZE]
 * of a SELECT) and returns at most `limit` JSON-safe rows.
 *
 * Throws {@link QueryRejectedError} for an empty query, anything but a read-only statement, a
 * parameter or file access outside the data directory, {@link QuerySqlError} for SQL DuckDB
 * cannot parse, bind or run, {@link QueryTimeoutError} after `timeoutMs` (returning without the
 * query when DuckDB does not stop within a second), and the abort reason when `signal` aborts.
 *
 * @example
 * ```ts
 * const { rows, truncated } = await runQuery(engine, "FROM bars_1m ORDER BY ts", { limit: 100 });
 * ```
 */
export async function runQuery(
  engine: QueryEngine,
  sql: string,
  options: RunQueryOptions = {},
): Promise<QueryResult> {
  return await retryReplaced(engine, () => _runQueryOnce(engine, sql, options));
}

async function _runQueryOnce(
  engine: QueryEngine,
  sql: string,
  options: RunQueryOptions = {},
): Promise<QueryResult> {
  const limit = options.limit ?? DEFAULT_QUERY_LIMIT;
  _checkLimit(limit);
  const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  _checkTimeout(timeoutMs);
  checkNotEmpty(sql);
  const run = async (connection: DuckDBConnection) => {
    const planned = await _planViews(connection, engine, sql);
    // DuckDB's query() accepts exactly one SELECT (DESCRIBE, SHOW, WITH and VALUES included) and
    // refuses everything else at parse time, so a statement it prepares needs no further check;
    // anything it refuses goes through the full check for a precise error (or EXPLAIN).
    const fast = await _runLimited(connection, engine, planned, limit);
    if (fast) return fast;
    const prepared = await prepareReadOnly(connection, engine, sql, { allowExplain: true });
    try {
      const result = await prepared.stream();
      const columns = _columns(result);
      const rows: unknown[][] = [];
      let truncated = false;
      // Stop fetching as soon as one row beyond the limit is seen; the rest is never computed
      // (closing the connection ends the streaming result).
      while (true) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        const room = limit - rows.length;
        if (chunk.rowCount > room) {
          for (let index = 0; index < room; index++) {
            rows.push(chunk.convertRowValues(index, toJsonSafe));
          }
          truncated = true;
          break;
        }
        for (const row of chunk.convertRows(toJsonSafe)) rows.push(row);
      }
      return { columns, rows, rowCount: rows.length, truncated };
    } catch (error) {
      // Errors raised while running (a bad cast, a refused path) are the SQL's, like bind errors.
      throw await toQueryError(connection, engine, sql, error);
    } finally {
      prepared.destroySync();
    }
  };
  // Only user SQL can hold DuckDB in work it never checks for interrupts, and it writes nothing,
  // so it alone may be abandoned when it does not stop in time.
  return await withConnection(engine, timeoutMs, options.signal, run, {
    abandonAfterMs: _ABANDON_AFTER_MS,
  });
}

/** How long a stopped query may take to give up before {@link runQuery} returns without it. */
const _ABANDON_AFTER_MS = 1_000;

/**
 * Run a checked SELECT as `FROM query('<sql>') LIMIT limit + 1`, materialized: DuckDB plans the
 * whole pipeline in parallel and stops at the limit, which is faster than pulling chunks of a
 * streaming result. The SQL travels as a string literal, so nothing in it can change the wrapper.
 * It runs without a separate prepare, which would plan the statement (and expand the file lists
 * of the views) a second time. Returns undefined when DuckDB's `query()` does not accept the
 * statement (some DESCRIBE/SHOW forms) or it fails before running (parse and bind errors, whose
 * positions would point into the wrapper): the caller then checks and runs the original statement.
 */
async function _runLimited(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
  limit: number,
): Promise<QueryResult | undefined> {
  let result;
  try {
    const cap = limit === Infinity ? "" : ` LIMIT ${limit + 1}`;
    result = await connection.run(`FROM query(${sqlString(sql)})${cap}`);
  } catch (error) {
    // Stopped by a timeout: trying the slow path would only plan the statement again.
    if (_isInterrupt(error)) throw error;
    if (error instanceof Error && _FAILED_BEFORE_RUNNING.test(error.message)) return undefined;
    throw await toQueryError(connection, engine, sql, error);
  }
  const columns = _columns(result);
  let rows;
  try {
    rows = (await result.convertRows(toJsonSafe)) as unknown[][];
  } catch (error) {
    throw await toQueryError(connection, engine, sql, error);
  }
  const truncated = rows.length > limit;
  if (truncated) rows.length = limit;
  return { columns, rows, rowCount: rows.length, truncated };
}

/**
 * Errors of {@link _runLimited} raised before the statement ran: `query()` refusing it, a parse,
 * bind or catalog error, parameters, or an internal error of `query()` on them.
 */
const _FAILED_BEFORE_RUNNING =
  /^(Parser Error|Binder Error|Catalog Error|INTERNAL Error): |Not all parameters were bound|\nLINE \d+:/;

/**
 * Runs one read-only SELECT and writes its result to the engine's `outputFile` as zstd Parquet:
 * first to a temp file beside it, then renamed over it, so no partial file is ever left.
 * Returns the number of rows written.
 */
export async function writeQueryParquet(
  engine: QueryEngine,
  sql: string,
  outputFile: string,
  options: WriteQueryParquetOptions = {},
): Promise<number> {
  return await retryReplaced(
    engine,
    () => _writeQueryParquetOnce(engine, sql, outputFile, options),
  );
}

async function _writeQueryParquetOnce(
  engine: QueryEngine,
  sql: string,
  outputFile: string,
  options: WriteQueryParquetOptions = {},
): Promise<number> {
  if (engine.outputFile === undefined || resolve(outputFile) !== engine.outputFile) {
    throw new TypeError(
      `Cannot write query output to "${outputFile}": the query engine was opened for ${
        engine.outputFile === undefined ? "no output file" : `"${engine.outputFile}"`
      }`,
    );
  }
  if (options.timeoutMs !== undefined) _checkTimeout(options.timeoutMs);
  if (options.limit !== undefined) _checkLimit(options.limit);
  checkNotEmpty(sql);
  const cap = options.limit === undefined || options.limit === Infinity
    ? ""
    : ` LIMIT ${options.limit}`;
  const temp = engine._claimTempOutput();
  try {
    return await writeFileAtomic(engine.outputFile, (tempPath) =>
      withConnection(
        engine,
        options.timeoutMs,
        options.signal,
        async (connection) => {
          const planned = await _planViews(connection, engine, sql);
          const prepared = await prepareReadOnly(connection, engine, sql, { allowExplain: false });
          prepared.destroySync();
          // The SQL travels as a string literal into query(), which accepts a single SELECT only:
          // nothing in it (a trailing comment, a semicolon) can change the COPY around it.
          const copy = `COPY (FROM query(${sqlString(planned)})${cap}) TO ${sqlString(tempPath)} ` +
            "(FORMAT parquet, COMPRESSION zstd)";
          try {
            return (await connection.run(copy)).rowsChanged;
          } catch (error) {
            throw await toQueryError(connection, engine, sql, error);
          }
        },
      ), temp.path);
  } finally {
    temp.release();
  }
}

/**
 * The number of rows one read-only SELECT returns, counted by DuckDB without fetching them: how
 * much a limit cut from a result.
 */
export async function countQueryRows(
  engine: QueryEngine,
  sql: string,
  options: Omit<WriteQueryParquetOptions, "limit"> = {},
): Promise<number> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  _checkTimeout(timeoutMs);
  checkNotEmpty(sql);
  return await retryReplaced(
    engine,
    () =>
      withConnection(engine, timeoutMs, options.signal, async (connection) => {
        const planned = await _planViews(connection, engine, sql);
        const prepared = await prepareReadOnly(connection, engine, sql, { allowExplain: false });
        prepared.destroySync();
        try {
          const count = `SELECT count(*)::DOUBLE FROM query(${sqlString(planned)})`;
          return (await connection.runAndReadAll(count)).getRows()[0][0] as number;
        } catch (error) {
          throw await toQueryError(connection, engine, sql, error);
        }
      }),
  );
}

/**
 * Prepares a connection for one user statement and returns the SQL to run for it. Before DuckDB
 * plans anything (storage/query_narrow.ts):
 * - a statement of only `count(*)`, `min(ts)` and `max(ts)` over one timeframe's view (filtered
 *   at most by symbol or timeframe) is answered from the manifest's statistics, which were read
 *   from each file when it was written: the returned SQL selects those constants under the
 *   statement's own column names and types;
 * - each bar view the statement reads only in part is shadowed, on this connection only, by a
 *   temporary view of the files that can hold those rows, so planning expands a handful of files
 *   instead of every file of the timeframe.
 * Statements it cannot judge, and engines with few files (where parsing costs more than it
 * saves), run as they are.
 */
async function _planViews(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
): Promise<string> {
  const views = engine._viewFiles();
  let files = 0;
  for (const list of views.values()) files += list.length;
  if (files < _PLAN_MIN_FILES || !/symbol|trading_date|timeframe|count|min|max/i.test(sql)) {
    return sql;
  }
  let tree: unknown;
  try {
    const parsed = await connection.runAndReadAll("SELECT json_serialize_sql($1::VARCHAR)", [sql]);
    tree = JSON.parse(String(parsed.getRows()[0][0]));
  } catch {
    return sql;
  }
  const byName = new Map([...views].map(([timeframe, list]) => [barViewName(timeframe), list]));
  const names = new Set(byName.keys()).add("bars");
  const stats = statsQuery(tree, names);
  if (stats !== undefined) {
    const answer = await _statsAnswer(connection, { sql, files: byName.get(stats.view)!, stats });
    if (answer !== undefined) return answer;
  }
  const scopes = viewScopes(tree, names, new Set(REFERENCE_TABLES));
  if (scopes === undefined) return sql;
  for (const [name, all] of byName) {
    const keep = filesInScope(all, scopes.get(name), scopes.get("bars"));
    if (keep === undefined || keep.length === all.length) continue;
    const rows = keep.length > 0;
    await _shadowView(connection, { name, files: rows ? keep : all.slice(0, 1), rows });
  }
  return sql;
}

/** Fewest files in an engine's views for {@link _planViews} to parse a statement. */
const _PLAN_MIN_FILES = 100;

/**
 * A temporary view `name` over `files` on this connection (shadowing the engine's view of that
 * name); with `rows` false it has their columns and no rows, which keeps the types exact.
 */
async function _shadowView(
  connection: DuckDBConnection,
  { name, files, rows }: { name: string; files: readonly ViewFile[]; rows: boolean },
): Promise<void> {
  await connection.run(
    `CREATE OR REPLACE TEMP VIEW ${sqlIdent(name)} AS SELECT ${BAR_COLUMNS_SQL} FROM ${
      readFilesSql(files.map((file) => file.path))
    }${rows ? "" : " WHERE false"}`,
  );
}

/**
 * The constants that answer a {@link statsQuery} statement, as SQL: its column names and types
 * come from preparing it over a view of no rows. Undefined when a type is not the expected one.
 */
async function _statsAnswer(
  connection: DuckDBConnection,
  { sql, files, stats }: {
    sql: string;
    files: readonly ViewFile[];
    stats: NonNullable<ReturnType<typeof statsQuery>>;
  },
): Promise<string | undefined> {
  const matched = files.filter((file) => stats.predicates.every((predicate) => predicate(file)));
  let rows = 0;
  let minTs = Infinity;
  let maxTs = -Infinity;
  for (const file of matched) {
    rows += file.rows;
    if (file.rows === 0) continue;
    minTs = Math.min(minTs, file.minTs);
    maxTs = Math.max(maxTs, file.maxTs);
  }
  await _shadowView(connection, { name: stats.view, files: files.slice(0, 1), rows: false });
  const columns: { name: string; type: string }[] = [];
  try {
    const prepared = await connection.prepare(sql);
    try {
      for (let index = 0; index < prepared.columnCount; index++) {
        columns.push({
          name: prepared.columnName(index),
          type: prepared.columnType(index).toString(),
        });
      }
    } finally {
      prepared.destroySync();
    }
  } catch {
    return undefined;
  } finally {
    await connection.run(`DROP VIEW temp.main.${sqlIdent(stats.view)}`);
  }
  if (columns.length !== stats.items.length) return undefined;
  const values: string[] = [];
  for (const [index, item] of stats.items.entries()) {
    const { name, type } = columns[index];
    if (type !== (item === "count" ? "BIGINT" : "TIMESTAMP WITH TIME ZONE")) return undefined;
    const ts = item === "min" ? minTs : maxTs;
    const value = item === "count"
      ? `${rows}::BIGINT`
      : rows === 0
      ? "NULL::TIMESTAMPTZ"
      : `make_timestamp(${ts}::BIGINT)::TIMESTAMPTZ`;
    values.push(`${value} AS ${sqlIdent(name)}`);
  }
  return `SELECT ${values.join(", ")}`;
}

function _checkLimit(limit: number): void {
  if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new RangeError(`Invalid query limit ${limit}: expected a whole number of at least 0`);
  }
}

function _columns(result: DuckDBResult): QueryColumn[] {
  const columnTypes = result.columnTypes();
  return result.deduplicatedColumnNames().map((name, index) => ({
    name,
    type: columnTypes[index].toString(),
  }));
}

function _isInterrupt(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("INTERRUPT Error: ");
}

function _checkTimeout(timeoutMs: number): void {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`Invalid query timeout ${timeoutMs} ms: expected a positive number`);
  }
}
