/**
 * Jobs started from the web, run in the server process: ingests by the job service the CLI uses
 * (`planJob()`, `runJob()`), and prune, delete and export jobs (`runOperation()`). This module
 * adds the limit on jobs at once, refuses ingests that would write the same partitions, and
 * cancelling. Cancelling aborts a job's signal: an ingest's tasks in flight finish, the job ends
 * `cancelled` and can be resumed, exactly as after Ctrl-C on the command line; a prune or delete
 * stops after the partition in flight, an export leaves no file.
 *
 * @module
 */
import {
  type JobPlan,
  type JobProgress,
  type Operation,
  planJob,
  ResumeError,
  runJob,
  runOperation,
} from "../app/mod.ts";
import { partitionPeriod } from "../core/ingest.ts";
import type { Clock } from "../core/clock.ts";
import type { JobRecord, JobSpec } from "../core/jobs.ts";
import type { Metrics } from "../core/metrics.ts";
import type { PreparedIngest } from "../providers/ingest_request.ts";
import type { Store } from "../storage/mod.ts";
import { busy, conflict, notFound } from "./errors.ts";

/** What starting a job gave: a running job, or nothing to do. */
export type StartResult =
  | { kind: "started"; job: JobRecord; resumed: boolean; tasksLeft: number }
  | { kind: "up-to-date"; daysSkipped: number }
  | { kind: "already-succeeded"; job: JobRecord };

/**
 * Whether an ingest this process ran rolled its 1m bars up: `off` (not asked), `pending` (asked,
 * the ingest still runs), `running`, `done`, `skipped` (asked but not run: why in `detail`) or
 * `failed`.
 */
export interface JobAggregation {
  state: "off" | "pending" | "running" | "done" | "skipped" | "failed";
  /** What it did (`done`) or why not (`skipped`, `failed`). */
  detail?: string;
}

/** Jobs run by this process. */
export interface JobRunner {
  /** Starts an ingest and resolves once its job is recorded (or nothing needs fetching). */
  start(prepared: PreparedIngest): Promise<StartResult>;
  /**
   * Starts ingests one after the other, each as {@link JobRunner.start}; 503 before any starts
   * when they would not all fit under the limit.
   */
  startAll(prepared: readonly PreparedIngest[]): Promise<StartResult[]>;
  /** Starts a prune, delete or export and resolves once its job is recorded. */
  startOperation(operation: Operation): Promise<JobRecord>;
  /** Cancels a job this process runs; throws 404/409 `HttpError`s otherwise. */
  cancel(jobId: string): JobRecord;
  /** Whether this process runs the job (so it can be cancelled here). */
  isRunningHere(jobId: string): boolean;
  /** Latest progress of a job this process runs. */
  progress(jobId: string): JobProgress | undefined;
  /** Whether a job this process runs is aggregating its bars (after the ingest ended). */
  isAggregating(jobId: string): boolean;
  /** The roll-up of an ingest this process ran since it started (undefined for others). */
  aggregation(jobId: string): JobAggregation | undefined;
  /** Ids of the jobs this process runs. */
  running(): string[];
  /** Cancels every running job and waits until each has stopped (resumable). */
  shutdown(): Promise<void>;
}

/** Options of {@link createJobRunner}. */
export interface JobRunnerOptions {
  store: Store;
  metrics?: Metrics;
  /** Environment for provider credentials. */
  env: Record<string, string | undefined>;
  /** Decides which sessions have closed; default: system clock. */
  clock?: Clock;
  /** Jobs that may run at once in this process (default 2); more get 503. */
  maxJobs?: number;
  /** Called after a job ends (the server refreshes its views of the data). */
  onFinish?: (job: JobRecord | undefined) => void;
  /** Called with an error no request is waiting for (a job that failed after it started). */
  onError?: (error: unknown) => void;
}

interface _Entry {
  controller: AbortController;
  /** What an ingest writes (absent for other jobs). */
  spec?: JobSpec;
  jobId?: string;
  progress?: JobProgress;
  /** Rolling the job's 1m bars up to 5m ... 1d. */
  aggregating?: boolean;
  done: Promise<void>;
}

