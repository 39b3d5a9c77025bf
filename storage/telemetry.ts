import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import {
  createMetrics,
  DeltaTracker,
  familiesOf,
  type FamilyInfo,
  type Metrics,
  readCumulative,
  renderExposition,
  type SeriesValue,
  watchEventLoopLag,
} from "../core/metrics.ts";
import { META_FILE, openMigrated } from "./meta.ts";
import {
  addMetricDeltas,
  countRunningJobs,
  pruneMetricSamples,
  readFreshness,
  readMetricTotals,
} from "./metrics_store.ts";

/** File name of the metric history database in a PROMETHEUS_MULTIPROC_DIR. */
export const METRICS_HISTORY_FILE = "marketpipe-metrics.db";
/** Options of {@link openTelemetry}. */
export interface TelemetryOptions {
  /** Directory holding the history database instead of the data directory (PROMETHEUS_MULTIPROC_DIR). */
  historyDir?: string;
  /** How often this process persists its metric increases. Default 250 ms. */
  flushEveryMs?: number;
  /** History samples older than this are deleted. Default 30 days. */
  retentionMs?: number;
  /** At most this many data-freshness series are exposed. Default 1000. */
  freshnessCap?: number;
  now?: () => number;
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
  const metrics = createMetrics();
  const tracker = new DeltaTracker();
  const retention = options.retentionMs ?? 30 * _DAY_MS;
  let lag = 0;
  const stopLag = watchEventLoopLag((seconds) => lag = seconds);
  let processRegistry: Registry | undefined;
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
      const totals: SeriesValue[] = readMetricTotals(historyDb).map((s) => ({
        name: s.name,
        family: s.family,
        kind: s.kind,
        labels: s.labels,
        value: s.value,
      }));
      const known = new Set(families.map((f) => f.name));
      const gauges: FamilyInfo[] = [
        { name: "mp_jobs_running", help: "Ingest jobs running now in any process", type: "gauge" },
        {
          name: "mp_data_last_bar_timestamp_seconds",
          help: "Start of the newest stored bar per symbol and timeframe (Unix seconds)",
          type: "gauge",
        },
        {
          name: "marketpipe_event_loop_lag_seconds",
          help: "Event-loop lag of the serving process, measured by timer drift",
          type: "gauge",
        },
      ];
      const gaugeValues: SeriesValue[] = [
        {
          name: "mp_jobs_running",
          family: "mp_jobs_running",
          kind: "counter",
          labels: {},
          value: countRunningJobs(db, now()),
        },
        ...readFreshness(db, options.freshnessCap ?? 1000).map((f) => ({
          name: "mp_data_last_bar_timestamp_seconds",
          family: "mp_data_last_bar_timestamp_seconds",
          kind: "counter" as const,
          labels: { symbol: f.symbol, timeframe: f.timeframe },
          value: f.lastTs / 1000,
        })),
        {
          name: "marketpipe_event_loop_lag_seconds",
          family: "marketpipe_event_loop_lag_seconds",
          kind: "counter",
          labels: {},
          value: lag,
        },
      ];
      const allFamilies = [...families, ...gauges];
      const samples = [...totals.filter((t) => known.has(t.family)), ...gaugeValues];
      if (scrapeOptions.legacy) {
        const legacy = legacySeries(totals);
        allFamilies.push(...legacy.families);
        samples.push(...legacy.samples);
      }
      let text = renderExposition(allFamilies, samples);
      if (scrapeOptions.process !== false) {
        if (!processRegistry) {
          processRegistry = new Registry();
          collectDefaultMetrics({ register: processRegistry });
        }
        text += withoutMislabelledGauges(await processRegistry.metrics());
        if (!text.endsWith("\n")) text += "\n";
      }
      return text;
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
  const families: FamilyInfo[] = [
    {
      name: "mp_requests_legacy_total",
      help: "Deprecated: provider requests by source",
      type: "counter",
    },
    {
      name: "mp_errors_legacy_total",
      help: "Deprecated: provider errors by source and code",
      type: "counter",
    },
    {
      name: "mp_request_legacy_latency_seconds",
      help: "Deprecated: provider request latency by source",
      type: "histogram",
    },
  ];
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

/**
 * Drop gauge families whose name ends in `_total` (prom-client's `nodejs_active_*_total`), which
 * `promtool check metrics` rejects: only counters may carry that suffix.
 */
export function withoutMislabelledGauges(text: string): string {
  const blocks = text.split(/(?=^# HELP )/m);
  return blocks.filter((block) => {
    const type = /^# TYPE (\S+) (\S+)/m.exec(block);
    return !(type && type[2] === "gauge" && type[1].endsWith("_total"));
  }).join("");
}
