import {
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBDecimalValue,
  type DuckDBInstance,
  type DuckDBPreparedStatement,
  type DuckDBTimestampTZValue,
  DuckDBTypeId,
  type DuckDBValue,
  type DuckDBValueConverter,
  type Json,
  JsonDuckDBValueConverter,
  LIST,
  listValue,
  StatementType,
  VARCHAR,
} from "@duckdb/node-api";
import { existsSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { CorruptFileError, errorMessage } from "../core/errors.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import {
  BAR_COLUMNS,
  barViewName,
  createBarViews,
  openDuckDB,
  sqlIdent,
  sqlString,
} from "./duckdb.ts";
import {
  checkParquetFile,
  type CorruptFile,
  corruptFileError,
  corruptFileMessage,
} from "./corrupt.ts";
import { type BarFile, type FileFilter, listFiles, withManifest } from "./manifest.ts";
import { META_FILE, openReadOnlyDatabase } from "./meta.ts";
import { assertLayoutCurrent } from "./migrate_layout.ts";
import { checkOutputPath, tempPathBeside, writeFileAtomic } from "./output.ts";

/** Rows returned by {@link runQuery} when no `limit` is given. */
export const DEFAULT_QUERY_LIMIT = 10_000;

/** Milliseconds {@link runQuery} lets a query run when no `timeoutMs` is given. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** A statement the query runner refuses to run: not read-only, or touching files it may not read. */
export class QueryRejectedError extends Error {
  /** Creates the error; `options.cause` holds DuckDB's error when there is one. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QueryRejectedError";
  }
}

/** DuckDB refused the SQL itself (syntax, unknown table or column, bad types); the message has its position. */
export class QuerySqlError extends Error {
  /** Creates the error; `options.cause` holds DuckDB's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QuerySqlError";
  }
}

/** A query ran longer than its timeout and was interrupted. */
export class QueryTimeoutError extends Error {
  /** The timeout that expired, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Set when DuckDB did not stop within a grace period and the query was abandoned (a single huge
   * value such as `repeat('a', 2000000000)` is not interruptible): resolves once DuckDB has really
   * stopped and the connection is closed. Hold what bounds concurrent queries until then.
   */
  readonly settled: Promise<void> | undefined;

  /** Creates the error for a query interrupted after `timeoutMs`. */
  constructor(timeoutMs: number, options?: ErrorOptions & { settled?: Promise<void> }) {
    super(`Query timed out after ${timeoutMs} ms`, options);
    this.name = "QueryTimeoutError";
    this.timeoutMs = timeoutMs;
    this.settled = options?.settled;
  }
}

/** Options for {@link openQueryEngine}. */
export interface QueryEngineOptions {
  /**
   * The one file `writeQueryParquet` may write (resolved against the working directory); refused
   * inside the data directory (see {@link checkOutputPath}).
   */
  outputFile?: string;
  /** More files `outputFile` must never be, e.g. a metrics history database elsewhere. */
  protectedFiles?: readonly string[];
  /** Worker threads for query execution (default: all cores). */
  threads?: number;
  /** DuckDB memory limit such as `"2GB"` (default {@link defaultQueryMemoryLimit}). */
  memoryLimit?: string;
  /** Most bytes of spill files such as `"4GB"` (default {@link DEFAULT_QUERY_TEMP_LIMIT}). */
  tempLimit?: string;
  /**
   * A private directory {@link exportBarsParquet} writes its temporary files to. Exports run on
   * a second DuckDB instance that runs no user SQL, so queries cannot read this directory.
   */
  exportDir?: string;
}

/** Spill limit of a query engine when none is given: spills beyond it fail the query. */
export const DEFAULT_QUERY_TEMP_LIMIT = "4GiB";

/** Memory limit of a query engine when none is given: a quarter of the RAM, at least 256 MiB. */
export function defaultQueryMemoryLimit(): string {
  const total = Deno.systemMemoryInfo().total;
  return `${Math.max(256, Math.floor(total / 4 / 2 ** 20))}MiB`;
}

/**
 * A sandboxed, read-only DuckDB instance over one data directory; open it with
 * {@link openQueryEngine} and close it with `close()` or `using`.
 */
export class QueryEngine {
  /** Absolute data directory the views read from. */
  readonly dataDir: string;
  /** Timeframes that have bars (and therefore a `bars_<tf>` view) in the engine's snapshot. */
  get timeframes(): readonly Timeframe[] {
    return this.#timeframes;
  }
  #timeframes: readonly Timeframe[];
  /** Absolute path `writeQueryParquet` may write, if one was given. */
  readonly outputFile: string | undefined;
  /** Absolute directory {@link exportBarsParquet} writes to, if one was given. */
  readonly exportDir: string | undefined;
  readonly #instance: DuckDBInstance;
  readonly #tempOutputFile: string | undefined;
  readonly #limits: { memoryLimit: string; tempLimit: string; threads?: number };
  #exporter: Promise<DuckDBInstance> | undefined;
  #manifest: DatabaseSync | undefined;
  #closed = false;
  #writing = false;

  /** Wraps an instance that is already sandboxed; use {@link openQueryEngine} instead. */
  constructor(
    instance: DuckDBInstance,
    init: {
      dataDir: string;
      timeframes: readonly Timeframe[];
      outputFile?: string;
      tempOutputFile?: string;
      exportDir?: string;
      limits?: { memoryLimit: string; tempLimit: string; threads?: number };
    },
  ) {
    this.#limits = init.limits ??
      { memoryLimit: defaultQueryMemoryLimit(), tempLimit: DEFAULT_QUERY_TEMP_LIMIT };
    this.#instance = instance;
    this.dataDir = init.dataDir;
    this.#timeframes = init.timeframes;
    this.outputFile = init.outputFile;
    this.#tempOutputFile = init.tempOutputFile;
    this.exportDir = init.exportDir;
  }