/**
 * A job runner over one open store.
 *
 * @example
 * ```ts
 * const runner = createJobRunner({ store, env: {} });
 * const started = await runner.start(await buildIngestRequest({ symbols: "AAPL", start: "2024-03-04" }));
 * ```
 */
export function createJobRunner(options: JobRunnerOptions): JobRunner {
  const { store } = options;
  const maxJobs = options.maxJobs ?? 2;
  const entries = new Set<_Entry>();
  const aggregations = new Map<string, JobAggregation>();
  const byId = (jobId: string) => [...entries].find((entry) => entry.jobId === jobId);
  const checkRoom = (jobs: number) => {
    if (entries.size + jobs > maxJobs) {
      throw busy(
        `${entries.size} of at most ${maxJobs} job(s) are running in this server${
          jobs > 1 ? ` and ${jobs} would start` : ""
        }; wait for one to end`,
        5,
      );
    }
  };

  /** What ends a job whose run threw: its entry goes, the start (or `onError`) gets the error. */
  const failed =
    (entry: _Entry, settle: (result: { error: unknown }) => void) => (error: unknown) => {
      entries.delete(entry);
      settle({ error });
      // After onStart nobody awaits the result: report it (settle above is then a no-op).
      if (entry.jobId !== undefined) options.onError?.(error);
      options.onFinish?.(undefined);
    };

  const runner: JobRunner = {
    async start(prepared) {
      checkRoom(1);
      const plan = _plan(options, prepared);
      if (plan.resumes && byId(plan.resumes.id)) {
        throw conflict(`Job ${plan.resumes.id} is already running in this server`);
      }
      const overlapping = [...entries].find((entry) =>
        entry.spec !== undefined && _sharesPartitions(entry.spec, plan.spec)
      );
      if (overlapping) {
        throw conflict(
          `Job ${
            overlapping.jobId ?? "(starting)"
          } is writing the same symbols and months; wait for it to end or cancel it`,
        );
      }
      const controller = new AbortController();
      let settle!: (result: StartResult | { error: unknown }) => void;
      const started = new Promise<StartResult | { error: unknown }>((resolve) => settle = resolve);
      const entry: _Entry = { controller, spec: plan.spec, done: Promise.resolve() };
      entries.add(entry);
      // The server refreshes its views once the job and its roll-up have ended.
      const failedRun = failed(entry, settle);
      entry.done = runJob(plan, {
        signal: controller.signal,
        onStart: ({ job, resumed, tasksLeft }) => {
          entry.jobId = job.id;
          aggregations.set(job.id, { state: plan.aggregate ? "pending" : "off" });
          settle({ kind: "started", job, resumed, tasksLeft });
        },
        onProgress: (p) =>
          entry.progress = {
            done: p.tasksDone + p.tasksFailed,
            total: p.tasksTotal,
            unit: "tasks",
          },
        onAggregateStart: () => {
          entry.aggregating = true;
          if (entry.jobId !== undefined) aggregations.set(entry.jobId, { state: "running" });
        },
      }).then(
        ({ summary, aggregation, notAggregated }) => {
          if (entry.jobId !== undefined && plan.aggregate) {
            aggregations.set(
              entry.jobId,
              aggregation
                ? {
                  state: "done",
                  detail:
                    `${aggregation.rebuilt} partition(s) rebuilt, ${aggregation.upToDate} up to date`,
                }
                : {
                  state: "skipped",
                  detail: notAggregated ?? `the ingest ended ${summary.status}`,
                },
            );
          }
          if (summary.status === "up-to-date") {
            settle({
              kind: "up-to-date",
              daysSkipped: summary.symbols.reduce((n, s) => n + s.daysSkipped, 0),
            });
          } else if (summary.job && summary.tasksAlreadyDone === summary.tasksTotal) {
            settle({ kind: "already-succeeded", job: summary.job });
          }
          // A no-op when onStart already settled it.
          settle({ error: new Error("The ingest ended without recording a job") });
          entries.delete(entry);
          options.onFinish?.(summary.job);
        },
        (error) => {
          if (entry.jobId !== undefined && aggregations.get(entry.jobId)?.state === "running") {
            aggregations.set(entry.jobId, {
              state: "failed",
              detail: error instanceof Error ? error.message : String(error),
            });
          }
          failedRun(error);
        },
      );
      const result = await started;
      if ("error" in result) throw result.error;
      return result;
    },

    async startAll(prepared) {
      checkRoom(prepared.length);
      const results: StartResult[] = [];
      for (const one of prepared) results.push(await runner.start(one));
      return results;
    },

    async startOperation(operation) {
      checkRoom(1);
      const controller = new AbortController();
      let settle!: (result: { job: JobRecord } | { error: unknown }) => void;
      const started = new Promise<{ job: JobRecord } | { error: unknown }>((resolve) =>
        settle = resolve
      );
      const entry: _Entry = { controller, done: Promise.resolve() };
      entries.add(entry);
      entry.done = runOperation(store, operation, {
        signal: controller.signal,
        onStart: (job) => {
          entry.jobId = job.id;
          settle({ job });
        },
        onProgress: (progress) => entry.progress = progress,
      }).then(
        (job) => {
          entries.delete(entry);
          options.onFinish?.(job);
        },
        failed(entry, settle),
      );
      const result = await started;
      if ("error" in result) throw result.error;
      return result.job;
    },

    cancel(jobId) {
      const job = store.getJob(jobId);
      if (!job) throw notFound(`No job "${jobId}"`);
      const entry = byId(job.id);
      if (!entry) {
        const why = job.status === "running" || job.status === "pending"
          ? `it runs in another process (pid ${job.pid ?? "?"}); stop that process to cancel it`
          : `it is ${job.status}`;
        throw conflict(`Cannot cancel job ${job.id}: ${why}`);
      }
      entry.controller.abort(new DOMException("Cancelled from the web", "AbortError"));
      return job;
    },

    isRunningHere(jobId) {
      return byId(jobId) !== undefined;
    },

    progress(jobId) {
      return byId(jobId)?.progress;
    },

    isAggregating(jobId) {
      return byId(jobId)?.aggregating === true;
    },

    aggregation(jobId) {
      return aggregations.get(jobId);
    },

    running() {
      return [...entries].flatMap((entry) => entry.jobId === undefined ? [] : [entry.jobId]);
    },

    async shutdown() {
      for (const entry of entries) {
        entry.controller.abort(new DOMException("Server shutting down", "AbortError"));
      }
      await Promise.allSettled([...entries].map((entry) => entry.done));
    },
  };
  return runner;
}

/** The shared job plan, with a resume that cannot run answered 404 or 409. */
function _plan(options: JobRunnerOptions, prepared: PreparedIngest): JobPlan {
  try {
    const { store, env, metrics, clock } = options;
    return planJob({ store, env, metrics, clock }, prepared);
  } catch (error) {
    if (!(error instanceof ResumeError)) throw error;
    if (error.reason === "missing") throw notFound(`No job "${error.jobId}"`);
    // Only an ingest has a provider to resume from.
    const kind = options.store.getJob(error.jobId)?.kind;
    const message = kind === undefined || kind === "ingest"
      ? error.message
      : `Cannot resume job ${error.jobId}: it is a ${kind} job, not an ingest`;
    throw conflict(message, error);
  }
}

/** Whether two jobs would write a common partition (same timeframe, symbol and month or year). */
function _sharesPartitions(a: JobSpec, b: JobSpec): boolean {
  if (a.timeframe !== b.timeframe) return false;
  if (!a.symbols.some((symbol) => b.symbols.includes(symbol))) return false;
  const period = (date: string) => partitionPeriod(a.timeframe, date);
  return period(a.start) <= period(b.end) && period(b.start) <= period(a.end);
}
