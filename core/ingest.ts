import { exchangeDate, tradingDays } from "./calendar.ts";
import { type Clock, includesExtendedHours, isSessionClosed, systemClock } from "./clock.ts";
import {
  CorruptFileError,
  errorChain,
  findStorageError,
  type StorageError,
  UsageError,
} from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import type {
  BarValidator,
  IngestStore,
  JobRecord,
  JobSpec,
  JobStatus,
  NewTask,
  SourceKey,
  TaskRecord,
  TaskResult,
} from "./jobs.ts";
import { runPool } from "./pool.ts";
import { type FetchRequest, type Provider, ProviderError } from "./provider.ts";
import { withRetry } from "./retry.ts";
import type { Bar, Timeframe } from "./types.ts";

/** An ingest to run: what to fetch and how. */
export interface IngestRequest extends JobSpec {
  /** Concurrent tasks. */
  workers: number;
  /** Fetch again days that are already stored from this source. */
  force: boolean;
  /** Resume this job instead of planning a new one. */
  resumeJobId?: string;
  /** Bars per provider request, when the provider pages. */
  batchSize?: number;
  /** Bound on the bars one multi-symbol batch brings into memory. Default 200,000. */
  batchBars?: number;
  /** Attempts per task for retriable provider errors. Default 3. */
  attempts?: number;
  /**
   * Listing windows of the symbols the symbol master knows: days outside a symbol's window are
   * not planned. Not part of the job's spec, so the request key does not depend on it.
   */
  windows?: ReadonlyMap<string, ListingWindow>;
}

/** The trading dates a symbol is judged on: [start, end], both inclusive, null = open. */
export interface ListingWindow {
  start: string | null;
  end: string | null;
}

/** Whether `date` falls inside `window` (always, without a window). */
export function inListingWindow(date: string, window: ListingWindow | undefined): boolean {
  if (window === undefined) return true;
  return (window.start === null || date >= window.start) &&
    (window.end === null || date <= window.end);
}

/** Progress of a running ingest, reported after every task. */
export interface IngestProgress {
  jobId: string;
  tasksDone: number;
  tasksFailed: number;
  tasksTotal: number;
  symbolsDone: number;
  symbolsTotal: number;
  barsWritten: number;
  barsFetched: number;
  elapsedMs: number;
}

/** Per-symbol outcome of an ingest. */
export interface SymbolSummary {
  symbol: string;
  barsFetched: number;
  barsWritten: number;
  barsReplaced: number;
  /** Trading days not fetched because they were already stored from the same source. */
  daysSkipped: number;
  /** Trading days not planned because they are outside the symbol's listing window. */
  daysUnlisted: number;
  daysFetched: number;
  tasksFailed: number;
  /** Tasks not run (the job was interrupted). */
  tasksPending: number;
  /** `ok`, `failed` (all its tasks failed), `partial` (some failed) or `pending` (interrupted). */
  status: "ok" | "failed" | "partial" | "pending";
  /** Bars rejected by error-level validation rules and written to the quarantine. */
  barsQuarantined: number;
  /** Validation findings by rule id (errors and warnings). */
  findings: Record<string, number>;
  errors: string[];
  /** Stored files that could not be read, so their tasks failed (see `marketpipe repair`). */
  corruptFiles: string[];
}

/** Outcome of {@link ingest}. `upToDate`: nothing needed fetching and no job was created. */
export interface IngestSummary {
  job: JobRecord | undefined;
  status: JobStatus | "up-to-date";
  resumed: boolean;
  tasksTotal: number;
  tasksAlreadyDone: number;
  symbols: SymbolSummary[];
  barsFetched: number;
  barsWritten: number;
  barsReplaced: number;
  elapsedMs: number;
}

/** Dependencies of {@link ingest}. */
export interface IngestDeps {
  provider: Provider;
  store: IngestStore;
  /** Checks bars before they are stored; error-level bars are quarantined, not stored. */
  validator?: BarValidator;
  metrics?: Metrics;
}