  /**
   * Internal to storage/: the live files matching `filter`, from a read-only connection to the
   * manifest that the engine keeps open (none while the data directory has no database yet).
   */
  _liveFiles(filter: FileFilter): BarFile[] {
    if (this.#closed) throw new Error("Cannot read the manifest: the query engine is closed");
    if (this.#manifest === undefined) {
      const path = join(this.dataDir, META_FILE);
      if (!existsSync(path)) return [];
      this.#manifest = openReadOnlyDatabase(path);
    }
    return listFiles(this.#manifest, filter);
  }

  /**
   * Internal to storage/: makes the views list the manifest's files as they are now. Called when a
   * file of the old snapshot was replaced (and deleted) by a writer since the engine opened.
   */
  async _refreshViews(): Promise<void> {
    const connection = await this._connect();
    try {
      this.#timeframes = await _viewsFromManifest(connection, this.dataDir, this);
    } finally {
      connection.closeSync();
    }
  }

  /** Internal to storage/: a new connection on the sandboxed instance (callers use runQuery). */
  _connect(): Promise<DuckDBConnection> {
    if (this.#closed) throw new Error("Cannot run a query: the query engine is closed");
    return this.#instance.connect();
  }

  /**
   * Internal to storage/: a connection on the export instance, opened at the first export. It
   * may read `bars/` and write `exportDir`, and runs only statements storage/ builds itself.
   */
  async _connectExporter(): Promise<DuckDBConnection> {
    if (this.#closed) throw new Error("Cannot export: the query engine is closed");
    if (this.exportDir === undefined) {
      throw new TypeError(
        "Cannot export Parquet: the query engine was opened without an exportDir",
      );
    }
    const dirs = [join(this.dataDir, "bars") + sep, join(this.exportDir, sep)];
    this.#exporter ??= _openSandbox(dirs, [], this.#limits);
    // A failed open is not kept: the next export tries again.
    this.#exporter.catch(() => (this.#exporter = undefined));
    const instance = await this.#exporter;
    // close() closes the instance once it is open.
    if (this.#closed) throw new Error("Cannot export: the query engine is closed");
    return await instance.connect();
  }

  /** Internal to storage/: claims the temp file beside `outputFile` for one write at a time. */
  _claimTempOutput(): { path: string; release(): void } {
    if (this.#tempOutputFile === undefined) {
      throw new Error("Cannot write query output: the query engine has no output file");
    }
    if (this.#writing) throw new Error("Cannot write query output: a write is already running");
    this.#writing = true;
    return { path: this.#tempOutputFile, release: () => (this.#writing = false) };
  }

  /** Closes the DuckDB instance; queries still running finish on their own connections. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#instance.closeSync();
    this.#manifest?.close();
    this.#exporter?.then((instance) => instance.closeSync(), () => {});
  }

  /** Same as `close()`, for `using engine = await openQueryEngine(dir)`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options for {@link runQuery}. */
export interface RunQueryOptions {
  /** Most rows to return; `truncated` tells whether more exist (default 10,000). */
  limit?: number;
  /** Interrupt the query after this many milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Interrupts the query when aborted; the abort reason is thrown. */
  signal?: AbortSignal;
}

/** Options for {@link writeQueryParquet}. */
export interface WriteQueryParquetOptions {
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
 * Opens a dedicated DuckDB instance with the bar views, then locks it down: it can read only
 * `<dataDir>/bars/` and `<dataDir>/quarantine/`, write only `options.outputFile`, and never change
 * its configuration again.
 *
 * @example
 * ```ts
 * using engine = await openQueryEngine("./data");
 * const result = await runQuery(engine, "SELECT symbol, count(*) AS n FROM bars_1m GROUP BY 1");
 * console.log(formatTable(result));
 * ```
 */
export async function openQueryEngine(
  dataDir: string,
  options: QueryEngineOptions = {},
): Promise<QueryEngine> {
  const absDataDir = resolve(dataDir);
  await assertLayoutCurrent(absDataDir);
  const readable = [join(absDataDir, "bars") + sep, join(absDataDir, "quarantine") + sep];
  const exportDir = options.exportDir === undefined ? undefined : resolve(options.exportDir);
  if (exportDir !== undefined && !relative(absDataDir, exportDir).startsWith("..")) {
    throw new RangeError(`Invalid exportDir "${options.exportDir}": it is inside ${dataDir}`);
  }
  let outputFile: string | undefined;
  let tempOutputFile: string | undefined;
  if (options.outputFile !== undefined) {
    await checkOutputPath(dataDir, options.outputFile, { protectedFiles: options.protectedFiles });
    outputFile = resolve(options.outputFile);
    // Same directory, so the final rename is atomic; never ends in .parquet.
    tempOutputFile = tempPathBeside(outputFile);
  }
  const limits = {
    threads: options.threads,
    memoryLimit: options.memoryLimit ?? defaultQueryMemoryLimit(),
    tempLimit: options.tempLimit ?? DEFAULT_QUERY_TEMP_LIMIT,
  };
  const writable = outputFile === undefined ? [] : [outputFile, tempOutputFile!];
  let timeframes: Timeframe[] = [];
  const instance = await _openSandbox(readable, writable, limits, async (connection) => {
    timeframes = await _viewsFromManifest(connection, absDataDir);
  });
  return new QueryEngine(instance, {
    dataDir: absDataDir,
    timeframes,
    outputFile,
    tempOutputFile,
    exportDir,
    limits,
  });
}

/**
 * (Re)creates the bar views over the manifest's files as they are now. Creating a view reads the
 * first file's footer: when a writer replaced (and deleted) that file between the manifest read
 * and the view, the manifest is read again, up to three times.
 */
async function _viewsFromManifest(
  connection: DuckDBConnection,
  dataDir: string,
  engine?: QueryEngine,
): Promise<Timeframe[]> {
  for (let attempt = 1;; attempt++) {
    const files = engine !== undefined
      ? engine._liveFiles({ tree: "bars" })
      : await withManifest(dataDir, (db) => listFiles(db, { tree: "bars" }), []);
    try {
      return await createBarViews(
        connection,
        files.map((file) => ({ timeframe: file.timeframe, path: join(dataDir, file.path) })),
      );
    } catch (error) {
      if (attempt >= 3 || !_isMissingFileError(dataDir, error)) throw error;
    }
  }
}

/**
 * A DuckDB instance that can read only `dirs`, write only `paths`, spills into a private folder
 * within its limits, and can never change its configuration again; `setup` runs before the lock.
 */
async function _openSandbox(
  dirs: readonly string[],
  paths: readonly string[],
  limits: { memoryLimit: string; tempLimit: string; threads?: number },
  setup?: (connection: DuckDBConnection) => Promise<void>,
): Promise<DuckDBInstance> {
  const instance = await openDuckDB(limits);
  try {
    const connection = await instance.connect();
    try {
      await setup?.(connection);
      // allowed_directories/allowed_paths cannot be given to DuckDBInstance.create: SET them, then
      // cut off all other file access and freeze the configuration (SET, LOAD, ATTACH fail after).
      // DuckDB also lets queries read its temp_directory: openDuckDB makes that a private folder
      // holding only this instance's own spill files.
      await connection.run(`SET allowed_directories = [${dirs.map(sqlString).join(", ")}]`);
      if (paths.length > 0) {
        await connection.run(`SET allowed_paths = [${paths.map(sqlString).join(", ")}]`);
      }
      await connection.run("SET enable_external_access = false");
      await connection.run("SET lock_configuration = true");
      return instance;
    } finally {
      connection.closeSync();
    }
  } catch (error) {
    instance.closeSync();
    throw error;
  }
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
  return await _retryReplaced(engine, () => _runQueryOnce(engine, sql, options));
}

async function _runQueryOnce(
  engine: QueryEngine,
  sql: string,
  options: RunQueryOptions = {},
): Promise<QueryResult> {
  const limit = options.limit ?? DEFAULT_QUERY_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(`Invalid query limit ${limit}: expected a whole number of at least 0`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  _checkTimeout(timeoutMs);
  _checkNotEmpty(sql);
  const run = async (connection: DuckDBConnection) => {
    // DuckDB's query() accepts exactly one SELECT (DESCRIBE, SHOW, WITH and VALUES included) and
    // refuses everything else at parse time, so a statement it prepares needs no further check;
    // anything it refuses goes through the full check for a precise error (or EXPLAIN).
    const fast = await _runLimited(connection, engine, sql, limit);
    if (fast) return fast;
    const prepared = await _prepareReadOnly(connection, engine, sql, { allowExplain: true });
    try {
      const result = await prepared.stream();
      const columnTypes = result.columnTypes();
      const columns = result.deduplicatedColumnNames().map((name, index) => ({
        name,
        type: columnTypes[index].toString(),
      }));
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
            rows.push(chunk.convertRowValues(index, _toJsonSafe));
          }
          truncated = true;
          break;
        }
        for (const row of chunk.convertRows(_toJsonSafe)) rows.push(row);
      }
      return { columns, rows, rowCount: rows.length, truncated };
    } catch (error) {
      // Errors raised while running (a bad cast, a refused path) are the SQL's, like bind errors.
      throw await _toQueryError(connection, engine, sql, error);
    } finally {
      prepared.destroySync();
    }
  };
  // Only user SQL can hold DuckDB in work it never checks for interrupts, and it writes nothing,
  // so it alone may be abandoned when it does not stop in time.
  return await _withConnection(engine, timeoutMs, options.signal, run, false, _ABANDON_AFTER_MS);
}

/** How long a stopped query may take to give up before {@link runQuery} returns without it. */
const _ABANDON_AFTER_MS = 1_000;

/**
 * Run a checked SELECT as `FROM query('<sql>') LIMIT limit + 1`, materialized: DuckDB plans the
 * whole pipeline in parallel and stops at the limit, which is faster than pulling chunks of a
 * streaming result. The SQL travels as a string literal, so nothing in it can change the wrapper.
 * Returns undefined when DuckDB's `query()` does not accept the statement (some DESCRIBE/SHOW
 * forms); the caller then streams the original statement.
 */
async function _runLimited(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
  limit: number,
): Promise<QueryResult | undefined> {
  let wrapped;
  try {
    wrapped = await connection.prepare(`FROM query(${sqlString(sql)}) LIMIT ${limit + 1}`);
  } catch (error) {
    // Stopped by a timeout: trying the slow path would only plan the statement again.
    if (_isInterrupt(error)) throw error;
    return undefined;
  }
  try {
    let result;
    try {
      result = await wrapped.run();
    } catch (error) {
      // query() fails internally on parameters ($1, ?): the full check names them.
      if (error instanceof Error && error.message.startsWith("INTERNAL Error: ")) return undefined;
      throw await _toQueryError(connection, engine, sql, error);
    }
    const columnTypes = result.columnTypes();
    const columns = result.deduplicatedColumnNames().map((name, index) => ({
      name,
      type: columnTypes[index].toString(),
    }));
    let rows;
    try {
      rows = (await result.convertRows(_toJsonSafe)) as unknown[][];
    } catch (error) {
      throw await _toQueryError(connection, engine, sql, error);
    }
    const truncated = rows.length > limit;
    if (truncated) rows.length = limit;
    return { columns, rows, rowCount: rows.length, truncated };
  } finally {
    wrapped.destroySync();
  }
}

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
  return await _retryReplaced(
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
  _checkNotEmpty(sql);
  const temp = engine._claimTempOutput();
  try {
    return await writeFileAtomic(engine.outputFile, (tempPath) =>
      _withConnection(
        engine,
        options.timeoutMs,
        options.signal,
        async (connection) => {
          const prepared = await _prepareReadOnly(connection, engine, sql, { allowExplain: false });
          prepared.destroySync();
          // The SQL travels as a string literal into query(), which accepts a single SELECT only:
          // nothing in it (a trailing comment, a semicolon) can change the COPY around it.
          const copy = `COPY (FROM query(${sqlString(sql)})) TO ${sqlString(tempPath)} ` +
            "(FORMAT parquet, COMPRESSION zstd)";
          try {
            return (await connection.run(copy)).rowsChanged;
          } catch (error) {
            throw await _toQueryError(connection, engine, sql, error);
          }
        },
      ), temp.path);
  } finally {
    temp.release();
  }
}

/** Renders a result as an aligned text table with a header rule and a row-count footer. */
export function formatTable(result: QueryResult): string {
  const numeric = result.columns.map((column) => _isNumericType(column.type));
  const cells = result.rows.map((row) => row.map(_tableCell));
  const widths = result.columns.map((column, index) =>
    Math.max(column.name.length, ...cells.map((row) => row[index].length))
  );
  const line = (values: string[]) =>
    values.map((value, index) =>
      numeric[index] ? value.padStart(widths[index]) : value.padEnd(widths[index])
    ).join("  ").trimEnd();
  const lines = [
    line(result.columns.map((column) => column.name)),
    widths.map((width) => "-".repeat(width)).join("  "),
    ...cells.map(line),
  ];
  const count = result.rowCount === 1 ? "1 row" : `${result.rowCount} rows`;
  lines.push(
    result.truncated ? `(${count} shown, more available: raise --limit)` : `(${count})`,
  );
  return lines.join("\n") + "\n";
}

/** Renders a result as CSV: a header line, RFC 4180 quoting, empty fields for NULL. */
export function formatCsv(result: QueryResult): string {
  const lines = [result.columns.map((column) => _csvField(column.name)).join(",")];
  for (const row of result.rows) lines.push(row.map(_csvField).join(","));
  return lines.join("\n") + "\n";
}

/** Renders a result as a JSON array with one object per row, one row per line. */
export function formatJson(result: QueryResult): string {
  if (result.rows.length === 0) return "[]\n";
  const names = result.columns.map((column) => column.name);
  const objects = result.rows.map((row) =>
    JSON.stringify(Object.fromEntries(names.map((name, index) => [name, row[index]])))
  );
  return `[\n${objects.map((object) => `  ${object}`).join(",\n")}\n]\n`;
}

// --- running ---------------------------------------------------------------------------------

/**
 * Runs `fn`; when it fails because a file of the engine's snapshot is gone (a writer replaced it:
 * appends, corrections and compactions delete the files they supersede once the manifest no
 * longer lists them), makes the views list the manifest's files as they are now and runs it
 * again, up to three times.
 */
async function _retryReplaced<T>(
  engine: QueryEngine,
  fn: () => Promise<T>,
  mayRetry: () => boolean = () => true,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= 3 || !mayRetry() || !_isMissingFileError(engine.dataDir, error)) throw error;
      await engine._refreshViews();
    }
  }
}

/** Whether `error` (or a cause of it) is DuckDB not finding a file of the data directory. */
function _isMissingFileError(dataDir: string, error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (
      /No files found that match the pattern|No such file or directory|Cannot open file/.test(
        e.message,
      ) && e.message.includes(dataDir)
    ) {
      return true;
    }
  }
  return false;
}

async function _withConnection<T>(
  engine: QueryEngine,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  run: (connection: DuckDBConnection) => Promise<T>,
  exporter = false,
  abandonAfterMs?: number,
): Promise<T> {
  signal?.throwIfAborted();
  const connection = await (exporter ? engine._connectExporter() : engine._connect());
  let stopped: ((cause: unknown, settled?: Promise<void>) => unknown) | undefined;
  let repeat: ReturnType<typeof setInterval> | undefined;
  let grace: ReturnType<typeof setTimeout> | undefined;
  let giveUp: (() => void) | undefined;
  const stop = (makeError: (cause: unknown, settled?: Promise<void>) => unknown) => {
    if (stopped) return;
    stopped = makeError;
    connection.interrupt();
    // An interrupt that lands between two native calls (say after prepare, before execute) is
    // cleared when the next one starts, so keep interrupting until the query gives up.
    repeat = setInterval(() => connection.interrupt(), 25);
    if (abandonAfterMs !== undefined) grace = setTimeout(() => giveUp?.(), abandonAfterMs);
  };
  const timer = timeoutMs === undefined ? undefined : setTimeout(
    () => stop((cause, settled) => new QueryTimeoutError(timeoutMs, { cause, settled })),
    timeoutMs,
  );
  const onAbort = () => stop(() => signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const cleanup = () => {
    clearTimeout(timer);
    clearTimeout(grace);
    clearInterval(repeat);
    signal?.removeEventListener("abort", onAbort);
    connection.closeSync();
  };
  const outcome = run(connection).then(
    (value) => {
      if (stopped) throw stopped(undefined);
      return value;
    },
    (error) => {
      if (stopped) throw stopped(error);
      throw error;
    },
  );
  // DuckDB checks for interrupts between chunks of work, not inside one huge value (`repeat('a',
  // 2000000000)`, constant-folded while planning): past the grace period the caller gets the
  // error at once, and the connection is closed when DuckDB is done (closeSync would block).
  let abandoned = false;
  const given = new Promise<never>((_, reject) => {
    giveUp = () => {
      abandoned = true;
      const settled = outcome.then(() => {}, () => {}).finally(cleanup);
      reject(stopped!(undefined, settled));
    };
  });
  try {
    return await Promise.race([outcome, given]);
  } finally {
    if (!abandoned) cleanup();
  }
}

const _READ_ONLY_TYPES: ReadonlySet<StatementType> = new Set([
  StatementType.SELECT,
  StatementType.EXPLAIN,
]);

/** Statement keywords that never start a read-only statement (used when binding fails first). */
const _WRITE_KEYWORDS: ReadonlySet<string> = new Set([
  "ABORT",
  "ALTER",
  "ANALYZE",
  "ATTACH",
  "BEGIN",
  "CALL",
  "CHECKPOINT",
  "COMMENT",
  "COMMIT",
  "COPY",
  "CREATE",
  "DEALLOCATE",
  "DELETE",
  "DETACH",
  "DROP",
  "END",
  "EXECUTE",
  "EXPORT",
  "FORCE",
  "IMPORT",
  "INSERT",
  "INSTALL",
  "LOAD",
  "MERGE",
  "PREPARE",
  "RESET",
  "ROLLBACK",
  "SET",
  "START",
  "TRUNCATE",
  "UPDATE",
  "USE",
  "VACUUM",
]);

async function _prepareReadOnly(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
  options: { allowExplain: boolean },
): Promise<DuckDBPreparedStatement> {
  const prepared = await _prepareOne(connection, engine, sql);
  const type = prepared.statementType;
  const first = _leadingWords(sql, 1)[0]?.word.toUpperCase();
  if (first === "PRAGMA" || first === "CALL") {
    // DuckDB rewrites `PRAGMA version` into a SELECT; the console accepts only the documented
    // statements (SELECT, WITH, VALUES, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).
    prepared.destroySync();
    throw new QueryRejectedError(`Only read-only statements are allowed: got ${first}`);
  }
  if (prepared.parameterCount > 0) {
    // Nothing binds them: DuckDB would fail at execution ("Values were not provided").
    prepared.destroySync();
    throw new QueryRejectedError(
      "Query parameters ($1, $name, ?) are not supported: write the values into the SQL",
    );
  }
  if (type === StatementType.SELECT) return prepared;
  prepared.destroySync();
  if (type === StatementType.EXPLAIN && options.allowExplain) {
    return await _prepareExplain(connection, engine, sql);
  }
  const what = _READ_ONLY_TYPES.has(type) ? "EXPLAIN" : _statementLabel(sql, type);
  throw new QueryRejectedError(
    options.allowExplain
      ? `Only read-only statements are allowed: got ${what}`
      : `Only a SELECT statement can be written to a file: got ${what}`,
  );
}

async function _prepareOne(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
): Promise<DuckDBPreparedStatement> {
  let extracted;
  try {
    extracted = await connection.extractStatements(sql);
  } catch (error) {
    throw await _toQueryError(connection, engine, sql, error);
  }
  if (extracted.count !== 1) {
    const pivot = /^(UN)?PIVOT$/i.test(_leadingWords(sql, 1)[0]?.word ?? "")
      ? " (a PIVOT without an IN list runs a helper statement: list the values with ON col IN (...))"
      : "";
    throw new QueryRejectedError(
      `Cannot run ${extracted.count} statements: expected one statement${pivot}`,
    );
  }
  try {
    return await extracted.prepare(0);
  } catch (error) {
    // Binding fails before the statement type is known (INSERT into a view, DROP of a missing
    // table, COPY to a path outside the sandbox): name the statement when its keyword already
    // says it is not a query.
    const words = _leadingWords(sql, 3).map(({ word }) => word.toUpperCase());
    const explain = words[0] === "EXPLAIN" ? /^ANALY[SZ]E$/.test(words[1] ?? "") ? 2 : 1 : 0;
    const keyword = words[explain];
    if (keyword !== undefined && _WRITE_KEYWORDS.has(keyword)) {
      const what = explain > 0 ? `EXPLAIN ${keyword}` : keyword;
      throw new QueryRejectedError(`Only read-only statements are allowed: got ${what}`, {
        cause: error,
      });
    }
    throw await _toQueryError(connection, engine, sql, error);
  }
}

/**
 * EXPLAIN ANALYZE executes its statement, writes included (`EXPLAIN ANALYZE DROP VIEW bars_1m`
 * drops the view, and so does `EXPLAIN (ANALYZE) ...`), so the statement after EXPLAIN must itself
 * prepare as a SELECT, and what runs is an EXPLAIN rebuilt around that checked text.
 */
async function _prepareExplain(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
): Promise<DuckDBPreparedStatement> {
  const words = _leadingWords(sql, 2);
  if (words[0]?.word.toUpperCase() !== "EXPLAIN") {
    throw new QueryRejectedError(
      "Only EXPLAIN [ANALYZE] followed by a SELECT statement is allowed",
    );
  }
  const analyze = /^ANALY[SZ]E$/i.test(words[1]?.word ?? "");
  const inner = sql.slice(analyze ? words[1].end : words[0].end);
  let innerPrepared;
  try {
    innerPrepared = await _prepareOne(connection, engine, inner);
  } catch (error) {
    if (error instanceof QueryRejectedError) {
      throw new QueryRejectedError(error.message.replace(/got /, "got EXPLAIN "), { cause: error });
    }
    // The whole statement was valid, so what follows EXPLAIN is an option list.
    throw new QueryRejectedError(
      "Only EXPLAIN or EXPLAIN ANALYZE followed by a SELECT statement is allowed (no options)",
      { cause: error },
    );
  }
  const innerType = innerPrepared.statementType;
  innerPrepared.destroySync();
  if (innerType !== StatementType.SELECT) {
    throw new QueryRejectedError(
      `Only read-only statements are allowed: got EXPLAIN ${_statementLabel(inner, innerType)}`,
    );
  }
  const rebuilt = await _prepareOne(
    connection,
    engine,
    `EXPLAIN ${analyze ? "ANALYZE " : ""}\n${inner}`,
  );
  if (rebuilt.statementType !== StatementType.EXPLAIN) {
    rebuilt.destroySync();
    throw new QueryRejectedError(
      "Only EXPLAIN [ANALYZE] followed by a SELECT statement is allowed",
    );
  }
  return rebuilt;
}

function _isInterrupt(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("INTERRUPT Error: ");
}

function _statementLabel(sql: string, type: StatementType): string {
  const keyword = _leadingWords(sql, 1)[0]?.word.toUpperCase();
  return keyword === undefined || keyword === "WITH" ? StatementType[type] : keyword;
}

const _SQL_ERROR_TYPES = [
  "Parser",
  "Binder",
  "Catalog",
  "Conversion",
  "Invalid Input",
  "Out of Range",
  "Not implemented",
  "Mismatch Type",
  "Invalid type",
  "Syntax",
  // Raised while running user SQL: a file pattern that matches nothing, a division, a decimal
  // overflow, a feature of an extension the sandbox does not load, `duckdb_secrets()` twice.
  "IO",
  "Divide by Zero",
  "Decimal",
  "Unknown Type",
  "Object Size",
  "Missing Extension",
  "Extension Autoloading",
  "Invalid Configuration",
  "Parameter Not Resolved",
  "Parameter Not Allowed",
];

/** Turns a DuckDB error (a plain Error whose message starts with "<Type> Error: ") into ours. */
async function _toQueryError(
  connection: DuckDBConnection,
  engine: QueryEngine,
  sql: string,
  error: unknown,
): Promise<Error> {
  if (!(error instanceof Error)) return new Error(`Cannot run query: ${error}`, { cause: error });
  if (error instanceof QueryRejectedError || error instanceof QuerySqlError) return error;
  if (/^(Invalid (string|array) length|buffer exceeds maximum length)/i.test(error.message)) {
    // V8 refused to build a result value (a string over ~512 MiB): the result is too large.
    return new QueryRejectedError(
      `Cannot return the result: a value is too large (${error.message}); select less`,
      { cause: error },
    );
  }
  let message = error.message.replace(/^Failed to extract statements: /, "");
  if (message === "Error in native callback") {
    // extractStatements has no message for text that parses to no statement at all (a lone "¡"
    // or no-break space): ask DuckDB's parser for one.
    const parsed = await _parserError(connection, sql);
    if (parsed !== undefined) message = `Parser Error: ${parsed.message}`;
  }
  if (message.startsWith("Permission Error: ")) {
    const detail = message.slice("Permission Error: ".length).split("\n")[0];
    return new QueryRejectedError(
      `Reading files outside the data directory is not allowed: ${detail}`,
      { cause: error },
    );
  }
  const type = /^([A-Za-z ]+) Error: /.exec(message)?.[1];
  if (type === undefined || !_SQL_ERROR_TYPES.includes(type)) {
    return new Error(`Cannot run query: ${message}`, { cause: error });
  }
  let text = message;
  if (type === "Parser" && !message.includes("\nLINE ")) {
    const position = (await _parserError(connection, sql))?.position;
    if (position !== undefined) text += `\n\n${_caretLine(sql, position)}`;
  }
  const missing = /Table with name (bars_\w+) does not exist/.exec(message)?.[1];
  if (missing !== undefined) text += `\n${_missingViewHint(engine, missing)}`;
  return new QuerySqlError(text, { cause: error });
}

function _missingViewHint(engine: QueryEngine, view: string): string {
  const available = [...engine.timeframes.map(barViewName), "bars"].join(", ");
  const timeframe = view.slice("bars_".length);
  const what = (TIMEFRAMES as readonly string[]).includes(timeframe)
    ? `no ${timeframe} bars are stored`
    : `"${timeframe}" is not a timeframe (${TIMEFRAMES.join(", ")})`;
  return `Hint: ${what}; views available: ${available}`;
}

/**
 * DuckDB's parser error for `sql` with its byte offset, which the prepare message omits at the
 * end of input (and extractStatements omits entirely when no statement parses).
 */
async function _parserError(
  connection: DuckDBConnection,
  sql: string,
): Promise<{ message: string; position: number | undefined } | undefined> {
  try {
    const reader = await connection.runAndReadAll("SELECT json_serialize_sql($sql::VARCHAR)", {
      sql,
    });
    const parsed = JSON.parse(String(reader.getRows()[0][0]));
    if (parsed.error_type !== "parser") return undefined;
    const position = Number(parsed.position);
    return {
      message: String(parsed.error_message),
      position: Number.isSafeInteger(position) ? position : undefined,
    };
  } catch {
    // Only decoration for a message we already have; the original error is what gets thrown.
    return undefined;
  }
}

/** DuckDB's own format: `LINE 1: SELECT 1 +` and a caret under the offending character. */
function _caretLine(sql: string, byteOffset: number): string {
  const index = new TextDecoder().decode(new TextEncoder().encode(sql).slice(0, byteOffset)).length;
  const lineStart = sql.lastIndexOf("\n", index - 1) + 1;
  const lineEnd = sql.indexOf("\n", index);
  const lineNumber = sql.slice(0, lineStart).split("\n").length;
  const label = `LINE ${lineNumber}: `;
  const line = sql.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
  return `${label}${line}\n${" ".repeat(label.length + index - lineStart)}^`;
}

function _checkNotEmpty(sql: string): void {
  // DuckDB reads SQL as a C string: it would silently drop everything after a NUL.
  if (sql.includes("\0")) {
    throw new QueryRejectedError("Cannot run a query that contains a NUL character (\\0)");
  }
  // Empty text or only comments and semicolons: DuckDB's extractStatements fails with a bare
  // "Error in native callback" on those. Refused like other statements that cannot run, so the
  // CLI and the API answer a usage error (an unterminated comment is empty too).
  let index = 0;
  while (true) {
    index = _skipTrivia(sql, index);
    if (sql[index] !== ";") break;
    index++;
  }
  if (index >= sql.length) throw new QueryRejectedError("Cannot run an empty query");
}

function _checkTimeout(timeoutMs: number): void {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`Invalid query timeout ${timeoutMs} ms: expected a positive number`);
  }
}

/** The first `count` words of a statement after whitespace and comments, with their end offsets. */
function _leadingWords(sql: string, count: number): { word: string; end: number }[] {
  const words: { word: string; end: number }[] = [];
  let index = 0;
  while (words.length < count) {
    index = _skipTrivia(sql, index);
    const match = /[A-Za-z_][A-Za-z0-9_]*/y;
    match.lastIndex = index;
    const found = match.exec(sql);
    if (found === null) break;
    index = match.lastIndex;
    words.push({ word: found[0], end: index });
  }
  return words;
}

/** Skips whitespace, `-- line` comments and (nested) `/* block *\/` comments. */
function _skipTrivia(sql: string, start: number): number {
  let index = start;
  while (index < sql.length) {
    if (/\s/.test(sql[index])) {
      index++;
    } else if (sql.startsWith("--", index)) {
      const end = sql.indexOf("\n", index);
      index = end === -1 ? sql.length : end + 1;
    } else if (sql.startsWith("/*", index)) {
      let depth = 0;
      do {
        if (sql.startsWith("/*", index)) {
          depth++;
          index += 2;
        } else if (sql.startsWith("*/", index)) {
          depth--;
          index += 2;
        } else {
          index++;
        }
      } while (depth > 0 && index < sql.length);
    } else {
      break;
    }
  }
  return index;
}

// --- values ----------------------------------------------------------------------------------

/** DuckDB value -> JSON-safe value; nested values recurse through this same converter. */
const _toJsonSafe: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    // The common bar columns first, without the generic converter's dispatch.
    case DuckDBTypeId.DOUBLE:
    case DuckDBTypeId.FLOAT:
    case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.SMALLINT:
    case DuckDBTypeId.TINYINT:
    case DuckDBTypeId.UINTEGER:
    case DuckDBTypeId.USMALLINT:
    case DuckDBTypeId.UTINYINT:
      return Number.isFinite(value as number) ? value as number : String(value);
    case DuckDBTypeId.VARCHAR:
      return value as string;
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
    case DuckDBTypeId.BIGNUM: {
      const integer = value as bigint;
      const asNumber = Number(integer);
      return Number.isSafeInteger(asNumber) ? asNumber : integer.toString();
    }
    case DuckDBTypeId.DECIMAL:
      return (value as DuckDBDecimalValue).toDouble();
    case DuckDBTypeId.TIMESTAMP_TZ:
      return _isoTimestamp(value as DuckDBTimestampTZValue);
    case DuckDBTypeId.INTERVAL:
      return String(value);
    default:
      return JsonDuckDBValueConverter(value, type, converter);
  }
};

function _isoTimestamp(value: DuckDBTimestampTZValue): string {
  if (!value.isFinite) return value.micros > 0n ? "infinity" : "-infinity";
  const micros = Number(value.micros);
  if (Number.isSafeInteger(micros)) {
    const date = new Date(Math.floor(micros / 1000));
    if (!Number.isNaN(date.getTime())) return date.toISOString();
  }
  let millis = value.micros / 1000n;
  if (value.micros % 1000n < 0n) millis -= 1n;
  const date = new Date(Number(millis));
  // Beyond JS Date's range (year 275760) fall back to DuckDB's own text.
  return Number.isNaN(date.getTime()) ? value.toString() : date.toISOString();
}

// --- formatting ------------------------------------------------------------------------------

function _isNumericType(type: string): boolean {
  return /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|BIGNUM|VARINT)\b/
    .test(type);
}

function _tableCell(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  // Keep one row per line.
  return text.replaceAll("\r", "\\r").replaceAll("\n", "\\n").replaceAll("\t", "\\t");
}

function _csvField(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// --- bars for the HTTP API -------------------------------------------------------------------

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
  const deliver = (chunk: BarColumns) => {
    delivered = true;
    return onChunk(chunk);
  };
  // Once bars were handed on, a retry would hand them on twice: only an early failure retries.
  return await _retryReplaced(
    engine,
    () => _readBarsOnce(engine, request, deliver, options),
    () => !delivered,
  );
}

async function _readBarsOnce(
  engine: QueryEngine,
  request: BarsRequest,
  onChunk: (chunk: BarColumns) => void | Promise<void>,
  options: ReadBarsOptions = {},
): Promise<number> {
  _checkBarsRequest(request);
  const files = _barFiles(engine, request);
  if (files.length === 0 || request.limit === 0) return 0;
  const order = request.descending ? "DESC" : "ASC";
  // Lineage costs a string decode per row and column (ingest_id is read through a native call),
  // so only the formats that carry it ask for it.
  const lineage = options.lineage
    ? ", provider, feed, adjustment, ingest_id, epoch_us(ingested_at), schema_version::INTEGER"
    : "";
  const sql = `SELECT epoch_us(ts), open, high, low, close, volume, vwap,
      trade_count::DOUBLE, strftime(trading_date, '%Y-%m-%d'), session${lineage}
    FROM ${_BARS_FILTER} ORDER BY ts ${order} LIMIT $limit::BIGINT`;
  return await _namingCorrupt(engine, files, request, options.signal, () =>
    _withConnection(
      engine,
      options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      options.signal,
      async (connection) => {
        const prepared = await connection.prepare(sql);
        try {
          _bindBars(prepared, files, request, { limit: request.limit });
          const result = await prepared.stream();
          let total = 0;
          while (true) {
            const chunk = await result.fetchChunk();
            if (chunk === null || chunk.rowCount === 0) break;
            total += chunk.rowCount;
            await onChunk(_barColumns(chunk));
          }
          return total;
        } finally {
          prepared.destroySync();
        }
      },
    ));
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
  return await _retryReplaced(engine, () => _barsPageEndOnce(engine, request, options));
}

async function _barsPageEndOnce(
  engine: QueryEngine,
  request: BarsRequest,
  options: ReadBarsOptions = {},
): Promise<bigint | undefined> {
  _checkBarsRequest(request);
  const files = _barFiles(engine, request);
  if (files.length === 0 || request.limit === 0) return undefined;
  const sql = `SELECT epoch_us(ts) FROM ${_BARS_FILTER}
    ORDER BY ts ${request.descending ? "DESC" : "ASC"} LIMIT 2 OFFSET $offset::BIGINT`;
  return await _namingCorrupt(engine, files, request, options.signal, () =>
    _withConnection(
      engine,
      options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      options.signal,
      async (connection) => {
        const prepared = await connection.prepare(sql);
        try {
          _bindBars(prepared, files, request, { offset: request.limit - 1 });
          const rows = (await prepared.runAndReadAll()).getRows();
          return rows.length === 2 ? rows[0][0] as bigint : undefined;
        } finally {
          prepared.destroySync();
        }
      },
    ));
}

/**
 * `read()` of `files`; when it fails on a file that cannot be read, a `CorruptFileError` naming
 * that file replaces DuckDB's error, so one bad partition shows up as itself.
 */
async function _namingCorrupt<T>(
  engine: QueryEngine,
  files: readonly string[],
  request: BarsRequest,
  signal: AbortSignal | undefined,
  read: () => Promise<T>,
): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof QueryTimeoutError || signal?.aborted) throw error;
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
  return await _retryReplaced(engine, () => _exportBarsParquetOnce(engine, request, options));
}

