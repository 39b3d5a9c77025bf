/**
 * The jobs of `marketpipe update` and `marketpipe backfill`: find the stored series (source,
 * timeframe, symbol) from the coverage table and plan the ingest requests that bring them up to
 * the last completed session, or fill exactly the days the gap report lists. Plans only: the
 * requests run as ordinary ingest jobs through `planJob` and `runJob`.
 *
 * @module
 */
import { nextTradingDay, previousTradingDay, tradingDays } from "../core/calendar.ts";
import { type Clock, includesExtendedHours, lastCompletedSession } from "../core/clock.ts";
import { UsageError } from "../core/errors.ts";
import { type IngestRequest, inListingWindow, type ListingWindow } from "../core/ingest.ts";
import type { JobRecord, SourceKey } from "../core/jobs.ts";
import type { Timeframe } from "../core/types.ts";
import type { ValidationSettings } from "../core/validate.ts";
import { tradingDayRanges } from "../core/validate_gaps.ts";
import type { PreparedIngest } from "../providers/ingest_request.ts";
import { providerFactory } from "../providers/mod.ts";
import {
  type BarSeries,
  findStoredGaps,
  type MetaStore,
  migrationStatus,
  ReferenceStore,
  sourceLabel,
  type StoredGaps,
} from "../storage/mod.ts";

/** How every planned job runs: what `ingest` takes as flags besides the source and the dates. */
export interface PlanSettings {
  /** Concurrent tasks per job. */
  workers: number;
  /** Roll the 1m bars of each job up to 5m ... 1d afterwards. */
  aggregate?: boolean;
  validation?: ValidationSettings;
}

/** Options of {@link planUpdate}. */
export interface PlanUpdateOptions extends PlanSettings {
  clock: Clock;
  /** Only these symbols; default all stored. */
  symbols?: readonly string[];
  /** Only this timeframe; default all stored. */
  timeframe?: Timeframe;
}

/** Planned jobs, and the series that need none. */
export interface SeriesPlan {
  /** One ingest per source and first date, in source order. */
  jobs: PreparedIngest[];
  /** Series selected (an update: all of them; a backfill: those with days to fetch). */
  series: BarSeries[];
  /** Series already at the last completed session (update) or without gaps (backfill). */
  upToDate: BarSeries[];
}

/**
 * Plan `marketpipe update`: every stored series from the session after its last stored one to
 * the last completed session (regular close for 1d, 20:00 ET for intraday), one job per source
 * and first date. A job an earlier update left unfinished (killed, interrupted) with the same
 * source and end is resumed instead, for the series it still has tasks of: what it left is what
 * they miss, even when its workers stopped in the middle of several symbols. Reads only.
 *
 * @example
 * ```ts
 * const plan = planUpdate(meta, { clock: systemClock, workers: 4 });
 * for (const job of plan.jobs) await runJob(planJob(deps, job));
 * ```
 */
export function planUpdate(meta: MetaStore, options: PlanUpdateOptions): SeriesPlan {
  const series = meta.storedSeries({ timeframe: options.timeframe, symbols: options.symbols });
  _checkSelection(series, options);
  const now = options.clock();
  const behind = new Map<
    string,
    { source: SourceKey; start: string; end: string; symbols: string[]; resume?: string }
  >();
  const unfinished = _unfinishedUpdates(meta);
  const upToDate: BarSeries[] = [];
  const windows = listingWindowsOf(meta, [...new Set(series.map((s) => s.symbol))]);
  for (const s of series) {
    const last = lastCompletedSession(now, {
      extendedHours: includesExtendedHours(s.source.timeframe),
    });
    // A delisted symbol is up to date at its delisting; one listed later starts at its listing.
    const window = windows.get(s.symbol);
    const end = last !== undefined && window?.end != null && window.end < last ? window.end : last;
    let start = nextTradingDay(s.last);
    if (window?.start != null && window.start > start) start = window.start;
    if (end === undefined || start > end) {
      upToDate.push(s);
      continue;
    }
    // The job started no later than this series' next day, so its tasks left cover the rest.
    const label = sourceLabel(s.source);
    const resume = unfinished.find(({ job, left }) =>
      left.has(s.symbol) && job.end === end && job.start <= start &&
      job.timeframe === s.source.timeframe && sourceLabel(job) === label
    )?.job;
    const key = resume ? `resume|${resume.id}` : `${_sourceKey(s.source)}|${start}`;
    const group = behind.get(key);
    if (group) group.symbols.push(s.symbol);
    else {
      behind.set(key, {
        source: s.source,
        start: resume?.start ?? start,
        end,
        symbols: [s.symbol],
        resume: resume?.id,
      });
    }
  }
  const jobs = [...behind.values()].map((group) => {
    const prepared = _prepare(group.source, group.symbols, group.start, group.end, options, false);
    if (group.resume !== undefined) prepared.request.resumeJobId = group.resume;
    return prepared;
  });
  return { jobs, series, upToDate };
}

