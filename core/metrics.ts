import { Counter, Histogram, Registry } from "prom-client";

/**
 * The metric set of MarketPipe. Labels are bounded: provider, feed, status code class, error
 * code, rule, severity, operation, timeframe, job outcome. Symbols appear only in the data
 * freshness gauge, capped by configuration. Never a secret.
 */
export interface Metrics {
  registry: Registry;
  requests: Counter<"provider" | "feed" | "status">;
  errors: Counter<"provider" | "feed" | "code">;
  requestLatency: Histogram<"provider" | "feed">;
  rateLimiterWaits: Counter<"provider" | "mode">;
  ingestRows: Counter<"provider" | "timeframe">;
  validationErrors: Counter<"rule" | "severity">;
  processingTime: Histogram<"operation">;
  jobs: Counter<"outcome">;
}

/**
 * Create a fresh registry with every MarketPipe metric registered. One per process, created in
 * main.ts and passed down; tests create their own.
 *
 * @example
 * ```ts
 * const metrics = createMetrics();
 * metrics.ingestRows.inc({ provider: "fake", timeframe: "1m" }, 960);
 * console.log(await metrics.registry.metrics());
 * ```
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: "mp_requests_total",
      help: "HTTP requests to market-data providers by response status",
      labelNames: ["provider", "feed", "status"],
      registers,
    }),
    errors: new Counter({
      name: "mp_errors_total",
      help: "Provider request failures by error code (HTTP status, timeout, network, parse)",
      labelNames: ["provider", "feed", "code"],
      registers,
    }),
    requestLatency: new Histogram({
      name: "mp_request_latency_seconds",
      help: "Latency of provider HTTP requests",
      labelNames: ["provider", "feed"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rateLimiterWaits: new Counter({
      name: "mp_rate_limiter_waits_total",
      help: "Times a request waited for the rate limiter (mode: local bucket, server headers, 429)",
      labelNames: ["provider", "mode"],
      registers,
    }),
    ingestRows: new Counter({
      name: "mp_ingest_rows_total",
      help: "Bars written to storage by ingest (new or updated)",
      labelNames: ["provider", "timeframe"],
      registers,
    }),
    validationErrors: new Counter({
      name: "mp_validation_errors_total",
      help: "Validation findings by rule and severity",
      labelNames: ["rule", "severity"],
      registers,
    }),
    processingTime: new Histogram({
      name: "mp_processing_time_seconds",
      help: "Duration of pipeline operations (ingest task, validate, aggregate, query)",
      labelNames: ["operation"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    jobs: new Counter({
      name: "mp_jobs_total",
      help: "Finished jobs by outcome",
      labelNames: ["outcome"],
      registers,
    }),
  };
}

/** One cumulative value of a counter or a histogram part (`_bucket`, `_sum`, `_count`). */
export interface SeriesValue {
  /** Exposed sample name, e.g. `mp_request_latency_seconds_bucket`. */
  name: string;
  /** Metric family name, e.g. `mp_request_latency_seconds`. */
  family: string;
  kind: "counter" | "histogram";
  labels: Record<string, string>;
  value: number;
}

/** A family's exposition metadata. */
export interface FamilyInfo {
  name: string;
  help: string;
  type: "counter" | "histogram" | "gauge";
}