async function _exportBarsParquetOnce(
  engine: QueryEngine,
  request: BarsRequest,
  options: ReadBarsOptions = {},
): Promise<{ rows: number; size: number; stream: ReadableStream<Uint8Array> }> {
  _checkBarsRequest(request);
  if (engine.exportDir === undefined) {
    throw new TypeError("Cannot export Parquet: the query engine was opened without an exportDir");
  }
  const columns = BAR_COLUMNS.map((column) => sqlIdent(column.name)).join(", ");
  const files = _barFiles(engine, request);
  const source = files.length > 0
    ? `${_BARS_FILTER} ORDER BY ts ${request.descending ? "DESC" : "ASC"} LIMIT $limit::BIGINT`
    : null;
  const path = join(engine.exportDir, `bars-${crypto.randomUUID()}.parquet`);
  // The path is ours (a UUID); every request value travels as a bound parameter.
  const inner = source === null
    ? `SELECT ${
      BAR_COLUMNS.map((column) => `NULL::${column.type} AS ${sqlIdent(column.name)}`).join(", ")
    } WHERE false`
    : `SELECT ${columns} FROM ${source}`;
  const copy = `COPY (${inner}) TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd)`;
  try {
    const rows = await _withConnection(
      engine,
      options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      options.signal,
      async (connection) => {
        const prepared = await connection.prepare(copy);
        try {
          if (source !== null) _bindBars(prepared, files, request, { limit: request.limit });
          return Number((await prepared.run()).rowsChanged);
        } finally {
          prepared.destroySync();
        }
      },
      true,
    );
    const file = await Deno.open(path, { read: true });
    const size = (await file.stat()).size;
    await Deno.remove(path);
    return { rows, size, stream: file.readable };
  } catch (error) {
    await Deno.remove(path).catch(() => {});
    throw error;
  }
}

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
  return await _retryReplaced(engine, () => _storedInventoryOnce(engine, options));
}

