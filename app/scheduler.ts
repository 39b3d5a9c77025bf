/**
 * The scheduler inside `marketpipe serve`: fires each schedule at its times, never runs one
 * schedule twice at once (skip or queue), catches up runs missed while the server was down,
 * retries failed runs with backoff and then alerts, records every run, and runs only while this
 * process holds the data directory's scheduler lease (taken over from a dead holder).
 *
 * Time and timers are injected, so tests drive it with a fake clock.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import { errorChain, UsageError } from "../core/errors.ts";
import type { SeriesFreshness } from "../core/freshness.ts";
import {
  catchUpRuns,
  formatZoned,
  missedRuns,
  nextRuns,
  retryDelay,
  type Schedule,
} from "../core/schedule.ts";
import type { RunTrigger, ScheduleRun, ScheduleStore } from "../storage/schedule_store.ts";
import type { Notifier } from "./notify.ts";

/** How a command run by a schedule ended. */
export interface RunResult {
  status: "succeeded" | "partial" | "failed" | "cancelled";
  /** One line, for a run that did not succeed. */
  error?: string;
  /** Jobs the command recorded. */
  jobIds?: string[];
  /** False when running it again cannot help (bad arguments): no retry. Default true. */
  retriable?: boolean;
}

/** What runs a schedule's command: `marketpipe <command> <args>` in this process, or a fake. */
export type RunCommand = (
  schedule: Schedule,
  context: { signal: AbortSignal; plannedAt: number; attempt: number; trigger: RunTrigger },
) => Promise<RunResult>;

/** The timer functions the scheduler uses (a fake clock's in tests). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** A schedule whose run failed on every attempt. */
export interface ScheduleAlert {
  schedule: string;
  /** The fire time of the run that failed. */
  plannedAt: number;
  status: "failed" | "partial";
  attempts: number;
  error: string | null;
  /** When the last attempt ended. */
  at: number;
}

/** What a scheduler knows about one schedule now. */
export interface ScheduleState {
  schedule: Schedule;
  /** Next fire time while this process holds the lease; undefined otherwise. */
  next: number | undefined;
  /** A run (or a wait for its retry) is in progress. */
  busy: boolean;
  /** Fire times waiting for the run in progress (overlap: queue, and catch-up: all). */
  queued: number[];
  /** When the pending retry starts. */
  retryAt: number | undefined;
}

/** Options of {@link createScheduler}. */
export interface SchedulerOptions {
  store: ScheduleStore;
  runCommand: RunCommand;
  clock?: Clock;
  timers?: Timers;
  /** One line per event (runs, retries, alerts, the lease). */
  log?: (line: string) => void;
  /** After each recorded run ends (skipped ones too): e.g. `mp_schedule_runs_total`. */
  onRun?: (run: ScheduleRun) => void;
  /** When a run failed on every attempt (e.g. `mp_schedule_alerts`). */
  onAlert?: (alert: ScheduleAlert) => void;
  /** Webhook for failed and partial runs and newly stale series. */
  notify?: Notifier;
  /** Series freshness, checked after each run and every `everyMs` while holding the lease. */
  freshness?: {
    check: () => SeriesFreshness[];
    /** Default 15 min. */
    everyMs?: number;
    /** With every check, the stale series (e.g. to set `mp_series_stale`). */
    onCheck?: (stale: SeriesFreshness[]) => void;
  };
  /** How often the lease is renewed (or, by a standby, tried); default 10 s. */
  leaseEveryMs?: number;
}