/** Options of {@link planBackfill}. */
export interface PlanBackfillOptions extends PlanSettings {
  clock: Clock;
  timeframe: Timeframe;
  symbols?: readonly string[];
  /** Judge these dates; default each series' own stored range. */
  range?: { start: string; end: string };
  /** Also fetch each series' trading days from this date up to its first stored session. */
  before?: string;
  /** Smallest share of a regular session that is not a partial day, 0-1; default 0.9. */
  minCoverage?: number;
  signal?: AbortSignal;
}

/** A backfill plan: the jobs, and the gap report they were planned from. */
export interface BackfillPlan extends SeriesPlan {
  gaps: StoredGaps[];
}

/**
 * Plan `marketpipe backfill` (and `gaps --fill`): exactly the missing and partial days the gap
 * report lists, plus with `before` the days from it up to each series' first stored session,
 * each fetched again from the source that stored the series (its newest, when several did).
 * One job per source and run of consecutive trading days; the jobs fetch even days whose
 * coverage is recorded (their bars are gone or partial). Reads only.
 */
export async function planBackfill(
  dataDir: string,
  meta: MetaStore,
  options: PlanBackfillOptions,
): Promise<BackfillPlan> {
  const until = lastCompletedSession(options.clock(), {
    extendedHours: includesExtendedHours(options.timeframe),
  });
  if (options.before !== undefined && (until === undefined || options.before > until)) {
    throw new UsageError(
      `Invalid --before ${options.before}: after the last closed session ${until ?? "(none)"}`,
    );
  }
  const series = meta.storedSeries({ timeframe: options.timeframe, symbols: options.symbols });
  _checkSelection(series, options);
  const gaps = until === undefined ? [] : await findStoredGaps(dataDir, {
    timeframe: options.timeframe,
    symbols: options.symbols ?? [...new Set(series.map((s) => s.symbol))],
    range: options.range,
    until,
    minCoverage: options.minCoverage,
    signal: options.signal,
  });
  const windows = options.before === undefined
    ? new Map<string, ListingWindow>()
    : listingWindowsOf(meta, gaps.map((g) => g.symbol));
  // Days per source and symbol; the runs of each symbol become jobs.
  const wanted = new Map<string, { source: SourceKey; days: Map<string, string[]> }>();
  const selected: BarSeries[] = [];
  const upToDate: BarSeries[] = [];
  for (const g of gaps) {
    const days = [...g.missing, ...g.lowCoverage.map((d) => d.date)];
    if (options.before !== undefined && g.start !== undefined && options.before < g.start) {
      // Not before the symbol's listing (the gap report already judged within it).
      days.push(
        ...tradingDays(options.before, previousTradingDay(g.start)).filter((day) =>
          inListingWindow(day, windows.get(g.symbol))
        ),
      );
    }
    const own = _newestSeries(series.filter((s) => s.symbol === g.symbol));
    if (own === undefined) {
      if (days.length === 0) continue;
      throw new UsageError(
        `Cannot backfill ${g.symbol} ${options.timeframe}: no ingest recorded where its bars came from; use marketpipe ingest`,
      );
    }
    if (days.length === 0) {
      upToDate.push(own);
      continue;
    }
    selected.push(own);
    const key = _sourceKey(own.source);
    let entry = wanted.get(key);
    if (!entry) wanted.set(key, entry = { source: own.source, days: new Map() });
    entry.days.set(g.symbol, [...new Set(days)].sort());
  }
  const jobs: PreparedIngest[] = [];
  for (const { source, days } of wanted.values()) {
    const runs = new Map<string, string[]>();
    for (const [symbol, dates] of days) {
      for (const [start, end] of tradingDayRanges(dates)) {
        const key = `${start}|${end}`;
        runs.set(key, [...runs.get(key) ?? [], symbol]);
      }
    }
    for (const [key, symbols] of [...runs].sort(([a], [b]) => a.localeCompare(b))) {
      const [start, end] = key.split("|");
      jobs.push(_prepare(source, symbols, start, end, options, true));
    }
  }
  return { jobs, series: selected, upToDate, gaps };
}