/** Options of {@link ingest}. */
export interface IngestOptions {
  signal?: AbortSignal;
  onProgress?: (progress: IngestProgress) => void;
  /** Called after each task with its outcome (for verbose logs). */
  onTask?: (
    info: { task: TaskRecord; result?: TaskResult; error?: string; elapsedMs: number },
  ) => void;
  /** Called once the job is known, before any task runs. */
  onStart?: (
    info: { job: JobRecord; resumed: boolean; tasksTotal: number; tasksLeft: number },
  ) => void;
  /** Measures elapsed time; default `Date.now`. */
  now?: () => number;
  /**
   * Decides which sessions have closed: a job whose range holds one that has not is refused
   * before anything is recorded. Default {@link systemClock}.
   */
  clock?: Clock;
}

/**
 * Plan, record and run an ingest job: one task per symbol and run of trading days inside one
 * storage partition, on a bounded worker pool. A task is marked done only after its bars are
 * durably written, so a killed run repeated with the same request (or `resumeJobId`) does only
 * the tasks left. A failing task does not stop the others; the job ends `partial`.
 *
 * @example
 * ```ts
 * const summary = await ingest({ provider, store }, {
 *   provider: "fake", feed: "sip", adjustment: "raw", timeframe: "1m", params: {},
 *   symbols: ["AAPL"], start: "2024-03-04", end: "2024-03-08", workers: 4, force: false,
 * }, { signal });
 * console.log(summary.status, summary.barsWritten);
 * ```
 */