/** A running scheduler. */
export interface Scheduler {
  /** Take the lease (or stand by for it), catch up missed runs and arm the timers. */
  start(): void;
  /** Disarm, cancel runs in flight (their jobs stay resumable), wait for them, release the lease. */
  stop(): Promise<void>;
  /** Replace the schedules (SIGHUP): removed ones stop firing, runs in flight go on. */
  reload(schedules: readonly Schedule[]): void;
  /**
   * Run a schedule now, once (no retries), recorded as `manual`: resolves when it has started,
   * with its record and a promise of the finished one. Throws a `UsageError` for an unknown
   * schedule or one whose run is still going.
   */
  runNow(name: string): Promise<{ run: ScheduleRun; finished: Promise<ScheduleRun> }>;
  readonly holdsLease: boolean;
  schedules(): ScheduleState[];
  /** Schedules whose last run failed on every attempt (cleared by their next success). */
  alerts(): ScheduleAlert[];
  /** Resolves once no run is in flight (for tests and shutdown). */
  idle(): Promise<void>;
}

interface _Entry {
  schedule: Schedule;
  next: number | undefined;
  timer: unknown;
  busy: boolean;
  queued: { plannedAt: number; trigger: RunTrigger }[];
  retryAt: number | undefined;
  retryTimer: unknown;
}

// setTimeout takes at most 2^31-1 ms; waking hourly also follows a changed wall clock.
const _MAX_WAIT_MS = 3_600_000;

/**
 * A scheduler of `schedules` over `options.store`; nothing runs before {@link Scheduler.start}.
 *
 * @example
 * ```ts
 * const scheduler = createScheduler(config.schedules, { store: createScheduleStore(meta), runCommand });
 * scheduler.start();
 * Deno.addSignalListener("SIGHUP", () => scheduler.reload(readSchedules()));
 * // ...
 * await scheduler.stop();
 * ```
 */