async function _storedInventoryOnce(
  engine: QueryEngine,
  options: ReadBarsOptions = {},
): Promise<StoredInventory> {
  const groups = new Map<
    string,
    { symbol: string; timeframe: Timeframe; files: number; bytes: number; paths: string[] }
  >();
  // Every live file of the manifest now, not the views: those are fixed when the engine opens and
  // may leave out a file whose footer does not read, which must show up here as corrupt.
  const live = engine._liveFiles({ tree: "bars" });
  for (const file of live) {
    const id = `${file.timeframe}|${file.symbol}`;
    let group = groups.get(id);
    if (!group) {
      group = { symbol: file.symbol, timeframe: file.timeframe, files: 0, bytes: 0, paths: [] };
      groups.set(id, group);
    }
    group.files++;
    group.bytes += file.bytes;
    group.paths.push(join(engine.dataDir, file.path));
  }
  const files = [...groups.values()].flatMap((group) => group.paths);
  if (files.length === 0) return { series: [], corrupt: [] };
  const order = TIMEFRAMES.map((tf, index) => `WHEN ${sqlString(tf)} THEN ${index}`).join(" ");
  const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  let rows: DuckDBValue[][];
  try {
    rows = await _withConnection(engine, timeoutMs, options.signal, async (connection) => {
      const prepared = await connection.prepare(
        `SELECT symbol, timeframe, count(*)::DOUBLE, epoch_ms(min(ts))::DOUBLE,
           epoch_ms(max(ts))::DOUBLE FROM read_parquet($files, hive_partitioning = true, hive_types_autocast = false)
         GROUP BY symbol, timeframe ORDER BY symbol, CASE timeframe ${order} END`,
      );
      try {
        prepared.bind({ files: listValue(files) }, { files: LIST(VARCHAR) });
        return (await prepared.runAndReadAll()).getRows();
      } finally {
        prepared.destroySync();
      }
    });
  } catch (error) {
    if (error instanceof QueryTimeoutError || options.signal?.aborted) throw error;
    return await _inventoryBySeries(engine, groups, error, { timeoutMs, signal: options.signal });
  }
  const series = rows.map(([symbol, timeframe, count, first, last]) => {
    const size = groups.get(`${timeframe}|${symbol}`) ?? { files: 0, bytes: 0 };
    return {
      symbol: String(symbol),
      timeframe: timeframe as Timeframe,
      rows: Number(count),
      firstTs: Number(first),
      lastTs: Number(last),
      files: size.files,
      bytes: size.bytes,
    };
  });
  return { series, corrupt: [] };
}