/** Canonical key of a sample: name plus labels sorted by name. */
export function seriesKey(name: string, labels: Record<string, string>): string {
  return name +
    JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Read every counter and histogram sample of a registry (gauges are not cumulative and skipped). */
export async function readCumulative(registry: Registry): Promise<SeriesValue[]> {
  const out: SeriesValue[] = [];
  for (const family of await registry.getMetricsAsJSON()) {
    const type = String(family.type);
    if (type !== "counter" && type !== "histogram") continue;
    for (
      const v of family.values as {
        value: number;
        labels: Record<string, unknown>;
        metricName?: string;
      }[]
    ) {
      const labels: Record<string, string> = {};
      for (const [k, value] of Object.entries(v.labels)) labels[k] = String(value);
      out.push({
        name: v.metricName ?? family.name,
        family: family.name,
        kind: type,
        labels,
        value: v.value,
      });
    }
  }
  return out;
}

/** Families (name, help, type) registered in a registry. */
export async function familiesOf(registry: Registry): Promise<FamilyInfo[]> {
  return (await registry.getMetricsAsJSON()).map((f) => ({
    name: f.name,
    help: f.help,
    type: String(f.type) as FamilyInfo["type"],
  }));
}

/**
 * Tracks what a process already reported, so it can persist only the increase since the last
 * flush. Counters only go up; a negative difference (a registry reset) is reported as the new
 * value. A series seen for the first time is reported even at zero, so that every bucket of a
 * histogram exists in the shared totals (a missing low bucket skews `histogram_quantile`).
 */
export class DeltaTracker {
  #last = new Map<string, number>();

  /** Increases since the previous call, omitting known series that did not change. */
  deltas(values: readonly SeriesValue[]): SeriesValue[] {
    const out: SeriesValue[] = [];
    for (const value of values) {
      const key = seriesKey(value.name, value.labels);
      const previous = this.#last.get(key);
      const delta = previous !== undefined && value.value >= previous
        ? value.value - previous
        : value.value;
      this.#last.set(key, value.value);
      if (delta !== 0 || previous === undefined) out.push({ ...value, value: delta });
    }
    return out;
  }
}

/** Escape a label value for the Prometheus text format. */
function _escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function _escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function _formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function _labelText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return "{" + entries.map(([k, v]) => `${k}="${_escapeLabel(v)}"`).join(",") + "}";
}

function _leOrder(le: string | undefined): number {
  return le === undefined ? 0 : le === "+Inf" ? Infinity : Number(le);
}

/**
 * Render families and their samples in the Prometheus text exposition format (version 0.0.4):
 * HELP and TYPE once per family, histogram buckets in ascending `le` with `+Inf`, then `_sum`
 * and `_count` per label set.
 */
export function renderExposition(
  families: readonly FamilyInfo[],
  samples: readonly SeriesValue[],
): string {
  const byFamily = new Map<string, SeriesValue[]>();
  for (const sample of samples) {
    let list = byFamily.get(sample.family);
    if (!list) byFamily.set(sample.family, list = []);
    list.push(sample);
  }
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${_escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    const list = byFamily.get(family.name) ?? [];
    if (family.type === "histogram") {
      const groups = new Map<string, SeriesValue[]>();
      for (const sample of list) {
        const { le: _le, ...rest } = sample.labels;
        const key = seriesKey(family.name, rest);
        let group = groups.get(key);
        if (!group) groups.set(key, group = []);
        group.push(sample);
      }
      for (const group of groups.values()) {
        const suffixOrder = (s: SeriesValue) =>
          s.name.endsWith("_bucket") ? 0 : s.name.endsWith("_sum") ? 1 : 2;
        group.sort((a, b) =>
          suffixOrder(a) - suffixOrder(b) || _leOrder(a.labels.le) - _leOrder(b.labels.le)
        );
        for (const s of group) {
          lines.push(`${s.name}${_labelText(s.labels)} ${_formatValue(s.value)}`);
        }
      }
    } else {
      for (const s of list) lines.push(`${s.name}${_labelText(s.labels)} ${_formatValue(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * Measure event-loop lag by timer drift: schedule every `intervalMs` and record how late each
 * tick fires. (Deno's `monitorEventLoopDelay` reports 0.) Returns a stop function.
 */
export function watchEventLoopLag(
  onLag: (seconds: number) => void,
  options: { intervalMs?: number; now?: () => number } = {},
): () => void {
  const interval = options.intervalMs ?? 500;
  const now = options.now ?? (() => performance.now());
  let expected = now() + interval;
  const timer = setInterval(() => {
    const t = now();
    onLag(Math.max(0, (t - expected) / 1000));
    expected = t + interval;
  }, interval);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
