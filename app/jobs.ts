/**
 * The ingest job service of `marketpipe ingest` and `POST /api/jobs`: resolve a resumed job,
 * create the provider and validator, run the ingest, then roll the 1m bars up when asked.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import { UsageError } from "../core/errors.ts";
import {
  ingest,
  type IngestOptions,
  type IngestRequest,
  type IngestSummary,
} from "../core/ingest.ts";
import type { BarValidator, JobRecord, JobSpec } from "../core/jobs.ts";
import type { Metrics } from "../core/metrics.ts";
import type { Provider } from "../core/provider.ts";
import { createValidator } from "../core/validate.ts";
import { providerFactory, servesHistoricalTickers, withTickerHistory } from "../providers/mod.ts";
import type { PreparedIngest } from "../providers/ingest_request.ts";
import {
  aggregateIngested,
  type AggregationSummary,
  ReferenceStore,
  type Store,
} from "../storage/mod.ts";

/** What a job runs with: an open store, the environment for credentials, metrics. */
export interface JobDeps {
  store: Store;
  /** Environment for provider credentials. */
  env: Record<string, string | undefined>;
  metrics?: Metrics;
  /** Decides which sessions have closed, for the provider and the ingest; default: system clock. */
  clock?: Clock;
}

/** A job ready to run: the resumed job resolved, its provider and validator created. */
export interface JobPlan {
  deps: JobDeps;
  /** The request, with `resumeJobId` the full id of the resumed job. */
  request: IngestRequest;
  /** What the job writes: the resumed job's spec, or the request's. */
  spec: JobSpec;
  /** The job resumed by `request.resumeJobId`. */
  resumes?: JobRecord;
  provider: Provider;
  validator: BarValidator;
  /** Roll the job's 1m partitions up to 5m ... 1d once the ingest ends. */
  aggregate: boolean;
}

/** A resume that cannot run: no such job (`missing`), or one of a provider this build lacks. */
export class ResumeError extends UsageError {
  /** Why the job cannot be resumed. */
  readonly reason: "missing" | "unknown-provider";
  /** The id (or prefix) asked for. */
  readonly jobId: string;

  constructor(message: string, reason: "missing" | "unknown-provider", jobId: string) {
    super(message);
    this.name = "ResumeError";
    this.reason = reason;
    this.jobId = jobId;
  }
}

/**
 * Plan a job: resolve `--resume` against the store, refuse missing credentials and source
 * options the provider cannot serve, create the provider and the validator. Writes nothing.
 * Symbols the symbol master knows are fetched only within their listing window, and from a
 * provider that serves history under the ticker valid then, under their earlier tickers.
 *
 * @example
 * ```ts
 * const plan = planJob({ store, env: {} }, await buildIngestRequest({ symbols: "AAPL", start: "2024-03-04" }));
 * const { summary } = await runJob(plan, { signal });
 * ```
 */
export function planJob(deps: JobDeps, prepared: PreparedIngest): JobPlan {
  let { request, factory } = prepared;
  let spec: JobSpec = request;
  let resumes: JobRecord | undefined;
  if (request.resumeJobId !== undefined) {
    const id = request.resumeJobId;
    resumes = deps.store.getJob(id);
    if (!resumes) {
      throw new ResumeError(
        `Cannot resume job "${id}": no such job in ${deps.store.dataDir}`,
        "missing",
        id,
      );
    }
    const jobFactory = providerFactory(resumes.provider);
    if (!jobFactory) {
      throw new ResumeError(
        `Cannot resume job "${resumes.id}": unknown provider "${resumes.provider}"`,
        "unknown-provider",
        resumes.id,
      );
    }
    factory = jobFactory;
    spec = resumes;
    request = { ...request, resumeJobId: resumes.id };
  }
  const settings = {
    env: deps.env,
    params: spec.params,
    metrics: deps.metrics,
    rateLimit: prepared.rateLimit,
    clock: deps.clock,
  };
  // Missing credentials and unsupported source options are refused before a job exists.
  factory.check?.(settings, resumes ? undefined : request);
  let provider = factory.create(settings);
  const reference = new ReferenceStore(deps.store.meta.db);
  const windows = reference.listingWindows(spec.symbols);
  if (windows.size > 0) {
    request = { ...request, windows };
    if (servesHistoricalTickers(spec.provider)) {
      provider = withTickerHistory(
        provider,
        (symbol, start, end) => reference.tickerSegments(symbol, start, end),
      );
    }
  }
  return {
    deps,
    request,
    spec,
    resumes,
    provider,
    // Error-level bars are quarantined, not stored.
    validator: createValidator({ rules: prepared.validation, metrics: deps.metrics }),
    aggregate: prepared.aggregate ?? false,
  };
}

/** Options of {@link runJob}: the ingest's callbacks plus the roll-up's. */
export interface RunJobOptions extends Omit<IngestOptions, "now" | "clock"> {
  /** Called when the roll-up starts (after the ingest ended). */
  onAggregateStart?: () => void;
  /** Called as the roll-up checks target partitions. */
  onAggregateProgress?: (done: number, total: number) => void;
}

/** What {@link runJob} did. */
export interface JobOutcome {
  summary: IngestSummary;
  /** The roll-up, when the plan asked for one and it ran. */
  aggregation?: AggregationSummary;
  /** Why an asked-for roll-up did not run although the ingest ended well (not 1m bars). */
  notAggregated?: string;
}

/**
 * Run a planned job; afterwards, when the plan asks and the job was neither cancelled nor
 * failed, roll its 1m partitions up to 5m ... 1d. Cancelling `signal` stops it resumable.
 */
export async function runJob(plan: JobPlan, options: RunJobOptions = {}): Promise<JobOutcome> {
  const { store, metrics } = plan.deps;
  const { onAggregateStart, onAggregateProgress, ...ingestOptions } = options;
  const summary = await ingest(
    { provider: plan.provider, store, validator: plan.validator, metrics },
    plan.request,
    { ...ingestOptions, clock: plan.deps.clock },
  );
  if (!plan.aggregate || options.signal?.aborted || summary.status === "failed") {
    return { summary };
  }
  const range = summary.job ?? plan.request;
  if (range.timeframe !== "1m") {
    return {
      summary,
      notAggregated: `aggregation rolls up 1m bars, this ingest is ${range.timeframe}`,
    };
  }
  onAggregateStart?.();
  const aggregation = await aggregateIngested(store, range, {
    metrics,
    signal: options.signal,
    onProgress: onAggregateProgress,
  });
  return { summary, aggregation };
}