export async function ingest(
  deps: IngestDeps,
  request: IngestRequest,
  options: IngestOptions = {},
): Promise<IngestSummary> {
  const { provider, store, metrics } = deps;
  const now = options.now ?? Date.now;
  const started = now();
  const opened = await _openJob(
    store,
    request,
    () => now() - started,
    (options.clock ?? systemClock)(),
  );
  if ("summary" in opened) return opened.summary;
  const { job, resumed } = opened;

  const source = sourceKeyOf(job);
  const allTasks = store.listTasks(job.id);
  const todo = allTasks.filter((task) => task.status !== "done");
  options.onStart?.({ job, resumed, tasksTotal: allTasks.length, tasksLeft: todo.length });

  const symbols = _symbolSummaries(job, allTasks, request.windows);
  const tasksPerSymbol = new Map<string, number>();
  for (const task of todo) {
    tasksPerSymbol.set(task.symbol, (tasksPerSymbol.get(task.symbol) ?? 0) + 1);
  }

  const progress: IngestProgress = {
    jobId: job.id,
    tasksDone: allTasks.length - todo.length,
    tasksFailed: 0,
    tasksTotal: allTasks.length,
    symbolsDone: job.symbols.length - tasksPerSymbol.size,
    symbolsTotal: job.symbols.length,
    barsWritten: 0,
    barsFetched: 0,
    elapsedMs: 0,
  };
  const jobId = job.id;
  const signal = options.signal;
  // A full or read-only disk fails every task the same way: the first such failure stops the
  // job (tasks in flight end, the rest stay pending) instead of failing each task in turn.
  const stop = new AbortController();
  const running = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let diskFailure: DiskFailure | undefined;
  const stopOnDisk = (error: unknown): boolean => {
    const storage = findStorageError(error);
    if (!storage) return false;
    diskFailure ??= { error, storage };
    stop.abort(storage);
    return true;
  };
  // A metadata write on a full disk stops the job rather than throwing out of the pool, so the
  // job can still be marked failed once the writes in flight have ended and freed their space.
  const record = (write: () => void): boolean => {
    try {
      write();
      return true;
    } catch (error) {
      if (stopOnDisk(error)) return false;
      throw error;
    }
  };

  const finishTask = (
    task: TaskRecord,
    taskStarted: number,
    outcome: { result?: TaskResult; error?: unknown },
  ) => {
    const summary = symbols.get(task.symbol)!;
    let { result, error: failure } = outcome;
    if (result) {
      try {
        store.completeTask(jobId, task.seq, source, result);
      } catch (error) {
        // The bars are stored but the checkpoint is not: the task failed and runs again.
        result = undefined;
        failure = error;
      }
    }
    if (result) {
      options.onTask?.({ task, result, elapsedMs: now() - taskStarted });
      summary.barsFetched += result.barsFetched;
      summary.barsWritten += result.barsWritten;
      summary.barsReplaced += result.barsReplaced;
      summary.barsQuarantined += result.quarantined;
      for (const [rule, n] of Object.entries(result.findings)) {
        summary.findings[rule] = (summary.findings[rule] ?? 0) + n;
      }
      summary.daysFetched += task.days;
      progress.tasksDone++;
      progress.barsWritten += result.barsWritten;
      progress.barsFetched += result.barsFetched;
      metrics?.ingestRows.inc(
        { provider: job.provider, timeframe: job.timeframe },
        result.barsWritten + result.barsReplaced,
      );
      metrics?.processingTime.observe({ operation: "ingest" }, (now() - taskStarted) / 1000);
    } else {
      if (!stopOnDisk(failure) && running.aborted) {
        record(() => store.releaseTask(jobId, task.seq));
        return;
      }
      // The whole chain, so `jobs show` and --verbose keep the reason, not just "Cannot write".
      const message = errorChain(failure);
      record(() => store.failTask(jobId, task.seq, message));
      options.onTask?.({ task, error: message, elapsedMs: now() - taskStarted });
      summary.tasksFailed++;
      if (!summary.errors.includes(message)) summary.errors.push(message);
      const corrupt = failure instanceof CorruptFileError ? failure.path : undefined;
      if (corrupt !== undefined && !summary.corruptFiles.includes(corrupt)) {
        summary.corruptFiles.push(corrupt);
      }
      progress.tasksFailed++;
    }
    const left = tasksPerSymbol.get(task.symbol)! - 1;
    tasksPerSymbol.set(task.symbol, left);
    if (left === 0) progress.symbolsDone++;
    progress.elapsedMs = now() - started;
    options.onProgress?.({ ...progress });
  };

  const batches = batchTasks(todo, provider.maxSymbolsPerRequest ?? 1, {
    timeframe: job.timeframe,
    maxBars: request.batchBars ?? DEFAULT_BATCH_BARS,
  });
  await runPool(batches, request.workers, async (batch) => {
    if (running.aborted) return;
    const batchStarted = now();
    for (const task of batch) {
      if (!record(() => store.startTask(jobId, task.seq))) return;
    }
    let fetched: Bar[];
    try {
      fetched = await fetchWithRetry(provider, job, batch, request, running);
    } catch (error) {
      for (const task of batch) finishTask(task, batchStarted, { error });
      return;
    }
    // One task needs no grouping: storeTask keeps (and counts) only its symbol's bars.
    const bySymbol = new Map<string, Bar[]>();
    if (batch.length === 1) bySymbol.set(batch[0].symbol, fetched);
    else {
      for (const bar of fetched) {
        let list = bySymbol.get(bar.symbol);
        if (!list) bySymbol.set(bar.symbol, list = []);
        list.push(bar);
      }
    }
    for (const task of batch) {
      if (stop.signal.aborted) {
        record(() => store.releaseTask(jobId, task.seq));
        continue;
      }
      try {
        const result = await storeTask(deps, job, task, bySymbol.get(task.symbol) ?? []);
        finishTask(task, batchStarted, { result });
      } catch (error) {
        finishTask(task, batchStarted, { error });
      }
    }
  }, {
    signal: running,
    // A worker writing a partition that another worker is writing waits for its lock, so the
    // workers take batches of different partitions while there are any (plan order otherwise).
    keyOf: (batch) =>
      `${batch.map((task) => task.symbol).join(",")}\0${
        partitionPeriod(job.timeframe, batch[0].start)
      }`,
  });

  const finalTasks = store.listTasks(jobId);
  const { status, error } = _jobOutcome(finalTasks, symbols, diskFailure, signal);
  const done = finalTasks.filter((t) => t.status === "done").length;
  let finished: JobRecord;
  try {
    finished = store.finishJob(jobId, status, error);
  } catch (finishError) {
    if (!diskFailure) throw finishError;
    throw _stoppedError(jobId, done, finalTasks.length, diskFailure, false);
  }
  metrics?.jobs.inc({ outcome: status });
  if (diskFailure) throw _stoppedError(jobId, done, finalTasks.length, diskFailure, true);
  const list = [...symbols.values()];
  return {
    job: finished,
    status,
    resumed,
    tasksTotal: finalTasks.length,
    tasksAlreadyDone: allTasks.length - todo.length,
    symbols: list,
    barsFetched: list.reduce((n, s) => n + s.barsFetched, 0),
    barsWritten: list.reduce((n, s) => n + s.barsWritten, 0),
    barsReplaced: list.reduce((n, s) => n + s.barsReplaced, 0),
    elapsedMs: now() - started,
  };
}

