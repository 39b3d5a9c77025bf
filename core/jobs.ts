import type { Bar, Timeframe } from "./types.ts";

/** Lifecycle of a job. `partial`: some tasks failed, the rest succeeded. */
export const JOB_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "partial",
  "failed",
  "cancelled",
] as const;

/** One of {@link JOB_STATUSES}. */
export type JobStatus = typeof JOB_STATUSES[number];

/** Statuses of a run of a configured schedule (`serve`); `running` until it ends. */
export const RUN_STATUSES = [
  "running",
  "succeeded",
  "partial",
  "failed",
  "skipped",
  "cancelled",
] as const;

/** One of {@link RUN_STATUSES}. */
export type RunStatus = typeof RUN_STATUSES[number];

/** Lifecycle of one task (one symbol over a run of trading days inside one partition). */
export type TaskStatus = "pending" | "running" | "done" | "failed";

/** What an ingest job fetches; stored with the job so `--resume` can repeat it. */
export interface JobSpec {
  provider: string;
  feed: string;
  adjustment: string;
  timeframe: Timeframe;
  symbols: string[];
  start: string;
  end: string;
  /** Provider options that change the data (e.g. the fake provider's seed). */
  params: Record<string, string | number | boolean>;
}

/** What a job does: `ingest` fetches bars; the server also runs `prune`, `delete` and `export`. */
export const JOB_KINDS = ["ingest", "prune", "delete", "export"] as const;

/** One of {@link JOB_KINDS}. */
export type JobKind = typeof JOB_KINDS[number];

/**
 * A job row. Times are epoch milliseconds. A job that is not an ingest has `""` as provider,
 * feed and adjustment (and as timeframe, start or end when it spans every one), its options in
 * `params`, and what it did in `result`.
 */
export interface JobRecord extends JobSpec {
  id: string;
  kind: JobKind;
  /** What a prune, delete or export did, once it succeeded (null for ingests). */
  result: Record<string, unknown> | null;
  status: JobStatus;
  requestKey: string;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
  pid: number | null;
  error: string | null;
  barsWritten: number;
}

/** A task row. */
export interface TaskRecord {
  jobId: string;
  seq: number;
  symbol: string;
  start: string;
  end: string;
  days: number;
  status: TaskStatus;
  attempts: number;
  barsFetched: number;
  barsWritten: number;
  barsReplaced: number;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  quarantined: number;
  findings: Record<string, number>;
}

/** A task to create. */
export interface NewTask {
  symbol: string;
  start: string;
  end: string;
  days: number;
}

/** What finishing a task records: counts and, per trading date, how many bars it stored. */
export interface TaskResult {
  barsFetched: number;
  barsWritten: number;
  barsReplaced: number;
  /** Bars rejected by error-level validation rules (written to the quarantine, not to bars/). */
  quarantined: number;
  /** Validation findings by rule id, errors and warnings. */
  findings: Record<string, number>;
  dayCounts: Record<string, number>;
}

/** A bar rejected by an error-level validation rule. */
export interface RejectedBar {
  bar: Bar;
  rule: string;
  detail: string;
}

/** What a {@link BarValidator} decided about a batch of bars. */
export interface ValidationOutcome {
  /** Bars to store (valid or with warnings only). */
  keep: Bar[];
  /** Bars to quarantine, each with the first error rule it broke. */
  rejected: RejectedBar[];
  /** Findings by rule id, errors and warnings. */
  counts: Record<string, number>;
}

/** Checks the bars of one symbol and task before they are stored. */
export type BarValidator = (bars: Bar[]) => ValidationOutcome;

/** Where bars were fetched from; days already ingested from the same source are skipped. */
export interface SourceKey {
  provider: string;
  feed: string;
  adjustment: string;
  timeframe: Timeframe;
  params: Record<string, string | number | boolean>;
}

/** Counts from writing bars into partitions. */
export interface WriteResult {
  /** Bars whose key was not stored before, or stored only by this same job (a resumed task). */
  written: number;
  /** Bars that replaced a stored bar with the same key (the newer ingest wins). */
  replaced: number;
  /** Partitions rewritten. */
  partitions: number;
}

/**
 * Everything the ingest engine needs from storage. `storage/` implements it over SQLite and
 * Parquet; tests may implement it in memory.
 */
export interface IngestStore {
  /** Mark jobs whose process died as failed so they can be resumed. */
  reapDeadJobs(): void;
  /** Trading dates already ingested per symbol from this source within [start, end]. */
  coveredDays(
    source: SourceKey,
    symbols: string[],
    start: string,
    end: string,
  ): Map<string, Set<string>>;
  /** The newest unfinished job with this request key whose process is gone. */
  findResumableJob(requestKey: string): JobRecord | undefined;
  getJob(id: string): JobRecord | undefined;
  listTasks(jobId: string): TaskRecord[];
  createJob(spec: JobSpec, requestKey: string, tasks: NewTask[]): JobRecord;
  /** Take ownership of a job for this process and mark it running; throws if a live process owns it. */
  claimJob(jobId: string): JobRecord;
  startTask(jobId: string, seq: number): void;
  /** Mark a task done and record its per-day coverage, atomically: this is the checkpoint. */
  completeTask(jobId: string, seq: number, source: SourceKey, result: TaskResult): void;
  failTask(jobId: string, seq: number, error: string): void;
  /** Put an interrupted task back to pending. */
  releaseTask(jobId: string, seq: number): void;
  finishJob(jobId: string, status: JobStatus, error?: string): JobRecord;
  /** Merge bars into their partitions atomically; the newer ingest wins on equal keys. */
  writeBars(bars: Bar[], options: { jobId: string; signal?: AbortSignal }): Promise<WriteResult>;
  /** Store rejected bars with their rule under the quarantine tree. */
  writeQuarantine?(rejected: RejectedBar[], options: { jobId: string }): Promise<void>;
}
