import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { exchangeDate, tradingDays } from "../core/calendar.ts";
import { includesExtendedHours, lastCompletedSession } from "../core/clock.ts";
import { parseIntOption } from "../core/config.ts";
import {
  createMetrics,
  DeltaTracker,
  familiesOf,
  type FamilyInfo,
  initialiseKnownSeries,
  type Metrics,
  readCumulative,
  readProcessMetrics,
  renderExposition,
  type SeriesValue,
  watchEventLoopLag,
} from "../core/metrics.ts";
import type { Timeframe } from "../core/types.ts";
import { providers } from "../providers/mod.ts";
import { META_FILE, openMigrated } from "./meta.ts";
import {
  addMetricDeltas,
  countRunningJobs,
  pruneMetricSamples,
  readFreshness,
  readFreshnessSummary,
  readMetricTotals,
} from "./metrics_store.ts";

/** File name of the metric history database in a PROMETHEUS_MULTIPROC_DIR. */
export const METRICS_HISTORY_FILE = "marketpipe-metrics.db";
/** Env var capping the `mp_data_last_bar_timestamp_seconds` series (default 1,000). */
export const METRICS_MAX_SERIES_ENV = "MARKETPIPE_METRICS_MAX_SERIES";
/** Default cap of the per-symbol freshness series. */
export const DEFAULT_FRESHNESS_CAP = 1000;
/** Options of {@link openTelemetry}. */
export interface TelemetryOptions {
  /** Directory holding the history database instead of the data directory (PROMETHEUS_MULTIPROC_DIR). */
  historyDir?: string;
  /** How often this process persists its metric increases. Default 250 ms. */
  flushEveryMs?: number;
  /** History samples older than this are deleted. Default 30 days. */
  retentionMs?: number;
  /**
   * At most this many `mp_data_last_bar_timestamp_seconds` series (symbol and timeframe) are
   * exposed, the most recently updated; `mp_data_last_bar_series_dropped` counts the rest.
   * Default: {@link METRICS_MAX_SERIES_ENV} from `env`, else 1,000.
   */
  freshnessCap?: number;
  /** Environment to read {@link METRICS_MAX_SERIES_ENV} from (when `freshnessCap` is unset). */
  env?: Record<string, string | undefined>;
  /** Clock of the history samples, epoch ms. Default `Date.now`. */
  now?: () => number;
  /**
   * What `mp_data_sessions_behind` counts closed sessions up to (the `MARKETPIPE_NOW` clock).
   * Default `now`.
   */
  sessionClock?: () => number;
}

/**
 * The freshness cap of `options`: `freshnessCap`, else {@link METRICS_MAX_SERIES_ENV} from
 * `env` (a whole number from 0 to 1,000,000), else 1,000. Throws a `UsageError` for a bad value.
 */
export function freshnessCapOf(options: Pick<TelemetryOptions, "freshnessCap" | "env">): number {
  if (options.freshnessCap !== undefined) return options.freshnessCap;
  const text = options.env?.[METRICS_MAX_SERIES_ENV];
  if (text === undefined || text === "") return DEFAULT_FRESHNESS_CAP;
  return parseIntOption(text, METRICS_MAX_SERIES_ENV, 0, 1_000_000);
}

/** Options of {@link Telemetry.scrape}. */
export interface ScrapeOptions {
  /** Also emit the original tool's `mp_*_legacy_*` series. */
  legacy?: boolean;
  /** Include this process's runtime metrics (memory, CPU, event-loop lag). */
  process?: boolean;
}

/**
 * Metrics of one process, persisted so that any process can expose the totals of all. Each
 * process adds the increases of its counters and histograms to SQLite a few times a second; the
 * serving process renders the stored totals, which only grow, so counters are summed over all
 * processes and stay monotonic across restarts.
 */
export interface Telemetry {
  metrics: Metrics;
  /** Persist the increases since the last flush now. */
  flush(): Promise<void>;
  /** The Prometheus text exposition of all processes' totals plus live gauges. */
  scrape(options?: ScrapeOptions): Promise<string>;
  /** Flush and stop the timers; closes the databases this opened. */
  close(): Promise<void>;
}

const _DAY_MS = 86_400_000;

/**
 * Open telemetry for a data directory: the metadata database (created and migrated if needed)
 * and, when `historyDir` is given, a separate history database there.
 *
 * @example
 * ```ts
 * const telemetry = await openTelemetry("./data");
 * telemetry.metrics.ingestRows.inc({ provider: "fake", timeframe: "1m" }, 960);
 * console.log(await telemetry.scrape());
 * await telemetry.close();
 * ```
 */