/**
 * The job an ingest runs: the one named by `resumeJobId`, a resumable job of the same request, or
 * a new one planned now (claimed for this process); or the summary to return at once when there
 * is nothing to run (the job already succeeded, or every day is stored).
 */
async function _openJob(
  store: IngestStore,
  request: IngestRequest,
  elapsed: () => number,
  nowMs: number,
): Promise<{ job: JobRecord; resumed: boolean } | { summary: IngestSummary }> {
  store.reapDeadJobs();
  const spec = request.resumeJobId ? undefined : jobSpecOf(request);
  const requestKey = spec ? await requestKeyOf(spec) : "";
  let job = request.resumeJobId
    ? store.getJob(request.resumeJobId)
    : request.force
    ? undefined
    : store.findResumableJob(requestKey);
  if (request.resumeJobId && !job) {
    throw new UsageError(`Cannot resume job "${request.resumeJobId}": no such job`);
  }
  const resumed = job !== undefined;
  if (job && (job.status === "succeeded")) {
    return {
      summary: emptySummary(job, "succeeded", resumed, store.listTasks(job.id), elapsed()),
    };
  }
  _refuseOpenSessions(job ?? spec!, nowMs, job?.id);
  if (!job) {
    const plan = planTasks(store, spec!, request.force, { windows: request.windows });
    if (plan.tasks.length === 0) {
      return {
        summary: {
          ...emptySummary(undefined, "up-to-date", false, [], elapsed()),
          symbols: plan.symbols,
        },
      };
    }
    job = store.createJob(spec!, requestKey, plan.tasks);
  }
  return { job: store.claimJob(job.id), resumed };
}

/**
 * Refuse a job whose range ends in a session that has not closed at `nowMs`: its bars are not
 * final yet, and a day without bars would be recorded as known-empty.
 */
function _refuseOpenSessions(spec: JobSpec, nowMs: number, jobId?: string): void {
  const last = tradingDays(spec.start, spec.end).at(-1);
  const extendedHours = includesExtendedHours(spec.timeframe);
  if (last === undefined || isSessionClosed(last, nowMs, { extendedHours })) return;
  const what = jobId === undefined ? `ingest ${spec.start}..${spec.end}` : `resume job "${jobId}"`;
  throw new UsageError(
    `Cannot ${what}: the ${spec.timeframe} session of ${last} has not closed at ${
      new Date(nowMs).toISOString()
    }`,
  );
}

