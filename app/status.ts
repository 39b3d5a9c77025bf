/**
 * What `marketpipe status`, the overview and the scheduler's freshness check show: each stored
 * series' freshness against the NYSE calendar, and each schedule's last run.
 *
 * @module
 */
import { type FreshnessOptions, judgeFreshness, type SeriesFreshness } from "../core/freshness.ts";
import type { Schedule } from "../core/schedule.ts";
import { type MetaStore, sourceLabel } from "../storage/mod.ts";
import {
  createScheduleStore,
  hasScheduleTables,
  type LeaseHolder,
  type ScheduleRun,
} from "../storage/schedule_store.ts";

/** The freshness of every stored series (one per symbol and timeframe) at `now`. */
export function readSeriesFreshness(
  meta: MetaStore,
  now: number,
  options: FreshnessOptions = {},
): SeriesFreshness[] {
  const series = meta.storedSeries().map((s) => ({
    symbol: s.symbol,
    timeframe: s.source.timeframe,
    last: s.last,
    source: sourceLabel(s.source),
  }));
  return judgeFreshness(series, now, options);
}

/** One configured schedule in a status report. */
export interface ScheduleStatus {
  name: string;
  /** Its newest recorded run (by planned time), if any. */
  lastRun?: ScheduleRun;
  /** The newest run failed or was partial. */
  failing: boolean;
}

/** What `marketpipe status` prints. */
export interface StatusReport {
  at: number;
  series: SeriesFreshness[];
  stale: SeriesFreshness[];
  schedules: ScheduleStatus[];
  /** The server that runs the schedules, if one holds the lease. */
  scheduler?: LeaseHolder;
}

/**
 * Freshness of all series and the last run of each schedule in `schedules` (every recorded
 * schedule when none are configured). Reads only.
 *
 * @example
 * ```ts
 * const report = readStatus(meta, { now: Date.now(), schedules: config.schedules });
 * if (report.stale.length > 0) console.log(`${report.stale.length} series are stale`);
 * ```
 */
export function readStatus(
  meta: MetaStore,
  options: { now: number; schedules?: readonly Schedule[]; graceMs?: number },
): StatusReport {
  const series = readSeriesFreshness(meta, options.now, { graceMs: options.graceMs });
  const report: StatusReport = {
    at: options.now,
    series,
    stale: series.filter((s) => s.stale),
    schedules: [],
  };
  if (!hasScheduleTables(meta)) {
    report.schedules = (options.schedules ?? []).map((s) => ({ name: s.name, failing: false }));
    return report;
  }
  const store = createScheduleStore(meta);
  const latest = store.latestRuns();
  const names = options.schedules?.map((s) => s.name) ?? [...latest.keys()];
  report.schedules = names.map((name) => {
    const lastRun = latest.get(name);
    return {
      name,
      ...(lastRun ? { lastRun } : {}),
      failing: lastRun?.status === "failed" || lastRun?.status === "partial",
    };
  });
  const holder = store.leaseHolder();
  if (holder?.alive) report.scheduler = holder;
  return report;
}

/** A schedule run as JSON (`schedule history --json`, `GET /api/schedules/runs`): times as ISO 8601 UTC. */
export function scheduleRunJson(run: ScheduleRun): Record<string, unknown> {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  return {
    id: run.id,
    schedule: run.schedule,
    command: run.command,
    trigger: run.trigger,
    status: run.status,
    attempt: run.attempt,
    planned_at: iso(run.plannedAt),
    started_at: iso(run.startedAt),
    finished_at: iso(run.finishedAt),
    job_ids: run.jobIds,
    pid: run.pid,
    error: run.error,
  };
}

/** A status report as JSON (`status --json`, `GET /api/status`). */
export function statusJson(report: StatusReport): Record<string, unknown> {
  return {
    at: new Date(report.at).toISOString(),
    series: report.series.map((s) => ({
      symbol: s.symbol,
      timeframe: s.timeframe,
      source: s.source ?? null,
      last: s.last,
      expected: s.expected ?? null,
      stale: s.stale,
      missed_sessions: s.missedSessions,
      stale_since: s.staleSince === null ? null : new Date(s.staleSince).toISOString(),
    })),
    stale: report.stale.length,
    schedules: report.schedules.map((s) => ({
      name: s.name,
      failing: s.failing,
      last_run: s.lastRun ? scheduleRunJson(s.lastRun) : null,
    })),
    scheduler: report.scheduler
      ? { pid: report.scheduler.pid, hostname: report.scheduler.hostname }
      : null,
  };
}