export function createScheduler(
  schedules: readonly Schedule[],
  options: SchedulerOptions,
): Scheduler {
  const { store, runCommand } = options;
  const clock = options.clock ?? Date.now;
  const timers: Timers = options.timers ?? {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (id) => clearTimeout(id as number),
  };
  const log = options.log ?? (() => {});
  const leaseEveryMs = options.leaseEveryMs ?? 10_000;
  const entries = new Map<string, _Entry>();
  const inFlight = new Set<Promise<unknown>>();
  const alerts = new Map<string, ScheduleAlert>();
  const controller = new AbortController();
  let leader = false;
  let started = false;
  let stopping = false;
  let leaseTimer: unknown;
  let freshnessTimer: unknown;
  let notifiedStale = new Set<string>();

  const entryOf = (schedule: Schedule): _Entry => ({
    schedule,
    next: undefined,
    timer: undefined,
    busy: false,
    queued: [],
    retryAt: undefined,
    retryTimer: undefined,
  });
  for (const schedule of schedules) entries.set(schedule.name, entryOf(schedule));

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    promise.finally(() => inFlight.delete(promise)).catch(() => {});
    return promise;
  };

  /** Arm `entry`'s timer for its next fire time after `after`. */
  const arm = (entry: _Entry, after: number) => {
    timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    if (!leader || stopping) {
      entry.next = undefined;
      return;
    }
    entry.next = nextRuns(entry.schedule, after, 1)[0];
    if (entry.next !== undefined) wake(entry);
  };

  const wake = (entry: _Entry) => {
    const wait = Math.max(0, Math.min(_MAX_WAIT_MS, entry.next! - clock()));
    entry.timer = timers.setTimeout(() => {
      entry.timer = undefined;
      if (!leader || stopping || entry.next === undefined) return;
      if (clock() < entry.next) return wake(entry);
      const plannedAt = entry.next;
      arm(entry, Math.max(plannedAt, clock()));
      fire(entry, plannedAt, "schedule");
    }, wait);
  };

  const fire = (entry: _Entry, plannedAt: number, trigger: RunTrigger) => {
    const other = entry.busy ? undefined : store.liveRun(entry.schedule.name);
    if (!entry.busy && other === undefined) {
      track(execute(entry, plannedAt, 1, trigger, true));
      return;
    }
    if (entry.schedule.overlap === "queue") {
      if (!entry.queued.some((q) => q.plannedAt === plannedAt)) {
        entry.queued.push({ plannedAt, trigger });
      }
      log(
        `schedule ${entry.schedule.name}: run for ${
          formatZoned(plannedAt)
        } queued behind the one in progress`,
      );
      return;
    }
    const reason = other === undefined
      ? "skipped: the previous run is still going"
      : `skipped: run ${other.id} (pid ${other.pid}) is still going`;
    recordSkipped(entry, trigger, plannedAt, reason);
    log(`schedule ${entry.schedule.name}: run for ${formatZoned(plannedAt)} ${reason}`);
  };

  /** Record a run that did not happen, then report it like any other. */
  const recordSkipped = (entry: _Entry, trigger: RunTrigger, plannedAt: number, reason: string) => {
    const schedule = entry.schedule.name;
    const command = _commandText(entry.schedule);
    const id = store.recordSkipped({ schedule, command, trigger, plannedAt, reason });
    options.onRun?.(store.getRun(id)!);
  };

  /** Run one attempt; on failure arm the retry (when `retry`) or alert. */
  const execute = async (
    entry: _Entry,
    plannedAt: number,
    attempt: number,
    trigger: RunTrigger,
    retry: boolean,
    onStarted?: (run: ScheduleRun) => void,
  ): Promise<ScheduleRun> => {
    entry.busy = true;
    const schedule = entry.schedule;
    const command = _commandText(schedule);
    const id = store.startRun({ schedule: schedule.name, command, trigger, plannedAt, attempt });
    onStarted?.(store.getRun(id)!);
    log(
      `schedule ${schedule.name}: run ${id} started: marketpipe ${command}${
        trigger === "schedule" ? "" : ` (${trigger}${attempt > 1 ? ` ${attempt - 1}` : ""})`
      }`,
    );
    let result: RunResult;
    try {
      result = await runCommand(schedule, {
        signal: controller.signal,
        plannedAt,
        attempt,
        trigger,
      });
    } catch (error) {
      result = controller.signal.aborted
        ? { status: "cancelled", error: "cancelled: the server stopped" }
        : { status: "failed", error: errorChain(error) };
    }
    store.finishRun(id, {
      status: result.status,
      error: result.status === "succeeded" ? undefined : result.error ?? result.status,
      jobIds: result.jobIds,
    });
    const run = store.getRun(id)!;
    options.onRun?.(run);
    const took = _duration((run.finishedAt ?? 0) - (run.startedAt ?? 0));
    if (result.status === "succeeded" || result.status === "cancelled") {
      log(`schedule ${schedule.name}: run ${id} ${result.status} in ${took}`);
      if (result.status === "succeeded") alerts.delete(schedule.name);
      done(entry);
      return run;
    }
    const attempts = retry ? schedule.retries + 1 : attempt;
    if (retry && attempt < attempts && result.retriable !== false && !stopping) {
      const delay = retryDelay(schedule, attempt);
      log(
        `schedule ${schedule.name}: run ${id} ${result.status} in ${took} (attempt ${attempt} of ${attempts}): ${run.error}; retrying in ${
          _duration(delay)
        }`,
      );
      entry.retryAt = clock() + delay;
      entry.retryTimer = timers.setTimeout(() => {
        entry.retryTimer = undefined;
        entry.retryAt = undefined;
        // A lease lost meanwhile: the new holder's schedule takes over.
        if (stopping || !leader) return done(entry);
        track(execute(entry, plannedAt, attempt + 1, "retry", true));
      }, delay);
      return run;
    }
    const alert: ScheduleAlert = {
      schedule: schedule.name,
      plannedAt,
      status: result.status,
      attempts: attempt,
      error: run.error,
      at: run.finishedAt ?? clock(),
    };
    alerts.set(schedule.name, alert);
    log(
      `error: schedule ${schedule.name}: run for ${
        formatZoned(plannedAt)
      } ${result.status} after ${attempt} ${attempt === 1 ? "attempt" : "attempts"}: ${run.error}`,
    );
    options.onAlert?.(alert);
    if (options.notify) {
      track(options.notify({
        event: result.status === "partial" ? "run.partial" : "run.failed",
        schedule: schedule.name,
        command,
        plannedAt: new Date(plannedAt).toISOString(),
        attempts: attempt,
        error: run.error,
        jobIds: run.jobIds,
      }, controller.signal));
    }
    done(entry);
    return run;
  };

  /** A run has ended for good: start the next queued one, check freshness. */
  const done = (entry: _Entry) => {
    entry.busy = false;
    if (leader) checkFreshness();
    if (stopping || !leader || !entries.has(entry.schedule.name)) {
      entry.queued = [];
      return;
    }
    const next = entry.queued.shift();
    if (next) track(execute(entry, next.plannedAt, 1, next.trigger, true));
  };

  const checkFreshness = () => {
    if (!options.freshness) return;
    let stale: SeriesFreshness[];
    try {
      stale = options.freshness.check().filter((s) => s.stale);
    } catch (error) {
      log(`error: cannot check series freshness: ${errorChain(error)}`);
      return;
    }
    options.freshness.onCheck?.(stale);
    const key = (s: SeriesFreshness) => `${s.symbol} ${s.timeframe} ${s.expected}`;
    const fresh = stale.filter((s) => !notifiedStale.has(key(s)));
    notifiedStale = new Set(stale.map(key));
    if (fresh.length === 0) return;
    log(
      `warning: ${fresh.length} series stale: ${
        fresh.slice(0, 5).map((s) => `${s.symbol} ${s.timeframe} (last ${s.last})`).join(", ")
      }${fresh.length > 5 ? ", ..." : ""}`,
    );
    if (options.notify) {
      track(options.notify({
        event: "series.stale",
        series: fresh.map((s) => ({
          symbol: s.symbol,
          timeframe: s.timeframe,
          last: s.last,
          expected: s.expected!,
          missedSessions: s.missedSessions,
        })),
      }, controller.signal));
    }
  };

  const armFreshness = () => {
    if (!options.freshness || stopping) return;
    timers.clearTimeout(freshnessTimer);
    freshnessTimer = timers.setTimeout(() => {
      freshnessTimer = undefined;
      if (!leader || stopping) return;
      checkFreshness();
      armFreshness();
    }, options.freshness.everyMs ?? 900_000);
  };

  /** Runs missed since each schedule's last recorded run, per its catch-up policy. */
  const catchUp = () => {
    const now = clock();
    for (const entry of entries.values()) {
      const last = store.lastPlanned(entry.schedule.name);
      if (last === undefined) continue;
      const missed = missedRuns(entry.schedule, last, now);
      if (missed.length === 0) continue;
      const picked = catchUpRuns(entry.schedule.catchUp, missed);
      log(
        `schedule ${entry.schedule.name}: ${missed.length} ${
          missed.length === 1 ? "run" : "runs"
        } missed since ${formatZoned(last)}; catch-up: ${entry.schedule.catchUp}${
          picked.length > 0 ? `, running ${picked.length}` : ""
        }`,
      );
      if (picked.length === 0) {
        // Recorded, so the next start does not count the same runs as missed again.
        const reason = "skipped: missed while no server ran schedules (catch-up: none)";
        recordSkipped(entry, "catch-up", missed[missed.length - 1], reason);
        continue;
      }
      entry.queued.push(
        ...picked.map((plannedAt) => ({ plannedAt, trigger: "catch-up" as const })),
      );
      if (!entry.busy && store.liveRun(entry.schedule.name) === undefined) {
        const first = entry.queued.shift()!;
        track(execute(entry, first.plannedAt, 1, first.trigger, true));
      }
    }
  };

  const becomeLeader = () => {
    leader = true;
    const reaped = store.reapDeadRuns();
    if (reaped > 0) log(`scheduler: marked ${reaped} runs of a stopped process as failed`);
    log(`scheduler: holding the schedule lease; ${entries.size} schedules`);
    catchUp();
    const now = clock();
    for (const entry of entries.values()) arm(entry, now);
    checkFreshness();
    armFreshness();
  };

  const leaseTick = () => {
    leaseTimer = undefined;
    if (stopping) return;
    if (leader) {
      if (!store.renewLease()) {
        leader = false;
        for (const entry of entries.values()) arm(entry, clock());
        const holder = store.leaseHolder();
        log(
          `warning: scheduler: lost the schedule lease to pid ${holder?.pid ?? "?"}; standing by`,
        );
      }
    } else if (store.acquireLease()) {
      becomeLeader();
    }
    leaseTimer = timers.setTimeout(leaseTick, leaseEveryMs);
  };

  const scheduler: Scheduler = {
    start() {
      if (started) throw new Error("The scheduler is already started");
      started = true;
      if (store.acquireLease()) {
        becomeLeader();
      } else {
        const holder = store.leaseHolder();
        log(
          `scheduler: pid ${holder?.pid ?? "?"} on ${
            holder?.hostname ?? "?"
          } holds the schedule lease; standing by`,
        );
      }
      leaseTimer = timers.setTimeout(leaseTick, leaseEveryMs);
    },
    async stop() {
      stopping = true;
      timers.clearTimeout(leaseTimer);
      timers.clearTimeout(freshnessTimer);
      for (const entry of entries.values()) {
        timers.clearTimeout(entry.timer);
        timers.clearTimeout(entry.retryTimer);
        entry.next = undefined;
        entry.queued = [];
      }
      controller.abort(new DOMException("The server stopped", "AbortError"));
      await scheduler.idle();
      if (leader) store.releaseLease();
      leader = false;
    },
    reload(next) {
      const names = new Set(next.map((s) => s.name));
      for (const [name, entry] of entries) {
        if (names.has(name)) continue;
        timers.clearTimeout(entry.timer);
        timers.clearTimeout(entry.retryTimer);
        if (entry.retryTimer !== undefined) entry.busy = false;
        entry.queued = [];
        entries.delete(name);
        alerts.delete(name);
      }
      const now = clock();
      for (const schedule of next) {
        const entry = entries.get(schedule.name) ?? entryOf(schedule);
        entry.schedule = schedule;
        entries.set(schedule.name, entry);
        arm(entry, now);
      }
      log(`scheduler: reloaded ${next.length} schedules`);
    },
    async runNow(name) {
      const entry = entries.get(name);
      if (!entry) {
        throw new UsageError(
          `Unknown schedule "${name}": expected one of ${
            [...entries.keys()].join(", ") || "(none configured)"
          }`,
        );
      }
      const other = store.liveRun(name);
      if (entry.busy || other !== undefined) {
        throw new UsageError(
          `Cannot run schedule "${name}" now: ${
            other
              ? `run ${other.id} (pid ${other.pid}) is still going`
              : "a run or its retry is pending"
          }`,
        );
      }
      let resolveStarted!: (run: ScheduleRun) => void;
      const startedRun = new Promise<ScheduleRun>((resolve) => resolveStarted = resolve);
      const finished = track(execute(entry, clock(), 1, "manual", false, resolveStarted));
      return { run: await startedRun, finished };
    },
    get holdsLease() {
      return leader;
    },
    schedules() {
      return [...entries.values()].map((entry) => ({
        schedule: entry.schedule,
        next: entry.next,
        busy: entry.busy,
        queued: entry.queued.map((q) => q.plannedAt),
        retryAt: entry.retryAt,
      }));
    },
    alerts: () => [...alerts.values()],
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
  return scheduler;
}

/** `update --timeframe 1m`: the command line after `marketpipe`. */
function _commandText(schedule: Schedule): string {
  return [schedule.command, ...schedule.args.map(_quoteArg)].join(" ");
}

function _quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

function _duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${Math.round(ms / 1_000)}s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)}m`;
  return `${(ms / 3_600_000).toFixed(1).replace(/\.0$/, "")}h`;
}