/** Per-symbol summaries of a job, with the days it skips and what its done tasks stored. */
function _symbolSummaries(
  job: JobRecord,
  allTasks: readonly TaskRecord[],
  windows: ReadonlyMap<string, ListingWindow> | undefined,
): Map<string, SymbolSummary> {
  const symbols = new Map<string, SymbolSummary>();
  const days = tradingDays(job.start, job.end);
  for (const symbol of job.symbols) {
    const summary = newSymbolSummary(symbol);
    const window = windows?.get(symbol);
    summary.daysUnlisted = days.filter((day) => !inListingWindow(day, window)).length;
    summary.daysSkipped = days.length - summary.daysUnlisted;
    symbols.set(symbol, summary);
  }
  for (const task of allTasks) {
    const summary = symbols.get(task.symbol)!;
    summary.daysSkipped -= task.days;
    if (task.status !== "done") continue;
    summary.barsFetched += task.barsFetched;
    summary.barsWritten += task.barsWritten;
    summary.barsReplaced += task.barsReplaced;
    summary.daysFetched += task.days;
  }
  // A window that changed since the job was planned must not make the counts negative.
  for (const summary of symbols.values()) {
    if (summary.daysSkipped < 0) {
      summary.daysUnlisted = Math.max(0, summary.daysUnlisted + summary.daysSkipped);
      summary.daysSkipped = 0;
    }
  }
  return symbols;
}

/**
 * How a run of a job ended, from its tasks: sets each symbol's status and returns the job's
 * status and error (a full disk fails it; an abort cancels it; failed tasks make it partial).
 */
function _jobOutcome(
  finalTasks: readonly TaskRecord[],
  symbols: Map<string, SymbolSummary>,
  diskFailure: DiskFailure | undefined,
  signal: AbortSignal | undefined,
): { status: JobStatus; error?: string } {
  const doneBySymbol = new Map<string, number>();
  for (const task of finalTasks) {
    if (task.status === "pending" || task.status === "running") {
      symbols.get(task.symbol)!.tasksPending++;
    }
    if (task.status === "done") {
      doneBySymbol.set(task.symbol, (doneBySymbol.get(task.symbol) ?? 0) + 1);
    }
  }
  for (const summary of symbols.values()) {
    summary.status = summary.tasksPending > 0
      ? "pending"
      : summary.tasksFailed === 0
      ? "ok"
      : (doneBySymbol.get(summary.symbol) ?? 0) > 0
      ? "partial"
      : "failed";
  }
  const done = finalTasks.filter((t) => t.status === "done").length;
  const failed = finalTasks.filter((t) => t.status === "failed").length;
  if (diskFailure) return { status: "failed", error: diskFailure.storage.message };
  if (signal?.aborted) return { status: "cancelled", error: "interrupted by the user" };
  if (failed === 0) return { status: "succeeded" };
  if (done > 0) {
    return { status: "partial", error: `${failed} of ${finalTasks.length} tasks failed` };
  }
  return { status: "failed", error: `all ${failed} tasks failed` };
}

/** The first task failure that said the disk is full or read-only, and what it said. */
interface DiskFailure {
  error: unknown;
  storage: StorageError;
}

/** What {@link ingest} throws after a full or read-only disk stopped a job. */
function _stoppedError(
  jobId: string,
  done: number,
  total: number,
  failure: DiskFailure,
  recorded: boolean,
): Error {
  const fix = {
    ENOSPC: "free some space",
    EROFS: "make it writable",
    EACCES: "fix its permissions",
  }[failure.storage.code];
  return new Error(
    `Job ${jobId} stopped after ${done} of ${total} task(s): ${failure.storage.message}; ${fix}, then resume it with --resume ${jobId}${
      recorded ? "" : " (it could not be marked failed: the next marketpipe command does that)"
    }`,
    // The task's own error, unless it is the StorageError already quoted: then what it wraps.
    { cause: failure.error === failure.storage ? failure.storage.cause : failure.error },
  );
}

