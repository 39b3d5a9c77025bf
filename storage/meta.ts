import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { hostname } from "node:os";
import { pathToFileURL } from "node:url";
import { StorageError } from "../core/errors.ts";
import type {
  JobKind,
  JobRecord,
  JobSpec,
  JobStatus,
  NewTask,
  SourceKey,
  TaskRecord,
  TaskResult,
} from "../core/jobs.ts";
import { parseTimeframe, type Timeframe } from "../core/types.ts";
import { type Unwritable, unwritableBy, unwritableDirOf } from "./disk.ts";
import { pathExists } from "./fs.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";
import { sqliteWrite, transaction } from "./sqlite.ts";

/** File name of the metadata database inside the data directory. */
export const META_FILE = "marketpipe.db";

/** A heartbeat older than this marks a process as gone when its pid cannot be checked. */
const STALE_HEARTBEAT_MS = 30_000;
const HEARTBEAT_EVERY_MS = 5_000;

/** An applied or pending migration, as `migrate --status` shows it. */
export interface MigrationStatus {
  version: number;
  name: string;
  appliedAt: number | null;
}

/**
 * Open the SQLite metadata database with WAL and a busy timeout; does not migrate. On a
 * directory that cannot be written it throws a {@link StorageError} `Cannot open <path> for
 * writing: read-only file system` (SQLite says only "unable to open database file").
 */
export function openDatabase(path: string): DatabaseSync {
  _checkWritable(path);
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 10000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    _cacheStatements(db);
    return db;
  } catch (error) {
    db?.close();
    throw _cannotWrite(path, unwritableDirOf(path), error);
  }
}

/** Distinct SQL texts whose prepared statements are kept; past it the cache starts over. */
const _STATEMENT_CACHE = 256;

/**
 * Keep `db`'s prepared statements by SQL text: the same few statements run for every task of an
 * ingest, and preparing them again each time took 2% of its main thread (profiled, 8 workers).
 * Safe because no caller changes a statement's settings or iterates one lazily: each call runs
 * to the end (`run`, `get`, `all`) before the statement is used again.
 */
function _cacheStatements(db: DatabaseSync): void {
  const prepare = db.prepare.bind(db);
  const statements = new Map<string, ReturnType<typeof prepare>>();
  db.prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      if (statements.size >= _STATEMENT_CACHE) statements.clear();
      statement = prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}

/** SQLite opens a file it cannot write read-only without a word; the first write would fail. */
function _checkWritable(path: string): void {
  try {
    Deno.openSync(path, { write: true }).close();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw _cannotWrite(path, unwritableBy(error), error);
  }
}

/** `Cannot open <path> for writing: <reason>` when `denied` says why, else `error` itself. */
function _cannotWrite(path: string, denied: Unwritable | undefined, error: unknown): unknown {
  if (denied === undefined) return error;
  return new StorageError(`Cannot open ${path} for writing: ${denied.reason}`, {
    path,
    code: denied.code,
  }, { cause: error });
}

/**
 * Open an existing database for reading only; writes fail, `PRAGMA query_only` is on. Works on
 * a read-only directory too: without a write-ahead log to replay the file is read as it is
 * (SQLite cannot create the WAL index there); with one it needs the index file beside it.
 */
