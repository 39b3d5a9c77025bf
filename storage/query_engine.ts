/**
 * The sandboxed query engine: a read-only DuckDB instance over one data directory with its bar
 * views and reference tables, and the connections, timeouts and retries every read through it
 * uses.
 *
 * @module
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { existsSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { exchangeDate } from "../core/calendar.ts";
import type { Timeframe } from "../core/types.ts";
import { createBarViews, openDuckDB, sqlString } from "./duckdb.ts";
import {
  type BarFile,
  type FileFilter,
  listFiles,
  manifestVersion,
  withManifest,
} from "./manifest.ts";
import { META_FILE, openReadOnlyDatabase } from "./meta.ts";
import { assertLayoutCurrent } from "./migrate_layout.ts";
import { checkOutputPath, EXPORTS_DIR, tempPathBeside } from "./output.ts";
import type { ViewFile } from "./query_narrow.ts";
import { createReferenceTables, NO_REFERENCE_DATA, readReferenceData } from "./query_reference.ts";

/** Milliseconds a query or bars read may run when no `timeoutMs` is given. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

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
   * A private directory `exportBarsParquet` and `exportBars` write their files to (outside the
   * data directory or under its exports/). Exports run on a second DuckDB instance that runs no
   * user SQL, so queries cannot read this directory.
   */
  exportDir?: string;
  /**
   * The date the `members` column of the `universes` table counts members on, `YYYY-MM-DD`
   * (default: today in New York).
   */
  today?: string;
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
    return this.#views.timeframes;
  }
  #views: BarViews;
  /** Absolute path `writeQueryParquet` may write, if one was given. */
  readonly outputFile: string | undefined;
  /** Absolute directory `exportBarsParquet` writes to, if one was given. */
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
      views: BarViews;
      outputFile?: string;
      tempOutputFile?: string;
      exportDir?: string;
      limits: { memoryLimit: string; tempLimit: string; threads?: number };
    },
  ) {
    this.#limits = init.limits;
    this.#instance = instance;
    this.dataDir = init.dataDir;
    this.#views = init.views;
    this.outputFile = init.outputFile;
    this.#tempOutputFile = init.tempOutputFile;
    this.exportDir = init.exportDir;
  }

  /**
   * Internal to storage/: the files each bar view lists (absolute paths), with what the manifest
   * says they hold.
   */
  _viewFiles(): ReadonlyMap<Timeframe, readonly ViewFile[]> {
    return this.#views.files;
  }

  /**
   * Internal to storage/: the live files matching `filter`, from a read-only connection to the
   * manifest that the engine keeps open (none while the data directory has no database yet).
   */
  _liveFiles(filter: FileFilter): BarFile[] {
    const db = this.#manifestDb();
    return db === undefined ? [] : listFiles(db, filter);
  }

  /** Internal to storage/: the manifest's version now (0 before anything is stored). */
  _manifestVersion(): number {
    const db = this.#manifestDb();
    return db === undefined ? 0 : manifestVersion(db);
  }

  #manifestDb(): DatabaseSync | undefined {
    if (this.#closed) throw new Error("Cannot read the manifest: the query engine is closed");
    if (this.#manifest === undefined) {
      const path = join(this.dataDir, META_FILE);
      if (!existsSync(path)) return undefined;
      this.#manifest = openReadOnlyDatabase(path);
    }
    return this.#manifest;
  }

  /**
   * Internal to storage/: makes the views list the manifest's files as they are now. Called when a
   * file of the old snapshot was replaced (and deleted) by a writer since the engine opened.
   */
  async _refreshViews(): Promise<void> {
    const connection = await this._connect();
    try {
      this.#views = await _viewsFromManifest(connection, this.dataDir, this);
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
    // Progress is tracked (not printed) so that long exports can show how far they are.
    this.#exporter ??= _openSandbox(dirs, [], this.#limits, async (connection) => {
      await connection.run("SET enable_progress_bar = true");
      await connection.run("SET enable_progress_bar_print = false");
    });
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