/** Most bars one symbol can have in one trading day per timeframe (04:00-20:00 ET). */
export const MAX_BARS_PER_DAY: Readonly<Record<Timeframe, number>> = {
  "1m": 960,
  "5m": 192,
  "15m": 64,
  "30m": 32,
  "1h": 17,
  "4h": 5,
  "1d": 1,
};

/** Default bound on the bars one batch (one multi-symbol request) may bring into memory. */
export const DEFAULT_BATCH_BARS = 200_000;

/**
 * Bound on the bars one task is expected to bring (about a month of 1m bars, a year of 15m): a
 * task is the unit of memory per worker, of progress and of what a killed run fetches again.
 * Measured with `deno task bench:lake --symbols 100`: whole-year 1m tasks made a 100-symbol ingest
 * peak at 2.6 GiB with 8 workers (month-sized ones: 573 MiB) and finish later, the last tasks
 * running alone.
 */
export const DEFAULT_TASK_BARS = 25_000;

/**
 * Group tasks with the same dates into batches of up to `size` symbols whose expected bars stay
 * within `maxBars` (at least one task per batch), keeping plan order. Fewer, fuller requests for
 * short timeframes; bounded memory for long ones.
 */
export function batchTasks(
  tasks: readonly TaskRecord[],
  size: number,
  options: { timeframe?: Timeframe; maxBars?: number } = {},
): TaskRecord[][] {
  const perDay = MAX_BARS_PER_DAY[options.timeframe ?? "1m"];
  const maxBars = options.maxBars ?? Infinity;
  const open = new Map<string, { tasks: TaskRecord[]; bars: number }>();
  const batches: TaskRecord[][] = [];
  for (const task of tasks) {
    const key = `${task.start}|${task.end}`;
    const expected = task.days * perDay;
    let batch = open.get(key);
    if (
      !batch || batch.tasks.length >= size ||
      (batch.bars + expected > maxBars && batch.tasks.length > 0)
    ) {
      batch = { tasks: [], bars: 0 };
      open.set(key, batch);
      batches.push(batch.tasks);
    }
    batch.tasks.push(task);
    batch.bars += expected;
  }
  return batches;
}

async function fetchWithRetry(
  provider: Provider,
  job: JobRecord,
  batch: TaskRecord[],
  request: IngestRequest,
  signal: AbortSignal | undefined,
): Promise<Bar[]> {
  const fetchRequest: FetchRequest = {
    symbols: batch.map((task) => task.symbol),
    timeframe: job.timeframe,
    start: batch[0].start,
    end: batch[0].end,
    feed: job.feed,
    adjustment: job.adjustment,
    pageSize: request.batchSize,
  };
  return await withRetry(
    () => provider.fetchBars(fetchRequest, { signal }),
    {
      attempts: request.attempts ?? 3,
      signal,
      isRetriable: (error) => error instanceof ProviderError && error.retriable,
    },
  );
}

async function storeTask(
  deps: IngestDeps,
  job: JobRecord,
  task: TaskRecord,
  fetched: Bar[],
): Promise<TaskResult> {
  const { store, validator } = deps;
  const counted = { ofSymbol: 0 };
  let bars = _clean(fetched, task.symbol, job.timeframe, task.start, task.end, counted);
  const dayCounts: Record<string, number> = {};
  for (const day of tradingDays(task.start, task.end)) dayCounts[day] = 0;
  // Counted by runs of one date (bars are sorted by ts, so a date is one run).
  for (let i = 0; i < bars.length;) {
    const date = bars[i].tradingDate;
    let end = i + 1;
    while (end < bars.length && bars[end].tradingDate === date) end++;
    dayCounts[date] = (dayCounts[date] ?? 0) + end - i;
    i = end;
  }
  let quarantined = 0;
  let findings: Record<string, number> = {};
  if (validator && bars.length > 0) {
    const outcome = validator(bars);
    findings = outcome.counts;
    if (outcome.rejected.length > 0) {
      if (!store.writeQuarantine) {
        throw new Error(
          `Cannot quarantine ${outcome.rejected.length} bar(s): the store has no quarantine`,
        );
      }
      await store.writeQuarantine(outcome.rejected, { jobId: job.id });
      quarantined = outcome.rejected.length;
    }
    bars = outcome.keep;
  }
  const written = bars.length === 0
    ? { written: 0, replaced: 0, partitions: 0 }
    : await store.writeBars(bars, { jobId: job.id });
  return {
    barsFetched: counted.ofSymbol,
    barsWritten: written.written,
    barsReplaced: written.replaced,
    quarantined,
    findings,
    dayCounts,
  };
}