/**
 * The listing windows the symbol master holds for `symbols`: none when the metadata predates
 * the symbol master (a read-only database not migrated yet).
 */
export function listingWindowsOf(
  meta: MetaStore,
  symbols: readonly string[],
): Map<string, ListingWindow> {
  const applied = migrationStatus(meta.db).find((m) => m.version === _REFERENCE_MIGRATION);
  if (applied === undefined || applied.appliedAt === null) return new Map();
  return new ReferenceStore(meta.db).listingWindows(symbols);
}

/** The metadata migration that creates the symbol master. */
const _REFERENCE_MIGRATION = 8;

/** Refuse a selection that matches no stored series, naming what was asked. */
function _checkSelection(
  series: readonly BarSeries[],
  options: { symbols?: readonly string[]; timeframe?: Timeframe },
): void {
  const missing = options.symbols?.filter((symbol) => !series.some((s) => s.symbol === symbol));
  const what = options.timeframe ? `${options.timeframe} ` : "";
  if (missing !== undefined && missing.length > 0) {
    throw new UsageError(
      `Unknown series ${missing.join(",")}: no ${what}bars of ${
        missing.length === 1 ? "it are" : "them are"
      } stored; ingest them first with marketpipe ingest`,
    );
  }
  if (series.length === 0) {
    throw new UsageError(
      `Nothing stored to bring up to date: no ${what}series; run marketpipe ingest first`,
    );
  }
}

/** The series a symbol's days are fetched from: the one stored most recently, then longest. */
function _newestSeries(series: readonly BarSeries[]): BarSeries | undefined {
  return [...series].sort((a, b) =>
    b.last.localeCompare(a.last) || a.first.localeCompare(b.first)
  )[0];
}

function _sourceKey(source: SourceKey): string {
  return `${sourceLabel(source)}|${source.timeframe}`;
}

/** An ingest of `symbols` over [start, end] from `source`, as `ingest` would build it. */
function _prepare(
  source: SourceKey,
  symbols: string[],
  start: string,
  end: string,
  settings: PlanSettings,
  force: boolean,
): PreparedIngest {
  const factory = providerFactory(source.provider);
  if (!factory) {
    throw new UsageError(
      `Cannot fetch ${
        symbols.join(",")
      } ${source.timeframe}: their bars came from provider "${source.provider}", which this build lacks`,
    );
  }
  const request: IngestRequest = {
    provider: source.provider,
    feed: source.feed,
    adjustment: source.adjustment,
    timeframe: source.timeframe,
    params: source.params,
    symbols: [...symbols].sort(),
    start,
    end,
    workers: settings.workers,
    force,
  };
  return { request, factory, validation: settings.validation, aggregate: settings.aggregate };
}

/**
 * Unfinished jobs (failed, cancelled or partial, or running in a dead process) that are still
 * the resumable job of their request, each with the symbols of its tasks not done, newest first.
 */
function _unfinishedUpdates(meta: MetaStore): { job: JobRecord; left: Set<string> }[] {
  const found: { job: JobRecord; left: Set<string> }[] = [];
  for (const job of meta.listJobs({ limit: 50 })) {
    if (job.status === "succeeded" || meta.findResumableJob(job.requestKey)?.id !== job.id) {
      continue;
    }
    const left = new Set(
      meta.listTasks(job.id).filter((t) => t.status !== "done").map((t) => t.symbol),
    );
    if (left.size > 0) found.push({ job, left });
  }
  return found;
}