/**
 * Opens a dedicated DuckDB instance with the bar views, then locks it down: it can read only
 * `<dataDir>/bars/` and `<dataDir>/quarantine/`, write only `options.outputFile`, and never change
 * its configuration again.
 *
 * Besides the views it holds the reference tables `symbols` (the current rows of the symbol
 * master), `symbols_history` (every row), `universes` and `universe_members` (see
 * storage/query_reference.ts). They are copied from the metadata database once, when the engine
 * opens: a `symbols update` or `universe add` afterwards is seen by engines opened after it.
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
  // Queries cannot read exportDir anyway; inside the data directory only exports/ may hold it.
  const exportInside = exportDir === undefined ? ".." : relative(absDataDir, exportDir);
  if (!exportInside.startsWith("..") && !exportInside.startsWith(EXPORTS_DIR + sep)) {
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
  let views: BarViews = { timeframes: [], files: new Map() };
  const today = options.today ?? exchangeDate(Date.now());
  const reference = await withManifest(
    absDataDir,
    (db) => readReferenceData(db, today),
    NO_REFERENCE_DATA,
  );
  const instance = await _openSandbox(readable, writable, limits, async (connection) => {
    views = await _viewsFromManifest(connection, absDataDir);
    await createReferenceTables(connection, reference);
  });
  return new QueryEngine(instance, {
    dataDir: absDataDir,
    views,
    outputFile,
    tempOutputFile,
    exportDir,
    limits,
  });
}

/** The bar views of an engine: the timeframes that have one, and the files each lists. */
interface BarViews {
  timeframes: Timeframe[];
  files: Map<Timeframe, ViewFile[]>;
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
): Promise<BarViews> {
  for (let attempt = 1;; attempt++) {
    const live = engine !== undefined
      ? engine._liveFiles({ tree: "bars" })
      : await withManifest(dataDir, (db) => listFiles(db, { tree: "bars" }), []);
    const files = new Map(live.map((file) => {
      const path = join(dataDir, file.path);
      const { timeframe, symbol, firstDate, lastDate, rows, minTs, maxTs } = file;
      return [path, { path, timeframe, symbol, firstDate, lastDate, rows, minTs, maxTs }];
    }));
    const listed = new Map<Timeframe, readonly string[]>();
    try {
      const timeframes = await createBarViews(connection, [...files.values()], listed);
      const viewFiles = new Map<Timeframe, ViewFile[]>();
      for (const [timeframe, paths] of listed) {
        viewFiles.set(timeframe, paths.map((path) => files.get(path)!));
      }
      return { timeframes, files: viewFiles };
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
      // Keep every Parquet footer read once in memory: a view lists all live files, and without
      // the cache each query (count(*) above all) reads their footers again. Files are immutable
      // and never reused under the same name, so a cached footer cannot go stale.
      await connection.run("LOAD parquet");
      await connection.run("SET parquet_metadata_cache = true");
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
 * Runs `fn`; when it fails because a file of the engine's snapshot is gone (a writer replaced it:
 * appends, corrections and compactions delete the files they supersede once the manifest no
 * longer lists them), makes the views list the manifest's files as they are now and runs it
 * again: up to three times, and on while each failure follows a new manifest commit (at most 20).
 */
export async function retryReplaced<T>(
  engine: QueryEngine,
  fn: () => Promise<T>,
  mayRetry: () => boolean = () => true,
): Promise<T> {
  let seen = -1;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!mayRetry() || !_isMissingFileError(engine.dataDir, error)) throw error;
      // A compaction replaces one partition after another: keep up while the manifest moves. A
      // file missing without a new commit since the last try is damage (see `repair`).
      const version = engine._manifestVersion();
      const moved = version !== seen;
      seen = version;
      if (attempt >= _MAX_ATTEMPTS || (attempt >= 3 && !moved)) throw error;
      await engine._refreshViews();
    }
  }
}

/** Most runs of one statement while writers keep replacing the files it reads. */
const _MAX_ATTEMPTS = 20;

/** Whether `error` (or a cause of it) is DuckDB not finding a file of the data directory. */
function _isMissingFileError(dataDir: string, error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (_MISSING_FILE.test(e.message) && e.message.includes(dataDir)) return true;
  }
  return false;
}

const _MISSING_FILE =
  /No files found that match the pattern|No such file or directory|Cannot open file/;

/** Options for {@link withConnection}. */
export interface WithConnectionOptions {
  /** Run on the export instance instead of the sandbox that runs user SQL (default false). */
  exporter?: boolean;
  /**
   * Once stopped, give up waiting for DuckDB after this many milliseconds and throw at once
   * (default: wait until it stops).
   */
  abandonAfterMs?: number;
}

/**
 * Runs `run` on a new connection of the engine and closes it afterwards; interrupts it after
 * `timeoutMs` (a {@link QueryTimeoutError}) or when `signal` aborts (its reason).
 */
export async function withConnection<T>(
  engine: QueryEngine,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  run: (connection: DuckDBConnection) => Promise<T>,
  { exporter = false, abandonAfterMs }: WithConnectionOptions = {},
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