/**
 * Keep only bars of `symbol` and `timeframe` inside [start, end] (by trading date), with a
 * consistent trading date, sorted by ts, collapsing duplicate timestamps (the last one wins).
 */
export function cleanBars(
  bars: readonly Bar[],
  symbol: string,
  timeframe: Timeframe,
  start: string,
  end: string,
): Bar[] {
  return _clean(bars, symbol, timeframe, start, end, { ofSymbol: 0 });
}

/** {@link cleanBars}, also counting the input's bars of `symbol` (what the task fetched). */
function _clean(
  bars: readonly Bar[],
  symbol: string,
  timeframe: Timeframe,
  start: string,
  end: string,
  counted: { ofSymbol: number },
): Bar[] {
  const kept: Bar[] = [];
  let ordered = true; // strictly increasing ts: the usual case, kept without a Map
  let previous = -Infinity;
  let lastHour = NaN;
  let lastHourDate = "";
  for (const bar of bars) {
    if (bar.symbol !== symbol) continue;
    counted.ofSymbol++;
    if (bar.timeframe !== timeframe) continue;
    if (bar.tradingDate < start || bar.tradingDate > end) continue;
    if (!Number.isFinite(bar.ts)) continue;
    if (timeframe !== "1d") {
      const hour = Math.floor(bar.ts / 3_600_000);
      if (hour !== lastHour) {
        lastHour = hour;
        lastHourDate = exchangeDateCached(bar.ts);
      }
      if (lastHourDate !== bar.tradingDate) continue;
    }
    if (bar.ts <= previous) ordered = false;
    previous = bar.ts;
    kept.push(bar);
  }
  if (ordered) return kept;
  const byTs = new Map<number, Bar>();
  for (const bar of kept) byTs.set(bar.ts, bar);
  return [...byTs.values()].sort((a, b) => a.ts - b.ts);
}

const _dateCache = new Map<number, string>();
function exchangeDateCached(ts: number): string {
  // Bars of one day share the hour bucket, so cache per hour: across calls too, since each
  // chunk of a fetch is cleaned on its own (Intl date formatting is the costly part).
  const hour = Math.floor(ts / 3_600_000);
  let date = _dateCache.get(hour);
  if (date === undefined) {
    date = exchangeDate(hour * 3_600_000);
    if (_dateCache.size > 100_000) _dateCache.clear();
    _dateCache.set(hour, date);
  }
  return date;
}

/**
 * The storage partition period of a trading date, the same for every timeframe: its year
 * (`bars/timeframe=<tf>/symbol=<S>/year=<YYYY>`).
 */
export function partitionPeriod(_timeframe: Timeframe, date: string): string {
  return date.slice(0, 4);
}

/** Options of {@link planTasks}. */
export interface PlanTasksOptions {
  /** Expected bars one task may bring; default {@link DEFAULT_TASK_BARS}. */
  maxBars?: number;
  /** Per-symbol listing windows: days outside are not planned (counted as `daysUnlisted`). */
  windows?: ReadonlyMap<string, ListingWindow>;
}