export function openReadOnlyDatabase(path: string): DatabaseSync {
  const open = (location: string | URL) => {
    const db = new DatabaseSync(location, { readOnly: true });
    try {
      db.exec("PRAGMA busy_timeout = 10000");
      db.exec("PRAGMA query_only = ON");
      db.prepare("SELECT count(*) FROM sqlite_master").get(); // opens the WAL, if any
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  };
  try {
    return open(path);
  } catch (error) {
    const denied = unwritableDirOf(path);
    if (denied === undefined) throw error;
    let walBytes = 0;
    try {
      walBytes = Deno.statSync(`${path}-wal`).size;
    } catch (statError) {
      if (!(statError instanceof Deno.errors.NotFound)) throw statError;
    }
    if (walBytes > 0) {
      throw new StorageError(
        `Cannot read ${path}: ${denied.reason}, and its write-ahead log ${path}-wal cannot be replayed without ${path}-shm; open it once where it is writable`,
        { path, code: denied.code },
        { cause: error },
      );
    }
    // Nothing to replay, so the file alone is the database: immutable mode needs no WAL index.
    const url = pathToFileURL(path);
    url.search = "immutable=1";
    return open(url);
  }
}

/** Open the database at `path` (created if absent) and apply pending migrations; closed on failure. */
export function openMigrated(path: string): { db: DatabaseSync; applied: Migration[] } {
  const db = openDatabase(path);
  try {
    return { db, applied: migrate(db) };
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Like {@link openMigrated}, but only when the file exists: undefined, and nothing created,
 * otherwise. In a directory that cannot be written (a read-only mount) it opens the database
 * read-only instead (see {@link openReadOnlyDatabase}, {@link isReadOnly}), provided its schema
 * needs no migration: reading commands work there.
 */
export async function openExistingMigrated(path: string): Promise<DatabaseSync | undefined> {
  if (!(await pathExists(path))) return undefined;
  try {
    return openMigrated(path).db;
  } catch (error) {
    if (!(error instanceof StorageError && error.code !== "ENOSPC")) throw error;
    const db = openReadOnlyDatabase(path);
    try {
      const pending = migrationStatus(db).filter((m) => m.appliedAt === null);
      if (pending.length > 0) {
        throw new StorageError(
          `Cannot read ${path}: it needs metadata migration ${
            pending.map((m) => m.version).join(", ")
          }, which cannot be applied (${error.message}); run marketpipe migrate where it is writable`,
          { path, code: error.code },
          { cause: error },
        );
      }
      _checkNotNewer(db);
      return db;
    } catch (readError) {
      db.close();
      throw readError;
    }
  }
}

/** Whether `db` was opened by {@link openReadOnlyDatabase} (writes are refused). */
export function isReadOnly(db: DatabaseSync): boolean {
  return Number(db.prepare("PRAGMA query_only").get()?.query_only) === 1;
}

/** Versions and names of all migrations, with when each was applied (null when pending). */
export function migrationStatus(
  db: DatabaseSync | null,
  migrations = MIGRATIONS,
): MigrationStatus[] {
  const rows = db && tableExists(db, "schema_migrations")
    ? db.prepare("SELECT version, applied_at FROM schema_migrations").all()
    : [];
  const applied = new Map(rows.map((row) => [Number(row.version), Number(row.applied_at)]));
  return migrations.map((m) => ({
    version: m.version,
    name: m.name,
    appliedAt: applied.get(m.version) ?? null,
  }));
}

/**
 * Apply pending migrations in order, each in its own transaction, and return those applied.
 * Safe when several processes start at once: each migration is applied exactly once.
 */
export function migrate(
  db: DatabaseSync,
  migrations: readonly Migration[] = MIGRATIONS,
): Migration[] {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
  );
  const applied: Migration[] = [];
  for (const migration of migrations) {
    try {
      transaction(db, () => {
        const done = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?").get(
          migration.version,
        );
        if (!done) {
          db.exec(migration.sql);
          db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .run(migration.version, migration.name, Date.now());
          applied.push(migration);
        }
      });
    } catch (error) {
      throw new Error(`Cannot apply migration ${migration.version} (${migration.name})`, {
        cause: error,
      });
    }
  }
  _checkNotNewer(db, migrations);
  return applied;
}

function _checkNotNewer(db: DatabaseSync, migrations: readonly Migration[] = MIGRATIONS): void {
  const newest = db.prepare("SELECT max(version) AS v FROM schema_migrations").get();
  const known = migrations.at(-1)?.version ?? 0;
  if (Number(newest?.v ?? 0) > known) {
    throw new Error(
      `The metadata database was written by a newer MarketPipe (schema ${newest?.v}, this build knows ${known}): upgrade marketpipe`,
    );
  }
}

/** A stored series: what one source holds of one symbol and timeframe, by coverage. */
export interface BarSeries {
  source: SourceKey;
  symbol: string;
  /** First and last trading date recorded as ingested (with bars or known empty). */
  first: string;
  last: string;
}

/** What a prune, delete or export job spans, recorded with it (absent: every one). */
export interface OperationScope {
  timeframe?: Timeframe;
  symbols?: readonly string[];
  start?: string;
  end?: string;
  /** Its options, e.g. `{ before: "2024-01-01", provider: "fake" }`. */
  params: JobSpec["params"];
}

/** Identity of this process in the `processes` table. */
export interface ProcessInfo {
  id: string;
  pid: number;
  hostname: string;
  startMarker: string | null;
}

/**
 * Metadata store: jobs, tasks, coverage, processes and partition locks in SQLite. One per
 * process; call {@link MetaStore.close} when done. Over a database opened read-only (a read-only
 * data directory) it registers no process and reaps nothing; reads work, writes throw.
 */
export class MetaStore {
  readonly db: DatabaseSync;
  readonly process: ProcessInfo;
  /** Opened over a read-only database: nothing is recorded. */
  readonly readOnly: boolean;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #now: () => number;

  constructor(db: DatabaseSync, options: { command?: string; now?: () => number } = {}) {
    this.db = db;
    this.#now = options.now ?? Date.now;
    this.readOnly = isReadOnly(db);
    this.process = {
      id: crypto.randomUUID(),
      pid: Deno.pid,
      hostname: hostname(),
      startMarker: processStartMarker(Deno.pid),
    };
    if (this.readOnly) return;
    const at = this.#now();
    sqliteWrite(db, () =>
      db.prepare(
        "INSERT INTO processes (id, pid, hostname, start_marker, command, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ).run(
        this.process.id,
        this.process.pid,
        this.process.hostname,
        this.process.startMarker,
        options.command ?? "",
        at,
        at,
      ));
    this.#heartbeat = setInterval(() => {
      try {
        this.heartbeat();
      } catch {
        // A missed beat (a full disk, a long lock) must not crash the process from a timer: on
        // this host liveness is checked by pid, elsewhere the next beat catches up.
      }
    }, HEARTBEAT_EVERY_MS);
    Deno.unrefTimer(this.#heartbeat);
  }

  /** Record that this process is alive. */
  heartbeat(): void {
    sqliteWrite(
      this.db,
      () =>
        this.db.prepare("UPDATE processes SET heartbeat_at = ? WHERE id = ?").run(
          this.#now(),
          this.process.id,
        ),
    );
  }

  /** Whether the process with this id still runs (pid check on this host, heartbeat elsewhere). */
  isAlive(processId: string | null): boolean {
    if (processId === null) return false;
    if (processId === this.process.id) return true;
    const row = this.db.prepare(
      "SELECT pid, hostname, start_marker, heartbeat_at FROM processes WHERE id = ?",
    ).get(processId);
    if (!row) return false;
    if (row.hostname === this.process.hostname) {
      const marker = processStartMarker(Number(row.pid));
      if (marker !== null || row.start_marker !== null) return marker === row.start_marker;
    }
    return this.#now() - Number(row.heartbeat_at) < STALE_HEARTBEAT_MS;
  }

  /**
   * Fail jobs left running or pending by dead processes; their running tasks go back to pending.
   * Read-only: nothing can be recorded, so nothing is done (the next writer reaps them).
   */
  reapDeadJobs(): void {
    if (this.readOnly) return;
    const rows = this.db.prepare(
      "SELECT id, process_id, pid FROM jobs WHERE status IN ('running', 'pending')",
    ).all();
    for (const row of rows) {
      const owner = row.process_id as string | null;
      if (owner === null || this.isAlive(owner)) continue;
      transaction(this.db, () => {
        this.db.prepare(
          "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, process_id = NULL WHERE id = ? AND process_id = ?",
        ).run(
          `interrupted: process ${row.pid} stopped without finishing; run the same command again or use --resume ${row.id}`,
          this.#now(),
          this.#now(),
          row.id as string,
          owner,
        );
        this.db.prepare(
          "UPDATE tasks SET status = 'pending' WHERE job_id = ? AND status = 'running'",
        )
          .run(row.id as string);
      });
    }
    this.db.prepare(
      "DELETE FROM processes WHERE id <> ? AND heartbeat_at < ? AND id NOT IN (SELECT process_id FROM jobs WHERE process_id IS NOT NULL) AND id NOT IN (SELECT process_id FROM partition_locks)",
    ).run(this.process.id, this.#now() - 24 * 3_600_000);
  }

  /** Trading dates already stored per symbol from this source within [start, end]. */
  coveredDays(
    source: SourceKey,
    symbols: string[],
    start: string,
    end: string,
  ): Map<string, Set<string>> {
    const statement = this.db.prepare(
      "SELECT trading_date FROM ingested_days WHERE source = ? AND timeframe = ? AND symbol = ? AND trading_date BETWEEN ? AND ?",
    );
    const key = sourceLabel(source);
    return new Map(symbols.map((symbol) => [
      symbol,
      new Set(
        statement.all(key, source.timeframe, symbol, start, end).map((row) =>
          row.trading_date as string
        ),
      ),
    ]));
  }

  /**
   * The stored series (source, timeframe, symbol) with the first and last trading date of their
   * coverage, from `ingested_days`; optionally only those of `timeframe` and `symbols`.
   */
  storedSeries(
    filter: { timeframe?: Timeframe; symbols?: readonly string[] } = {},
  ): BarSeries[] {
    const wanted = filter.symbols ? new Set(filter.symbols) : undefined;
    return this.db.prepare(
      `SELECT source, timeframe, symbol, min(trading_date) AS first, max(trading_date) AS last
       FROM ingested_days WHERE ? IS NULL OR timeframe = ?
       GROUP BY source, timeframe, symbol ORDER BY source, timeframe, symbol`,
    ).all(filter.timeframe ?? null, filter.timeframe ?? null)
      .filter((row) => wanted === undefined || wanted.has(row.symbol as string))
      .map((row) => ({
        source: {
          ...parseSourceLabel(row.source as string),
          timeframe: parseTimeframe(row.timeframe),
        },
        symbol: row.symbol as string,
        first: row.first as string,
        last: row.last as string,
      }));
  }

  /** The newest unfinished job with this request key that no live process owns. */
  findResumableJob(requestKey: string): JobRecord | undefined {
    const rows = this.db.prepare(
      "SELECT * FROM jobs WHERE request_key = ? AND status IN ('pending', 'running', 'failed', 'partial', 'cancelled') ORDER BY created_at DESC",
    ).all(requestKey);
    const row = rows.find((row) =>
      row.process_id === null || !this.isAlive(row.process_id as string)
    );
    return row && _jobFrom(row);
  }

  /** A job by id, or by a unique id prefix. */
  getJob(id: string): JobRecord | undefined {
    const exact = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    if (exact) return _jobFrom(exact);
    const rows = this.db.prepare("SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2")
      .all(id.replace(/[\\%_]/g, "\\$&") + "%");
    return rows.length === 1 ? _jobFrom(rows[0]) : undefined;
  }

  /** Jobs, newest first. */
  listJobs(options: { status?: JobStatus; limit?: number } = {}): JobRecord[] {
    const where = options.status ? "WHERE status = ?" : "";
    const params: SQLInputValue[] = options.status ? [options.status] : [];
    return this.db.prepare(`SELECT * FROM jobs ${where} ORDER BY created_at DESC, id LIMIT ?`)
      .all(...params, options.limit ?? 20).map(_jobFrom);
  }

  /** Tasks of a job in plan order. */
  listTasks(jobId: string): TaskRecord[] {
    return this.db.prepare("SELECT * FROM tasks WHERE job_id = ? ORDER BY seq").all(jobId).map(
      _taskFrom,
    );
  }

  /** Record a new pending job and its tasks. */
  createJob(spec: JobSpec, requestKey: string, tasks: NewTask[]): JobRecord {
    const id = newJobId(this.#now());
    const at = this.#now();
    transaction(this.db, () => {
      this.db.prepare(
        `INSERT INTO jobs (id, request_key, status, provider, feed, adjustment, timeframe, symbols, start_date, end_date, params, process_id, pid, created_at, updated_at)
         VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        id,
        requestKey,
        spec.provider,
        spec.feed,
        spec.adjustment,
        spec.timeframe,
        JSON.stringify(spec.symbols),
        spec.start,
        spec.end,
        JSON.stringify(spec.params),
        this.process.id,
        this.process.pid,
        at,
        at,
      );
      const insert = this.db.prepare(
        "INSERT INTO tasks (job_id, seq, symbol, start_date, end_date, days, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
      );
      tasks.forEach((task, seq) =>
        insert.run(id, seq, task.symbol, task.start, task.end, task.days)
      );
    });
    return this.getJob(id)!;
  }

  /**
   * Record a prune, delete or export job that this process runs now: created running, with
   * `""` for the source fields it has none of.
   */
  createOperationJob(kind: Exclude<JobKind, "ingest">, scope: OperationScope): JobRecord {
    const id = newJobId(this.#now());
    const at = this.#now();
    sqliteWrite(this.db, () =>
      this.db.prepare(
        `INSERT INTO jobs (id, kind, request_key, status, provider, feed, adjustment, timeframe, symbols, start_date, end_date, params, process_id, pid, created_at, started_at, updated_at)
         VALUES (?, ?, ?, 'running', '', '', '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        id,
        kind,
        `${kind}:${id}`,
        scope.timeframe ?? "",
        JSON.stringify(scope.symbols ?? []),
        scope.start ?? "",
        scope.end ?? "",
        JSON.stringify(scope.params),
        this.process.id,
        this.process.pid,
        at,
        at,
        at,
      ));
    return this.getJob(id)!;
  }

  /** Mark a prune, delete or export job succeeded with what it did, and release it. */
  finishOperationJob(jobId: string, result: Record<string, unknown>): JobRecord {
    sqliteWrite(this.db, () =>
      this.db.prepare(
        "UPDATE jobs SET status = 'succeeded', result = ?, error = NULL, finished_at = ?, updated_at = ?, process_id = NULL WHERE id = ?",
      ).run(JSON.stringify(result), this.#now(), this.#now(), jobId));
    return this.getJob(jobId)!;
  }

  /** How many of a job's tasks ended (done or failed), of all. */
  countTasks(jobId: string): { ended: number; total: number } {
    const row = this.db.prepare(
      "SELECT count(*) AS total, count(*) FILTER (WHERE status IN ('done', 'failed')) AS ended FROM tasks WHERE job_id = ?",
    ).get(jobId);
    return { ended: Number(row?.ended ?? 0), total: Number(row?.total ?? 0) };
  }

  /** Own a job and mark it running; throws when another live process runs it. */
  claimJob(jobId: string): JobRecord {
    transaction(this.db, () => {
      const row = this.db.prepare("SELECT process_id, status FROM jobs WHERE id = ?").get(jobId);
      if (!row) throw new Error(`Cannot run job "${jobId}": no such job`);
      const owner = row.process_id as string | null;
      if (owner !== null && owner !== this.process.id && this.isAlive(owner)) {
        throw new Error(`Cannot run job "${jobId}": another marketpipe process is running it`);
      }
      this.db.prepare(
        "UPDATE tasks SET status = 'pending' WHERE job_id = ? AND status IN ('running', 'failed')",
      )
        .run(jobId);
      this.db.prepare(
        "UPDATE jobs SET status = 'running', process_id = ?, pid = ?, started_at = coalesce(started_at, ?), finished_at = NULL, error = NULL, updated_at = ? WHERE id = ?",
      ).run(this.process.id, this.process.pid, this.#now(), this.#now(), jobId);
    });
    return this.getJob(jobId)!;
  }

  /** Mark a task running. */
  startTask(jobId: string, seq: number): void {
    sqliteWrite(this.db, () =>
      this.db.prepare(
        "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ?, error = NULL WHERE job_id = ? AND seq = ?",
      ).run(this.#now(), jobId, seq));
  }

  /** Mark a task done and record its days as ingested, in one transaction: the checkpoint. */
  completeTask(jobId: string, seq: number, source: SourceKey, result: TaskResult): void {
    const at = this.#now();
    transaction(this.db, () => {
      this.db.prepare(
        "UPDATE tasks SET status = 'done', bars_fetched = ?, bars_written = ?, bars_replaced = ?, quarantined = ?, findings = ?, finished_at = ?, error = NULL WHERE job_id = ? AND seq = ?",
      ).run(
        result.barsFetched,
        result.barsWritten,
        result.barsReplaced,
        result.quarantined,
        JSON.stringify(result.findings),
        at,
        jobId,
        seq,
      );
      const symbol = this.db.prepare("SELECT symbol FROM tasks WHERE job_id = ? AND seq = ?").get(
        jobId,
        seq,
      )
        ?.symbol as string;
      const upsert = this.db.prepare(
        `INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (source, timeframe, symbol, trading_date) DO UPDATE SET bars = excluded.bars, job_id = excluded.job_id, ingested_at = excluded.ingested_at`,
      );
      const label = sourceLabel(source);
      for (const [day, bars] of Object.entries(result.dayCounts)) {
        upsert.run(label, source.timeframe, symbol, day, bars, jobId, at);
      }
      this.db.prepare(
        "UPDATE jobs SET bars_written = bars_written + ?, updated_at = ? WHERE id = ?",
      )
        .run(result.barsWritten, at, jobId);
    });
  }

  /** Mark a task failed with a one-line reason. */
  failTask(jobId: string, seq: number, error: string): void {
    sqliteWrite(this.db, () =>
      this.db.prepare(
        "UPDATE tasks SET status = 'failed', error = ?, finished_at = ? WHERE job_id = ? AND seq = ?",
      ).run(error, this.#now(), jobId, seq));
  }

  /** Put an interrupted task back to pending. */
  releaseTask(jobId: string, seq: number): void {
    sqliteWrite(this.db, () =>
      this.db.prepare(
        "UPDATE tasks SET status = 'pending' WHERE job_id = ? AND seq = ? AND status = 'running'",
      ).run(jobId, seq));
  }

  /** Set a job's final status and release it. */
  finishJob(jobId: string, status: JobStatus, error?: string): JobRecord {
    transaction(this.db, () => {
      this.db.prepare("UPDATE tasks SET status = 'pending' WHERE job_id = ? AND status = 'running'")
        .run(jobId);
      this.db.prepare(
        "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ?, process_id = NULL WHERE id = ?",
      ).run(status, error ?? null, this.#now(), this.#now(), jobId);
    });
    return this.getJob(jobId)!;
  }

  /** Delete finished jobs (and their tasks) created before `before`; returns how many. */
  deleteJobsBefore(before: number, options: { dryRun?: boolean } = {}): JobRecord[] {
    const rows = this.db.prepare(
      "SELECT * FROM jobs WHERE created_at < ? AND status IN ('succeeded', 'partial', 'failed', 'cancelled') ORDER BY created_at",
    ).all(before).map(_jobFrom);
    if (!options.dryRun && rows.length > 0) {
      transaction(this.db, () => {
        const del = this.db.prepare("DELETE FROM jobs WHERE id = ?");
        for (const job of rows) del.run(job.id);
      });
    }
    return rows;
  }

  /**
   * Take the cross-process lock of a partition, waiting while a live process holds it. A lock
   * left by a dead process is taken over.
   */
  async lockPartition(
    partition: string,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    const deadline = this.#now() + (options.timeoutMs ?? 600_000);
    let wait = 10;
    for (;;) {
      options.signal?.throwIfAborted();
      let acquired = false;
      transaction(this.db, () => {
        const row = this.db.prepare("SELECT process_id FROM partition_locks WHERE partition = ?")
          .get(partition);
        if (row && row.process_id !== this.process.id && this.isAlive(row.process_id as string)) {
          return;
        }
        if (row && row.process_id === this.process.id) {
          throw new Error(`Partition ${partition} is already locked by this process`);
        }
        this.db.prepare(
          "INSERT INTO partition_locks (partition, process_id, acquired_at) VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE SET process_id = excluded.process_id, acquired_at = excluded.acquired_at",
        ).run(partition, this.process.id, this.#now());
        acquired = true;
      });
      if (acquired) return;
      if (this.#now() > deadline) {
        throw new Error(`Cannot lock partition ${partition}: another marketpipe process holds it`);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 250);
    }
  }

  /** Release a partition lock held by this process. */
  unlockPartition(partition: string): void {
    sqliteWrite(
      this.db,
      () =>
        this.db.prepare("DELETE FROM partition_locks WHERE partition = ? AND process_id = ?")
          .run(partition, this.process.id),
    );
  }

  /**
   * A value that changes whenever any process records job progress, finishes or deletes a job:
   * when it changes, the stored bars may have changed.
   */
  dataVersion(): string {
    const row = this.db.prepare(
      `SELECT count(*) AS n, max(updated_at) AS at,
         (SELECT version FROM manifest_version WHERE id = 1) AS files FROM jobs`,
    ).get();
    return `${row?.n ?? 0}:${row?.at ?? 0}:${row?.files ?? 0}`;
  }

  /** Stop the heartbeat, drop this process's locks and row, and close the database. */
  close(): void {
    clearInterval(this.#heartbeat);
    if (this.readOnly) {
      this.db.close();
      return;
    }
    try {
      sqliteWrite(this.db, () => {
        this.db.prepare("DELETE FROM partition_locks WHERE process_id = ?").run(this.process.id);
        this.db.prepare(
          "DELETE FROM processes WHERE id = ? AND id NOT IN (SELECT process_id FROM jobs WHERE process_id IS NOT NULL)",
        ).run(this.process.id);
      });
    } finally {
      this.db.close();
    }
  }
}

/** The text stored as the coverage source: provider, feed, adjustment and data-changing params. */
export function sourceLabel(source: Omit<SourceKey, "timeframe">): string {
  const params = Object.entries(source.params).sort(([a], [b]) => a.localeCompare(b));
  const suffix = params.length === 0 ? "" : "?" + params.map(([k, v]) => `${k}=${v}`).join("&");
  return `${source.provider}/${source.feed}/${source.adjustment}${suffix}`;
}

/** The source of {@link sourceLabel}'s text: provider, feed, adjustment and params. */
export function parseSourceLabel(label: string): Omit<SourceKey, "timeframe"> {
  const [path, query] = label.split("?", 2);
  const [provider, feed, adjustment, extra] = path.split("/");
  if (
    provider === undefined || feed === undefined || adjustment === undefined || extra !== undefined
  ) {
    throw new Error(
      `Cannot read the coverage source "${label}": expected provider/feed/adjustment`,
    );
  }
  const params: SourceKey["params"] = {};
  for (const pair of query ? query.split("&") : []) {
    const at = pair.indexOf("=");
    const text = pair.slice(at + 1);
    // Values were written with String(): a number or boolean that prints back the same is one.
    params[pair.slice(0, at)] = text === "true" || text === "false"
      ? text === "true"
      : text !== "" && String(Number(text)) === text
      ? Number(text)
      : text;
  }
  return { provider, feed, adjustment, params };
}

/** A job id (also the stamp of report and aggregation ids): date, time and a random suffix, sortable and short, e.g. `20240304-153012-7f3a`. */
export function newJobId(now: number): string {
  const iso = new Date(now).toISOString();
  const stamp = iso.slice(0, 10).replaceAll("-", "") + "-" + iso.slice(11, 19).replaceAll(":", "");
  const [random] = crypto.getRandomValues(new Uint16Array(1));
  return `${stamp}-${random.toString(16).padStart(4, "0")}`;
}

/** Kernel start time of a process on Linux (detects pid reuse), or null where unavailable. */
export function processStartMarker(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the database has a table `name`. */
export function tableExists(db: DatabaseSync, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !==
    undefined;
}

type Row = Record<string, SQLInputValue>;

function _jobFrom(row: Row): JobRecord {
  const kind = row.kind as JobKind;
  return {
    id: row.id as string,
    kind,
    status: row.status as JobStatus,
    requestKey: row.request_key as string,
    provider: row.provider as string,
    feed: row.feed as string,
    adjustment: row.adjustment as string,
    // A prune or delete of every timeframe records none.
    timeframe: kind !== "ingest" && row.timeframe === ""
      ? "" as Timeframe
      : parseTimeframe(row.timeframe),
    symbols: JSON.parse(row.symbols as string),
    start: row.start_date as string,
    end: row.end_date as string,
    params: JSON.parse(row.params as string),
    createdAt: Number(row.created_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    updatedAt: Number(row.updated_at),
    pid: row.pid === null ? null : Number(row.pid),
    error: row.error as string | null,
    barsWritten: Number(row.bars_written),
    result: row.result === null || row.result === undefined
      ? null
      : JSON.parse(row.result as string),
  };
}

function _taskFrom(row: Row): TaskRecord {
  return {
    jobId: row.job_id as string,
    seq: Number(row.seq),
    symbol: row.symbol as string,
    start: row.start_date as string,
    end: row.end_date as string,
    days: Number(row.days),
    status: row.status as TaskRecord["status"],
    attempts: Number(row.attempts),
    barsFetched: Number(row.bars_fetched),
    barsWritten: Number(row.bars_written),
    barsReplaced: Number(row.bars_replaced),
    error: row.error as string | null,
    startedAt: row.started_at === null ? null : Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    quarantined: Number(row.quarantined ?? 0),
    findings: JSON.parse((row.findings as string | null) ?? "{}"),
  };
}
