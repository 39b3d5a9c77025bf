/**
 * The scheduler's records in the metadata database: every run of a schedule (planned, started,
 * finished, status, attempt, the jobs it started) and the one scheduler lease that lets only one
 * `serve` per data directory run schedules, taken over when its holder process has died.
 *
 * @module
 */
import type { RunStatus } from "../core/jobs.ts";
import { type MetaStore, tableExists } from "./meta.ts";
import { sqliteWrite, transaction } from "./sqlite.ts";

export { RUN_STATUSES, type RunStatus } from "../core/jobs.ts";

/** Why a run started: its time came, a catch-up at start, a retry, or `schedule run NAME`. */
export type RunTrigger = "schedule" | "catch-up" | "retry" | "manual";

/** One recorded run of a schedule. */
export interface ScheduleRun {
  id: number;
  schedule: string;
  /** The command as configured when it ran, e.g. `update --timeframe 1m`. */
  command: string;
  trigger: RunTrigger;
  /** The fire time this run is for (epoch ms); a retry keeps its first attempt's. */
  plannedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  status: RunStatus;
  /** 1 for the first attempt, 2 for the first retry, ... */
  attempt: number;
  /** Jobs the command recorded (an update may start several). */
  jobIds: string[];
  /** Pid of the process that ran it. */
  pid: number | null;
  error: string | null;
}

/** The process that holds the scheduler lease. */
export interface LeaseHolder {
  processId: string;
  pid: number;
  hostname: string;
  acquiredAt: number;
  heartbeatAt: number;
  /** Whether the holder still runs. */
  alive: boolean;
}

/** Reads and writes of {@link ScheduleRun}s and the scheduler lease. */
export interface ScheduleStore {
  /** Record a run starting now (status `running`, owned by this process); returns its id. */
  startRun(run: NewRun): number;
  /** Record how a started run ended. */
  finishRun(
    id: number,
    result: { status: Exclude<RunStatus, "running">; error?: string; jobIds?: string[] },
  ): void;
  /** Record a run that did not start (`skipped`): overlap, a catch-up left out. */
  recordSkipped(run: NewRun & { reason: string }): number;
  getRun(id: number): ScheduleRun | undefined;
  /** Newest first; optionally of one schedule. */
  listRuns(filter?: { schedule?: string; limit?: number }): ScheduleRun[];
  /** The newest run per schedule (by planned time, then id). */
  latestRuns(): Map<string, ScheduleRun>;
  /** The latest planned time recorded for `schedule`, any status. */
  lastPlanned(schedule: string): number | undefined;
  /** A run of `schedule` still going in a live process (this one included). */
  liveRun(schedule: string): ScheduleRun | undefined;
  /** Fail runs left `running` by dead processes; returns how many. */
  reapDeadRuns(): number;
  /**
   * Take the scheduler lease when it is free, held by a dead process, or already ours; returns
   * whether this process holds it now.
   */
  acquireLease(): boolean;
  /** Beat the lease; false when another process has taken it over meanwhile. */
  renewLease(): boolean;
  /** Give the lease up (when held by this process). */
  releaseLease(): void;
  leaseHolder(): LeaseHolder | undefined;
}

/** What {@link ScheduleStore.startRun} records. */
export interface NewRun {
  schedule: string;
  command: string;
  trigger: RunTrigger;
  plannedAt: number;
  attempt?: number;
}

const _LEASE = "scheduler";

/**
 * The schedule records of an open metadata store, whose database has migration 9
 * (migration 9). Liveness of run owners and lease holders is `meta.isAlive`.
 *
 * @example
 * ```ts
 * const runs = createScheduleStore(store.meta);
 * const id = runs.startRun({ schedule: "nightly", command: "update", trigger: "manual", plannedAt: Date.now() });
 * runs.finishRun(id, { status: "succeeded", jobIds: ["20240304-213000-ab12"] });
 * ```
 */