/** The slow path of {@link storedInventory}: series by series, file by file where one fails. */
async function _inventoryBySeries(
  engine: QueryEngine,
  groups: Map<
    string,
    { symbol: string; timeframe: Timeframe; files: number; bytes: number; paths: string[] }
  >,
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
  await _withConnection(engine, options.timeoutMs, options.signal, async (connection) => {
    const summarize = async (paths: string[]) => {
      const prepared = await connection.prepare(
        `SELECT count(*)::DOUBLE, epoch_ms(min(ts))::DOUBLE, epoch_ms(max(ts))::DOUBLE
         FROM read_parquet($files, hive_partitioning = true, hive_types_autocast = false)`,
      );
      try {
        prepared.bind({ files: listValue(paths) }, { files: LIST(VARCHAR) });
        const [[count, first, last]] = (await prepared.runAndReadAll()).getRows();
        return { rows: Number(count), firstTs: Number(first), lastTs: Number(last) };
      } finally {
        prepared.destroySync();
      }
    };
    for (const group of sorted) {
      if (group.paths.length === 0) continue;
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
            const { symbol, timeframe } = group;
            corrupt.push({ path, reason, symbol, timeframe });
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

function _checkBarsRequest(request: BarsRequest): void {
  if (!isValidSymbol(request.symbol)) {
    throw new RangeError(`Invalid symbol "${request.symbol}": expected a ticker like AAPL`);
  }
  if (!(TIMEFRAMES as readonly string[]).includes(request.timeframe)) {
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
 * `FROM`/`WHERE` of a bars read. The files come from {@link _barFiles} as a bound list; every
 * request value is a parameter.
 */
const _BARS_FILTER = `read_parquet($files, hive_partitioning = true, hive_types_autocast = false)
    WHERE symbol = $symbol AND trading_date BETWEEN $start::DATE AND $end::DATE
      AND ts > make_timestamptz($after::BIGINT) AND ts < make_timestamptz($before::BIGINT)`;

function _bindBars(
  prepared: DuckDBPreparedStatement,
  files: string[],
  request: BarsRequest,
  extra: { limit?: number; offset?: number },
): void {
  const values: Record<string, DuckDBValue> = {
    files: listValue(files),
    symbol: request.symbol,
    start: request.start ?? _MIN_DATE,
    end: request.end ?? _MAX_DATE,
    after: request.after ?? _MIN_MICROS,
    before: request.before ?? _MAX_MICROS,
  };
  if (extra.limit !== undefined) values.limit = BigInt(extra.limit);
  if (extra.offset !== undefined) values.offset = BigInt(extra.offset);
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