export async function openTelemetry(
  dataDir: string,
  options: TelemetryOptions = {},
): Promise<Telemetry> {
  freshnessCapOf(options);
  await Deno.mkdir(dataDir, { recursive: true });
  const { db } = openMigrated(join(dataDir, META_FILE));
  let historyDb = db;
  if (options.historyDir) {
    try {
      await Deno.mkdir(options.historyDir, { recursive: true });
      historyDb = openMigrated(join(options.historyDir, METRICS_HISTORY_FILE)).db;
    } catch (error) {
      db.close();
      throw error;
    }
  }
  return createTelemetry(db, historyDb, options, () => {
    if (historyDb !== db) historyDb.close();
    db.close();
  });
}

/** Telemetry over already open (and migrated) databases; `onClose` runs after the last flush. */
export function createTelemetry(
  db: DatabaseSync,
  historyDb: DatabaseSync,
  options: TelemetryOptions = {},
  onClose: () => void = () => {},
): Telemetry {
  const now = options.now ?? Date.now;
  const freshnessCap = freshnessCapOf(options);
  const metrics = createMetrics();
  initialiseKnownSeries(metrics, Object.values(providers).map((p) => p.info));
  const tracker = new DeltaTracker();
  const retention = options.retentionMs ?? 30 * _DAY_MS;
  let lag = 0;
  const stopLag = watchEventLoopLag((seconds) => lag = seconds);
  let families: FamilyInfo[] | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let lastPrune = 0;
  // Increases read from the registry but not yet written (the last write failed, e.g. the
  // database stayed locked past the busy timeout): the tracker has moved on, so keep them here.
  let unwritten: SeriesValue[] = [];

  const flushNow = async () => {
    const deltas = [...unwritten, ...tracker.deltas(await readCumulative(metrics.registry))];
    const at = now();
    unwritten = deltas;
    addMetricDeltas(historyDb, deltas, at);
    unwritten = [];
    if (at - lastPrune > 3_600_000) {
      lastPrune = at;
      pruneMetricSamples(historyDb, at - retention);
    }
  };
  const flush = () => {
    flushing = flushing.catch(() => {}).then(flushNow);
    return flushing;
  };
  const timer = setInterval(() => {
    flush().catch(() => {});
  }, options.flushEveryMs ?? 250);
  Deno.unrefTimer(timer);

  return {
    metrics,
    flush,
    async scrape(scrapeOptions: ScrapeOptions = {}): Promise<string> {
      await flush();
      families ??= await familiesOf(metrics.registry);
      // The series values alone, without the stored id and update time.
      const totals: SeriesValue[] = readMetricTotals(historyDb)
        .map(({ name, family, kind, labels, value }) => ({ name, family, kind, labels, value }));
      const known = new Set(families.map((f) => f.name));
      const gauges = liveGauges(db, {
        freshnessCap,
        lag,
        now: now(),
        sessionNow: options.sessionClock?.(),
      });
      const allFamilies = [...families, ...gauges.families];
      const samples = [...totals.filter((t) => known.has(t.family)), ...gauges.samples];
      if (scrapeOptions.legacy) {
        const legacy = legacySeries(totals);
        allFamilies.push(...legacy.families);
        samples.push(...legacy.samples);
      }
      if (scrapeOptions.process !== false) {
        const own = readProcessMetrics();
        allFamilies.push(...own.families);
        samples.push(...own.samples);
      }
      return renderExposition(allFamilies, samples);
    },
    async close() {
      clearInterval(timer);
      stopLag();
      try {
        await flush();
      } finally {
        onClose();
      }
    },
  };
}

/**
 * The original tool's deprecated series, derived from the current totals: requests, errors and
 * latency with a `source` label (the provider).
 */
export function legacySeries(
  totals: readonly SeriesValue[],
): { families: FamilyInfo[]; samples: SeriesValue[] } {
  const families = ([
    ["mp_requests_legacy_total", "Deprecated: provider requests by source", "counter"],
    ["mp_errors_legacy_total", "Deprecated: provider errors by source and code", "counter"],
    [
      "mp_request_legacy_latency_seconds",
      "Deprecated: provider request latency by source",
      "histogram",
    ],
  ] as const).map(([name, help, type]): FamilyInfo => ({ name, help, type }));
  const sums = new Map<string, SeriesValue>();
  const add = (
    name: string,
    family: string,
    kind: SeriesValue["kind"],
    labels: Record<string, string>,
    v: number,
  ) => {
    const key = name + JSON.stringify(labels);
    const existing = sums.get(key);
    if (existing) existing.value += v;
    else sums.set(key, { name, family, kind, labels, value: v });
  };
  for (const t of totals) {
    const source = t.labels.provider ?? "unknown";
    if (t.name === "mp_requests_total") {
      add("mp_requests_legacy_total", "mp_requests_legacy_total", "counter", { source }, t.value);
    } else if (t.name === "mp_errors_total") {
      add("mp_errors_legacy_total", "mp_errors_legacy_total", "counter", {
        source,
        code: t.labels.code ?? "",
      }, t.value);
    } else if (t.family === "mp_request_latency_seconds") {
      const name = t.name.replace(
        "mp_request_latency_seconds",
        "mp_request_legacy_latency_seconds",
      );
      const labels: Record<string, string> = { source };
      if (t.labels.le !== undefined) labels.le = t.labels.le;
      add(name, "mp_request_legacy_latency_seconds", "histogram", labels, t.value);
    }
  }
  return { families, samples: [...sums.values()] };
}

