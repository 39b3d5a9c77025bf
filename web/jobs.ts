/**
 * Ingest jobs started from the web, run in the server process by the same `ingest()` service the
 * CLI uses, and rolled up afterwards by the same `aggregateIngested()` when asked to. Cancelling
 * aborts a job's signal: tasks in flight finish, the job ends `cancelled`
 * and can be resumed, exactly as after Ctrl-C on the command line.
 *
 * @module
 */
import { ingest, type IngestProgress, partitionPeriod } from "../core/ingest.ts";
import type { JobRecord, JobSpec } from "../core/jobs.ts";
import type { Metrics } from "../core/metrics.ts";
import { createValidator } from "../core/validate.ts";
import { providerFactory } from "../providers/mod.ts";
import { aggregateIngested, type Store } from "../storage/mod.ts";
import type { PreparedIngest } from "../providers/ingest_request.ts";
import { busy, HttpError, notFound } from "./errors.ts";

/** What starting a job gave: a running job, or nothing to do. */
export type StartResult =
  | { kind: "started"; job: JobRecord; resumed: boolean; tasksLeft: number }
  | { kind: "up-to-date"; daysSkipped: number }
  | { kind: "already-succeeded"; job: JobRecord };

/** Jobs run by this process. */
export interface JobRunner {
  /** Starts an ingest and resolves once its job is recorded (or nothing needs fetching). */
  start(prepared: Omit<PreparedIngest, "dataDir">): Promise<StartResult>;
  /** Cancels a job this process runs; throws 404/409 `HttpError`s otherwise. */
  cancel(jobId: string): JobRecord;
  /** Whether this process runs the job (so it can be cancelled here). */
  isRunningHere(jobId: string): boolean;
  /** Latest progress of a job this process runs. */
  progress(jobId: string): IngestProgress | undefined;
  /** Whether a job this process runs is aggregating its bars (after the ingest ended). */
  isAggregating(jobId: string): boolean;
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
  /** Jobs that may run at once in this process (default 2); more get 503. */
  maxJobs?: number;
  /** Called after a job ends (the server refreshes its views of the data). */
  onFinish?: (job: JobRecord | undefined) => void;
  /** Called with an error no request is waiting for (a job that failed after it started). */
  onError?: (error: unknown) => void;
}

interface _Entry {
  controller: AbortController;
  spec: JobSpec;
  jobId?: string;
  progress?: IngestProgress;
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
  const byId = (jobId: string) => [...entries].find((entry) => entry.jobId === jobId);

  return {
    async start(prepared) {
      if (entries.size >= maxJobs) {
        throw busy(`${entries.size} job(s) are running in this server; wait for one to end`, 5);
      }
      let { request, factory } = prepared;
      let spec: JobSpec = request;
      let params = request.params;
      if (request.resumeJobId !== undefined) {
        const job = store.getJob(request.resumeJobId);
        if (!job) throw notFound(`No job "${request.resumeJobId}"`);
        if (byId(job.id)) {
          throw new HttpError(409, "conflict", `Job ${job.id} is already running in this server`);
        }
        const jobFactory = providerFactory(job.provider);
        if (!jobFactory) {
          throw new HttpError(
            409,
            "conflict",
            `Cannot resume job ${job.id}: unknown provider "${job.provider}"`,
          );
        }
        factory = jobFactory;
        spec = job;
        params = job.params as Record<string, number>;
        request = { ...request, resumeJobId: job.id };
      }
      const overlapping = [...entries].find((entry) => _sharesPartitions(entry.spec, spec));
      if (overlapping) {
        throw new HttpError(
          409,
          "conflict",
          `Job ${
            overlapping.jobId ?? "(starting)"
          } is writing the same symbols and months; wait for it to end or cancel it`,
        );
      }
      const settings = {
        env: options.env,
        params,
        metrics: options.metrics,
        rateLimit: prepared.rateLimit,
      };
      // Missing credentials and unsupported source options are refused before a job exists.
      factory.check?.(settings, request.resumeJobId === undefined ? request : undefined);
      const provider = factory.create(settings);
      // The same validation as `marketpipe ingest`: error-level bars are quarantined.
      const validator = createValidator({ rules: prepared.validation, metrics: options.metrics });
      const controller = new AbortController();
      let settle!: (result: StartResult | { error: unknown }) => void;
      const started = new Promise<StartResult | { error: unknown }>((resolve) => settle = resolve);
      const entry: _Entry = { controller, spec, done: Promise.resolve() };
      entries.add(entry);
      entry.done = ingest({ provider, store, validator, metrics: options.metrics }, request, {
        signal: controller.signal,
        onStart: ({ job, resumed, tasksLeft }) => {
          entry.jobId = job.id;
          settle({ kind: "started", job, resumed, tasksLeft });
        },
        onProgress: (progress) => entry.progress = progress,
      }).then(async (summary) => {
        // The roll-up of `marketpipe ingest --aggregate`, after the job ends and before the
        // server refreshes its views; a cancelled or failed job is not aggregated.
        const range = summary.job ?? request;
        if (
          prepared.aggregate && !controller.signal.aborted && summary.status !== "failed" &&
          range.timeframe === "1m"
        ) {
          entry.aggregating = true;
          await aggregateIngested(store, range, {
            metrics: options.metrics,
            signal: controller.signal,
          });
        }
        return summary;
      }).then(
        (summary) => {
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
          entries.delete(entry);
          settle({ error });
          // After onStart nobody awaits the result: report it (settle above is then a no-op).
          if (entry.jobId !== undefined) options.onError?.(error);
          options.onFinish?.(undefined);
        },
      );
      const result = await started;
      if ("error" in result) throw result.error;
      return result;
    },

    cancel(jobId) {
      const job = store.getJob(jobId);
      if (!job) throw notFound(`No job "${jobId}"`);
      const entry = byId(job.id);
      if (!entry) {
        const why = job.status === "running" || job.status === "pending"
          ? `it runs in another process (pid ${job.pid ?? "?"}); stop that process to cancel it`
          : `it is ${job.status}`;
        throw new HttpError(409, "conflict", `Cannot cancel job ${job.id}: ${why}`);
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
}

/** Whether two jobs would write a common partition (same timeframe, symbol and month or year). */
function _sharesPartitions(a: JobSpec, b: JobSpec): boolean {
  if (a.timeframe !== b.timeframe) return false;
  if (!a.symbols.some((symbol) => b.symbols.includes(symbol))) return false;
  const period = (date: string) => partitionPeriod(a.timeframe, date);
  return period(a.start) <= period(b.end) && period(b.start) <= period(a.end);
}