/**
 * Plan the tasks of a new job, skipping days already stored from the same source unless forced,
 * and days outside a symbol's listing window. A task is a run of trading days of one symbol
 * within one partition (a year), cut so that its expected bars stay within `maxBars`
 * ({@link DEFAULT_TASK_BARS}: 26 days of 1m, 130 of 5m, a year of 15m and longer). Each task
 * writes one file.
 */
export function planTasks(
  store: Pick<IngestStore, "coveredDays">,
  spec: JobSpec,
  force: boolean,
  options: PlanTasksOptions = {},
): { tasks: NewTask[]; symbols: SymbolSummary[] } {
  const maxBars = options.maxBars ?? DEFAULT_TASK_BARS;
  const days = tradingDays(spec.start, spec.end);
  const maxDays = Math.max(1, Math.floor(maxBars / MAX_BARS_PER_DAY[spec.timeframe]));
  const covered = force
    ? new Map<string, Set<string>>()
    : store.coveredDays(sourceKeyOf(spec), spec.symbols, spec.start, spec.end);
  const tasks: NewTask[] = [];
  const symbols: SymbolSummary[] = [];
  for (const symbol of spec.symbols) {
    const done = covered.get(symbol) ?? new Set<string>();
    const window = options.windows?.get(symbol);
    const summary = newSymbolSummary(symbol);
    let run: string[] = [];
    const flush = () => {
      if (run.length > 0) tasks.push({ symbol, start: run[0], end: run.at(-1)!, days: run.length });
      run = [];
    };
    for (const day of days) {
      if (!inListingWindow(day, window)) {
        summary.daysUnlisted++;
        flush();
        continue;
      }
      if (done.has(day)) {
        summary.daysSkipped++;
        flush();
        continue;
      }
      if (
        run.length >= maxDays || (run.length > 0 &&
          partitionPeriod(spec.timeframe, run[0]) !== partitionPeriod(spec.timeframe, day))
      ) {
        flush();
      }
      run.push(day);
    }
    flush();
    symbols.push(summary);
  }
  return { tasks, symbols };
}

/** The source a job's bars come from. */
export function sourceKeyOf(spec: JobSpec): SourceKey {
  const { provider, feed, adjustment, timeframe, params } = spec;
  return { provider, feed, adjustment, timeframe, params };
}

/** A stable key for "the same command": provider, source options, symbols and dates. */
export async function requestKeyOf(spec: JobSpec): Promise<string> {
  const canonical = JSON.stringify([
    spec.provider,
    spec.feed,
    spec.adjustment,
    spec.timeframe,
    [...spec.symbols].sort(),
    spec.start,
    spec.end,
    Object.entries(spec.params).sort(([a], [b]) => a.localeCompare(b)),
  ]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function jobSpecOf(request: IngestRequest): JobSpec {
  const { provider, feed, adjustment, timeframe, symbols, start, end, params } = request;
  return { provider, feed, adjustment, timeframe, symbols, start, end, params };
}

function newSymbolSummary(symbol: string): SymbolSummary {
  return {
    symbol,
    barsFetched: 0,
    barsWritten: 0,
    barsReplaced: 0,
    daysSkipped: 0,
    daysUnlisted: 0,
    daysFetched: 0,
    tasksFailed: 0,
    tasksPending: 0,
    status: "ok",
    barsQuarantined: 0,
    findings: {},
    errors: [],
    corruptFiles: [],
  };
}

function emptySummary(
  job: JobRecord | undefined,
  status: IngestSummary["status"],
  resumed: boolean,
  tasks: TaskRecord[],
  elapsedMs: number,
): IngestSummary {
  return {
    job,
    status,
    resumed,
    tasksTotal: tasks.length,
    tasksAlreadyDone: tasks.filter((t) => t.status === "done").length,
    symbols: [],
    barsFetched: 0,
    barsWritten: 0,
    barsReplaced: 0,
    elapsedMs,
  };
}