/** Options of {@link liveGauges}. */
export interface LiveGaugeOptions {
  /** At most this many per-symbol freshness series. */
  freshnessCap: number;
  /** The serving process's event-loop lag, in seconds. */
  lag: number;
  /** Now, epoch ms: what process heartbeats are judged by. */
  now: number;
  /** What "sessions behind" counts closed sessions up to (`MARKETPIPE_NOW`). Default `now`. */
  sessionNow?: number;
}

/**
 * Gauges read at scrape time: running jobs, per-symbol freshness (capped, with the number
 * dropped), a per-timeframe freshness summary whose size does not grow with symbols (series,
 * oldest and newest last bar, sessions the stalest symbol is behind) and the event-loop lag.
 */
export function liveGauges(
  db: DatabaseSync,
  options: LiveGaugeOptions,
): { families: FamilyInfo[]; samples: SeriesValue[] } {
  const families: FamilyInfo[] = [];
  const samples: SeriesValue[] = [];
  const family = (name: string, help: string) => families.push({ name, help, type: "gauge" });
  const sample = (name: string, labels: Record<string, string>, value: number) =>
    samples.push({ name, family: name, kind: "counter", labels, value });

  family("mp_jobs_running", "Ingest jobs running now in any process");
  sample("mp_jobs_running", {}, countRunningJobs(db, options.now));

  const summary = readFreshnessSummary(db);
  const fresh = readFreshness(db, options.freshnessCap);
  family(
    "mp_data_last_bar_timestamp_seconds",
    `Start of the newest stored bar per symbol and timeframe (Unix seconds); the ${options.freshnessCap} most recently updated (${METRICS_MAX_SERIES_ENV})`,
  );
  for (const { symbol, timeframe, lastTs } of fresh) {
    sample("mp_data_last_bar_timestamp_seconds", { symbol, timeframe }, lastTs / 1000);
  }
  family(
    "mp_data_last_bar_series_dropped",
    `Symbol and timeframe series left out of mp_data_last_bar_timestamp_seconds by its cap (${METRICS_MAX_SERIES_ENV})`,
  );
  const total = summary.reduce((n, s) => n + s.series, 0);
  sample("mp_data_last_bar_series_dropped", {}, Math.max(0, total - fresh.length));
  family("mp_data_series", "Symbols with stored bars, per timeframe");
  family(
    "mp_data_oldest_last_bar_timestamp_seconds",
    "Newest bar of the stalest symbol, per timeframe (Unix seconds)",
  );
  family(
    "mp_data_newest_last_bar_timestamp_seconds",
    "Newest bar of the freshest symbol, per timeframe (Unix seconds)",
  );
  family(
    "mp_data_sessions_behind",
    "Closed trading sessions after the session of the stalest symbol's newest bar, per timeframe",
  );
  for (const s of summary) {
    const labels = { timeframe: s.timeframe };
    sample("mp_data_series", labels, s.series);
    sample("mp_data_oldest_last_bar_timestamp_seconds", labels, s.oldestLastTs / 1000);
    sample("mp_data_newest_last_bar_timestamp_seconds", labels, s.newestLastTs / 1000);
    const behind = sessionsBehind(s.oldestLastTs, s.timeframe, options.sessionNow ?? options.now);
    if (behind !== undefined) sample("mp_data_sessions_behind", labels, behind);
  }

  family(
    "marketpipe_event_loop_lag_seconds",
    "Event-loop lag of the serving process, measured by timer drift",
  );
  sample("marketpipe_event_loop_lag_seconds", {}, options.lag);
  return { families, samples };
}

/**
 * How many trading sessions closed after the session of a bar at `lastTs`, by `now` (intraday
 * timeframes count a session closed at the end of after-hours). 0 when the bar's session is the
 * last closed one or still open; undefined outside the calendar's years.
 */
export function sessionsBehind(lastTs: number, timeframe: string, now: number): number | undefined {
  const last = lastCompletedSession(now, {
    extendedHours: includesExtendedHours(timeframe as Timeframe),
  });
  if (last === undefined) return undefined;
  try {
    const date = exchangeDate(lastTs);
    return date >= last ? 0 : tradingDays(date, last).filter((day) => day > date).length;
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}