export function createScheduleStore(
  meta: MetaStore,
  options: { now?: () => number } = {},
): ScheduleStore {
  const db = meta.db;
  const now = options.now ?? Date.now;
  const me = meta.process;
  const insert = (run: NewRun, status: RunStatus, error: string | null) =>
    Number(
      sqliteWrite(db, () =>
        db.prepare(
          `INSERT INTO schedule_runs (schedule, command, trigger, planned_at, started_at, finished_at, status, attempt, process_id, pid, error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          run.schedule,
          run.command,
          run.trigger,
          run.plannedAt,
          status === "running" ? now() : null,
          status === "running" ? null : now(),
          status,
          run.attempt ?? 1,
          status === "running" ? me.id : null,
          me.pid,
          error,
        )).lastInsertRowid,
    );
  const holder = (): LeaseHolder | undefined => {
    const row = db.prepare("SELECT * FROM scheduler_lease WHERE name = ?").get(_LEASE);
    if (!row) return undefined;
    return {
      processId: row.process_id as string,
      pid: Number(row.pid),
      hostname: row.hostname as string,
      acquiredAt: Number(row.acquired_at),
      heartbeatAt: Number(row.heartbeat_at),
      alive: meta.isAlive(row.process_id as string),
    };
  };
  return {
    startRun: (run) => insert(run, "running", null),
    finishRun(id, result) {
      sqliteWrite(db, () =>
        db.prepare(
          "UPDATE schedule_runs SET status = ?, error = ?, job_ids = ?, finished_at = ?, process_id = NULL WHERE id = ?",
        ).run(result.status, result.error ?? null, JSON.stringify(result.jobIds ?? []), now(), id));
    },
    recordSkipped: (run) => insert(run, "skipped", run.reason),
    getRun(id) {
      const row = db.prepare("SELECT * FROM schedule_runs WHERE id = ?").get(id);
      return row ? _runFrom(row) : undefined;
    },
    listRuns(filter = {}) {
      return db.prepare(
        `SELECT * FROM schedule_runs WHERE ? IS NULL OR schedule = ?
         ORDER BY coalesce(started_at, finished_at) DESC, id DESC LIMIT ?`,
      ).all(filter.schedule ?? null, filter.schedule ?? null, filter.limit ?? 50).map(_runFrom);
    },
    latestRuns() {
      const rows = db.prepare(
        `SELECT * FROM schedule_runs r WHERE id = (
           SELECT id FROM schedule_runs WHERE schedule = r.schedule ORDER BY planned_at DESC, id DESC LIMIT 1)
         ORDER BY schedule`,
      ).all();
      return new Map(rows.map((row) => [row.schedule as string, _runFrom(row)]));
    },
    lastPlanned(schedule) {
      const row = db.prepare("SELECT max(planned_at) AS at FROM schedule_runs WHERE schedule = ?")
        .get(schedule);
      return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
    },
    liveRun(schedule) {
      const rows = db.prepare(
        "SELECT * FROM schedule_runs WHERE schedule = ? AND status = 'running' ORDER BY id DESC",
      ).all(schedule);
      const live = rows.find((row) => meta.isAlive(row.process_id as string | null));
      return live ? _runFrom(live) : undefined;
    },
    reapDeadRuns() {
      if (meta.readOnly) return 0;
      const rows = db.prepare(
        "SELECT id, process_id, pid FROM schedule_runs WHERE status = 'running'",
      ).all();
      let reaped = 0;
      for (const row of rows) {
        if (meta.isAlive(row.process_id as string | null)) continue;
        sqliteWrite(db, () =>
          db.prepare(
            "UPDATE schedule_runs SET status = 'failed', error = ?, finished_at = ?, process_id = NULL WHERE id = ? AND status = 'running'",
          ).run(
            `interrupted: process ${row.pid} stopped before the run finished`,
            now(),
            Number(row.id),
          ));
        reaped++;
      }
      return reaped;
    },
    acquireLease() {
      return transaction(db, () => {
        const current = holder();
        if (current && current.processId !== me.id && current.alive) return false;
        db.prepare(
          `INSERT INTO scheduler_lease (name, process_id, pid, hostname, acquired_at, heartbeat_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET process_id = excluded.process_id, pid = excluded.pid,
             hostname = excluded.hostname,
             acquired_at = CASE WHEN scheduler_lease.process_id = excluded.process_id
               THEN scheduler_lease.acquired_at ELSE excluded.acquired_at END,
             heartbeat_at = excluded.heartbeat_at`,
        ).run(_LEASE, me.id, me.pid, me.hostname, now(), now());
        return true;
      });
    },
    renewLease() {
      const changes = sqliteWrite(db, () =>
        db.prepare(
          "UPDATE scheduler_lease SET heartbeat_at = ? WHERE name = ? AND process_id = ?",
        ).run(now(), _LEASE, me.id)).changes;
      return Number(changes) === 1;
    },
    releaseLease() {
      if (meta.readOnly) return;
      sqliteWrite(
        db,
        () =>
          db.prepare("DELETE FROM scheduler_lease WHERE name = ? AND process_id = ?").run(
            _LEASE,
            me.id,
          ),
      );
    },
    leaseHolder: holder,
  };
}

/** Whether the database has the schedule tables (migration 9 applied). */
export function hasScheduleTables(meta: MetaStore): boolean {
  return tableExists(meta.db, "schedule_runs");
}

function _runFrom(row: Record<string, unknown>): ScheduleRun {
  return {
    id: Number(row.id),
    schedule: row.schedule as string,
    command: row.command as string,
    trigger: row.trigger as RunTrigger,
    plannedAt: Number(row.planned_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    status: row.status as RunStatus,
    attempt: Number(row.attempt),
    jobIds: JSON.parse(row.job_ids as string),
    pid: row.pid === null ? null : Number(row.pid),
    error: row.error as string | null,
  };
}
