import process from "node:process";
import { Counter, Histogram, Registry } from "prom-client";
import { type JobStatus, RUN_STATUSES } from "./jobs.ts";
import type { RateLimitWaitMode } from "./ratelimit.ts";
import { VALIDATION_RULES } from "./validate.ts";

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
  /** Runs of the config's schedules inside `serve`, by schedule name and how they ended. */
  scheduleRuns: Counter<"schedule" | "status">;
  /** Schedules that failed on every attempt (an alert was raised), by schedule name. */
  scheduleAlerts: Counter<"schedule">;
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
  const counter = <T extends string>(name: string, help: string, labelNames: readonly T[]) =>
    new Counter<T>({ name, help, labelNames, registers });
  return {
    registry,
    requests: counter(
      "mp_requests_total",
      "HTTP requests to market-data providers by response status",
      ["provider", "feed", "status"],
    ),
    errors: counter(
      "mp_errors_total",
      "Provider request failures by error code (HTTP status, timeout, network, parse)",
      ["provider", "feed", "code"],
    ),
    requestLatency: new Histogram({
      name: "mp_request_latency_seconds",
      help: "Latency of provider HTTP requests",
      labelNames: ["provider", "feed"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rateLimiterWaits: counter(
      "mp_rate_limiter_waits_total",
      "Times a request waited for the rate limiter (mode: local bucket, server headers, 429)",
      ["provider", "mode"],
    ),
    ingestRows: counter(
      "mp_ingest_rows_total",
      "Bars written to storage by ingest (new or updated)",
      ["provider", "timeframe"],
    ),
    validationErrors: counter(
      "mp_validation_errors_total",
      "Validation findings by rule and severity",
      ["rule", "severity"],
    ),
    processingTime: new Histogram({
      name: "mp_processing_time_seconds",
      help: "Duration of pipeline operations (ingest task, validate, aggregate, query)",
      labelNames: ["operation"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    jobs: counter("mp_jobs_total", "Finished jobs by outcome", ["outcome"]),
    scheduleRuns: counter(
      "mp_schedule_runs_total",
      "Scheduled runs in serve by schedule and status (succeeded, partial, failed, skipped)",
      ["schedule", "status"],
    ),
    scheduleAlerts: counter(
      "mp_schedule_alerts_total",
      "Schedules that failed on every attempt, by schedule",
      ["schedule"],
    ),
  };
}

/** How a scheduled run can end, as `mp_schedule_runs_total` counts it. */
export const SCHEDULE_RUN_OUTCOMES = RUN_STATUSES.filter((status) => status !== "running");

/** Creates the schedule series of `names` at 0, so the first run or alert is not lost to rate(). */
export function initialiseScheduleSeries(metrics: Metrics, names: readonly string[]): void {
  for (const schedule of names) {
    for (const status of SCHEDULE_RUN_OUTCOMES) metrics.scheduleRuns.inc({ schedule, status }, 0);
    metrics.scheduleAlerts.inc({ schedule }, 0);
  }
}

/** What the metrics know of a provider before it is used: its name, feeds and timeframes. */
export interface KnownProvider {
  name: string;
  feeds: readonly string[];
  timeframes: readonly string[];
}

/**
 * Providers that make their bars in-process (the fake one): they send no HTTP requests, so
 * `mp_requests_total` and `mp_request_latency_seconds` have no series of theirs.
 */
export const IN_PROCESS_PROVIDERS: readonly string[] = Object.freeze(["fake"]);

/**
 * Error codes that exist at 0 before the first failure: the transport failures (`timeout`,
 * `network`, `parse`: a 2xx body that is not JSON, `shape`: JSON of an unexpected form) and the
 * statuses the retry loop records (429 and the usual 5xx). Other statuses are an open set and
 * appear when they happen.
 */
export const INITIAL_ERROR_CODES: readonly string[] = Object.freeze([
  "timeout",
  "network",
  "parse",
  "shape",
  "429",
  "500",
  "502",
  "503",
  "504",
]);

/** Status classes of `mp_requests_total` (`none`: no answer, e.g. a timeout). */
export const REQUEST_STATUS_CLASSES: readonly string[] = Object.freeze([
  "2xx",
  "4xx",
  "5xx",
  "none",
]);

/** Why a request waited for the rate limiter: every {@link RateLimitWaitMode}. */
export const RATE_LIMIT_WAIT_MODES: readonly RateLimitWaitMode[] = Object.freeze(
  [
    "local",
    "headers",
    "429",
  ] as const satisfies readonly RateLimitWaitMode[],
);

/** The outcomes a finished job is counted under in `mp_jobs_total`. */
export const JOB_OUTCOMES: readonly JobStatus[] = Object.freeze(
  [
    "succeeded",
    "partial",
    "failed",
    "cancelled",
  ] as const satisfies readonly JobStatus[],
);

/** The operations `mp_processing_time_seconds` observes. */
export const PROCESSING_OPERATIONS: readonly string[] = Object.freeze([
  "ingest",
  "validate",
  "aggregate",
]);

/**
 * Create every series whose labels are known in advance at 0, so that each exists from the first
 * scrape and `rate()`/`increase()` see its first increase (Prometheus instrumentation
 * guidelines). Known are: providers with their feeds and timeframes (passed in, since core does
 * not know the registry; request, latency and error series only for providers that send HTTP
 * requests, not the {@link IN_PROCESS_PROVIDERS}), validation rules with their severity, job
 * outcomes, rate-limiter modes, processing operations and {@link INITIAL_ERROR_CODES}. Bounded:
 * a few hundred series in all.
 */
export function initialiseKnownSeries(
  metrics: Metrics,
  providers: readonly KnownProvider[],
): void {
  for (const provider of providers) {
    for (const mode of RATE_LIMIT_WAIT_MODES) {
      metrics.rateLimiterWaits.inc({ provider: provider.name, mode }, 0);
    }
    for (const timeframe of provider.timeframes) {
      metrics.ingestRows.inc({ provider: provider.name, timeframe }, 0);
    }
    if (IN_PROCESS_PROVIDERS.includes(provider.name)) continue;
    for (const feed of provider.feeds) {
      const labels = { provider: provider.name, feed };
      for (const status of REQUEST_STATUS_CLASSES) metrics.requests.inc({ ...labels, status }, 0);
      for (const code of INITIAL_ERROR_CODES) metrics.errors.inc({ ...labels, code }, 0);
      metrics.requestLatency.zero(labels);
    }
  }
  for (const rule of VALIDATION_RULES) {
    metrics.validationErrors.inc({ rule: rule.id, severity: rule.severity }, 0);
  }
  for (const outcome of JOB_OUTCOMES) metrics.jobs.inc({ outcome }, 0);
  for (const operation of PROCESSING_OPERATIONS) metrics.processingTime.zero({ operation });
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

/** Options of {@link readProcessMetrics}. */
export interface ProcessMetricsOptions {
  /** The process's `/proc` directory (Linux). Default `/proc/self`; elsewhere it is absent. */
  procDir?: string;
}

/**
 * Runtime metrics of this process under their standard names, read from the OS for the whole
 * life of the process: CPU seconds (user, system and both, since start), resident and virtual
 * memory, start time, open and maximum file descriptors (Linux `/proc`; elsewhere resident
 * memory comes from `Deno.memoryUsage()`, the start time is the runtime's), plus the V8 heap. It replaces
 * prom-client's default collector, whose event-loop lag (`9223372036.85`, `NaN`), CPU (counted
 * from the first scrape) and handle counts are wrong under Deno. What cannot be read (no
 * `/proc` outside Linux) is left out, never guessed.
 */
export function readProcessMetrics(
  options: ProcessMetricsOptions = {},
): { families: FamilyInfo[]; samples: SeriesValue[] } {
  const procDir = options.procDir ?? "/proc/self";
  const families: FamilyInfo[] = [];
  const samples: SeriesValue[] = [];
  const add = (name: string, type: FamilyInfo["type"], help: string, value: number | undefined) => {
    if (value === undefined || !Number.isFinite(value)) return;
    families.push({ name, help, type });
    samples.push({ name, family: name, kind: "counter", labels: {}, value });
  };
  // Deno's process.cpuUsage() is getrusage(RUSAGE_SELF): the whole process since it started.
  const cpu = process.cpuUsage();
  add(
    "process_cpu_user_seconds_total",
    "counter",
    "User CPU time spent since the process started, in seconds",
    cpu.user / 1e6,
  );
  add(
    "process_cpu_system_seconds_total",
    "counter",
    "System CPU time spent since the process started, in seconds",
    cpu.system / 1e6,
  );
  add(
    "process_cpu_seconds_total",
    "counter",
    "User and system CPU time spent since the process started, in seconds",
    (cpu.user + cpu.system) / 1e6,
  );
  const status = _readOptional(`${procDir}/status`);
  const memory = Deno.memoryUsage();
  add(
    "process_resident_memory_bytes",
    "gauge",
    "Resident memory size in bytes",
    _statusBytes(status, "VmRSS") ?? memory.rss,
  );
  add(
    "process_virtual_memory_bytes",
    "gauge",
    "Virtual memory size in bytes",
    _statusBytes(status, "VmSize"),
  );
  add(
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since the Unix epoch, in seconds",
    _startTime(procDir) ?? performance.timeOrigin / 1000,
  );
  add("process_open_fds", "gauge", "Open file descriptors", _openFds(`${procDir}/fd`));
  add(
    "process_max_fds",
    "gauge",
    "Maximum number of open file descriptors (the soft limit)",
    _maxFds(_readOptional(`${procDir}/limits`)),
  );
  add("marketpipe_heap_used_bytes", "gauge", "V8 heap in use, in bytes", memory.heapUsed);
  add("marketpipe_heap_total_bytes", "gauge", "V8 heap reserved, in bytes", memory.heapTotal);
  return { families, samples };
}

/** The text of a file that may not exist on this OS, or undefined. */
function _readOptional(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw error;
  }
}

/** Clock ticks per second of /proc (USER_HZ, 100 on every Linux that Deno runs on). */
const _USER_HZ = 100;

/**
 * Start of the process by the kernel: its start in ticks after boot (/proc/self/stat field 22)
 * against the time since boot (/proc/uptime). `performance.timeOrigin` is later: `deno test`
 * type-checks before it starts the runtime.
 */
function _startTime(procDir: string): number | undefined {
  const stat = _readOptional(`${procDir}/stat`);
  const uptime = _readOptional(`${procDir}/../uptime`);
  if (stat === undefined || uptime === undefined) return undefined;
  const startTicks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const up = Number(uptime.split(" ")[0]);
  if (!Number.isFinite(startTicks) || !Number.isFinite(up)) return undefined;
  return Date.now() / 1000 - up + startTicks / _USER_HZ;
}

/** A `Name:   123 kB` line of /proc/self/status, in bytes. */
function _statusBytes(status: string | undefined, field: string): number | undefined {
  const match = status && new RegExp(`^${field}:\\s*(\\d+) kB$`, "m").exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** The soft "Max open files" limit of /proc/self/limits (undefined when unlimited). */
function _maxFds(limits: string | undefined): number | undefined {
  const match = limits && /^Max open files\s+(\d+)\s/m.exec(limits);
  return match ? Number(match[1]) : undefined;
}

/**
 * Entries of /proc/self/fd, without the descriptor that listed them: it is closed once the
 * listing ends, so its link no longer resolves.
 */
function _openFds(fdDir: string): number | undefined {
  let names: string[];
  try {
    names = [...Deno.readDirSync(fdDir)].map((entry) => entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw error;
  }
  let open = 0;
  for (const name of names) {
    try {
      Deno.readLinkSync(`${fdDir}/${name}`);
      open++;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) open++;
    }
  }
  return open;
}
