import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { clockFromEnv } from "../core/clock.ts";
import type { TimeZoneSetting } from "../core/format.ts";
import { parseDuration, parseIntOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import { createMetrics, familiesOf } from "../core/metrics.ts";
import { PLOT_MARKERS, plotLines, type PlotPoint } from "../core/plot.ts";
import {
  META_FILE,
  METRICS_HISTORY_FILE,
  openExistingMigrated,
  openTelemetry,
  readMetricSamples,
  readMetricTotals,
  sampleAtOrBefore,
  sampleCounts,
  type StoredSeries,
} from "../storage/mod.ts";
// Not web/mod.ts: that loads the whole dashboard, which a metrics-only server does not need.
import {
  createMetricsApp,
  listen,
  type ListenOptions,
  MAX_HEADER_SIZE_LIMIT,
  type MetricsAppOptions,
} from "../web/metrics_server.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, formatTime, printTable } from "./format.ts";
import { dataDirOf, historyDirOf, positionals, tzOption } from "./options.ts";

const _HISTORY_OPTIONS = ["list", "metric", "since", "labels", "avg", "plot"];

/** `marketpipe metrics`: a metrics-only server, or the stored metric history. */
export async function runMetrics(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const sources = invocation.options.sources;
  const history = _HISTORY_OPTIONS.filter((name) => sources[name] === "flag");
  if (sources.port === "flag" && history.length > 0) {
    throw new UsageError(
      `--port cannot be combined with --${history[0]}: --port serves metrics, --${
        history[0]
      } shows the history`,
    );
  }
  for (const name of ["avg", "plot"]) {
    if (sources[name] === "flag" && sources.metric !== "flag") {
      throw new UsageError(`--${name} needs --metric NAME: it applies to one metric's history`);
    }
  }
  // A port from METRICS_PORT or the config file starts the server unless history was asked for.
  if (sources.port !== "default" && (sources.port === "flag" || history.length === 0)) {
    return await _serveMetrics(invocation, context, dataDir);
  }
  for (const name of ["host", "legacy-metrics"]) {
    if (sources[name] === "flag") {
      throw new UsageError(`--${name} needs --port: it configures the metrics server`);
    }
  }
  return await _history(invocation, context, dataDir);
}

async function _serveMetrics(
  invocation: Invocation,
  context: CommandContext,
  dataDir: string,
): Promise<number> {
  // resolveOptions() already applied flag > METRICS_PORT > config file.
  const port = parseIntOption(invocation.string("port") ?? "8000", "--port", 0, 65_535);
  const host = invocation.string("host") ?? "127.0.0.1";
  const maxConcurrent = parseIntOption(
    context.env.METRICS_MAX_CONNECTIONS ?? "100",
    "METRICS_MAX_CONNECTIONS",
    1,
    100_000,
  );
  const maxHeaderSize = parseIntOption(
    context.env.METRICS_MAX_HEADER_SIZE ?? "16384",
    "METRICS_MAX_HEADER_SIZE",
    256,
    MAX_HEADER_SIZE_LIMIT,
  );
  const legacy = invocation.flag("legacy-metrics");
  const telemetry = await openTelemetry(dataDir, {
    historyDir: historyDirOf(context),
    env: context.env,
    sessionClock: clockFromEnv(context.env),
  });
  try {
    await serveMetricsHttp({
      hostname: host,
      port,
      maxConcurrent,
      maxHeaderSize,
      signal: context.signal,
      scrape: () => telemetry.scrape({ legacy }),
      log: context.err,
      onListen: ({ hostname, port }) =>
        context.err(
          `Serving metrics on http://${
            hostname.includes(":") ? `[${hostname}]` : hostname
          }:${port}/metrics (Ctrl-C to stop)`,
        ),
    });
  } finally {
    await telemetry.close();
  }
  return EXIT.ok;
}

/** Options of {@link serveMetricsHttp}: the app's limits and where to listen. */
export interface ServeMetricsOptions extends MetricsAppOptions, ListenOptions {}

/**
 * The server of `metrics --port`: {@link createMetricsApp} on `Deno.serve` (keep-alive,
 * pipelining, gzip, OpenMetrics), until `signal` aborts and the requests in flight are answered.
 */
export async function serveMetricsHttp(options: ServeMetricsOptions): Promise<void> {
  if (options.signal.aborted) return;
  await listen(createMetricsApp(options), options).finished;
}

function _parseSince(text: string, now: number): number {
  if (/^\d+\s*[smhdw]$/.test(text.trim())) return now - parseDuration(text, "--since");
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(
      `Invalid --since "${text}": expected a duration like 24h or a time like 2024-03-04T15:00Z`,
    );
  }
  return ms;
}

function _parseLabels(text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  // No prototype: a label named __proto__ or constructor is a label like any other.
  const out: Record<string, string> = Object.create(null);
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const match = /^([a-zA-Z_][a-zA-Z0-9_]*)=(.*)$/.exec(part);
    if (!match) {
      throw new UsageError(
        `Invalid --labels "${text}": expected name=value pairs like provider=alpaca,feed=iex`,
      );
    }
    out[match[1]] = match[2];
  }
  return out;
}

async function _history(
  invocation: Invocation,
  context: CommandContext,
  dataDir: string,
): Promise<number> {
  const now = Date.now();
  // Metric history reads in UTC like Prometheus, unless --tz asks for another zone.
  const tz = invocation.string("tz") === undefined ? undefined : tzOption(invocation);
  const since = _parseSince(invocation.string("since") ?? "24h", now);
  const labels = _parseLabels(invocation.string("labels"));
  const avgText = invocation.string("avg");
  const bucketMs = avgText === undefined ? undefined : parseDuration(avgText, "--avg");
  if (bucketMs !== undefined && (bucketMs === 0 || (now - since) / bucketMs > 10_000)) {
    throw new UsageError(
      `Invalid --avg "${avgText}": ${
        bucketMs === 0
          ? "expected a window longer than 0"
          : "more than 10000 windows since --since; use a longer window"
      }`,
    );
  }
  const metricName = invocation.string("metric");
  const families = await familiesOf(createMetrics().registry);
  if (metricName !== undefined && !families.some((f) => f.name === metricName)) {
    throw new UsageError(
      `Unknown --metric "${metricName}"${
        didYouMean(metricName, families.map((f) => f.name))
      }; see marketpipe metrics --list`,
    );
  }
  const historyDir = historyDirOf(context);
  const path = join(historyDir ?? dataDir, historyDir ? METRICS_HISTORY_FILE : META_FILE);
  const db = await openExistingMigrated(path);
  if (!db) {
    if (context.json) {
      context.out(metricName ? JSON.stringify({ name: metricName, series: [], points: [] }) : "[]");
    } else context.out(`No metric history yet: ${path} does not exist. Run an ingest first.`);
    return EXIT.ok;
  }
  try {
    const totals = readMetricTotals(db);
    if (metricName === undefined) return _list(context, families, totals, sampleCounts(db), tz);
    const family = families.find((f) => f.name === metricName)!;
    const matching = totals.filter((s) =>
      s.family === metricName &&
      Object.entries(labels).every(([k, v]) => Object.hasOwn(s.labels, k) && s.labels[k] === v)
    );
    const isHistogram = family.type === "histogram";
    const valueSeries = matching.filter((s) =>
      isHistogram ? s.name.endsWith("_sum") || s.name.endsWith("_count") : true
    );
    const pointsOf = (series: StoredSeries[]) => {
      const timeline = _timeline(db, series, since);
      return bucketMs === undefined
        ? _totals(timeline, isHistogram)
        : _buckets(timeline, isHistogram, bucketMs, since, now);
    };
    const points = pointsOf(valueSeries);
    const shownSeries = isHistogram ? matching.filter((s) => s.name.endsWith("_count")) : matching;
    if (context.json) {
      context.out(JSON.stringify({
        name: metricName,
        type: family.type,
        help: family.help,
        since: new Date(since).toISOString(),
        bucket: avgText ?? null,
        series: shownSeries.map((s) => ({ labels: _withoutLe(s.labels), total: s.value })),
        points: points.map((p) => ({ ts: new Date(p.x).toISOString(), value: p.y })),
      }));
      return EXIT.ok;
    }
    context.out(`${metricName} (${family.type}): ${family.help}`);
    if (shownSeries.length === 0) {
      context.out(`No samples${Object.keys(labels).length ? " for these labels" : ""} yet.`);
      return EXIT.ok;
    }
    for (const s of shownSeries) {
      context.out(
        `  ${_labelText(_withoutLe(s.labels))} ${isHistogram ? "observations" : "total"} ${
          formatCount(s.value)
        }`,
      );
    }
    const what = bucketMs === undefined
      ? (isHistogram ? "average seconds so far" : "total")
      : (isHistogram ? `average seconds per ${avgText}` : `increase per ${avgText}`);
    if (invocation.flag("plot")) {
      // One line per label set: a sum of ingest, validate and aggregate times means nothing.
      const groups = new Map<string, { labels: Record<string, string>; series: StoredSeries[] }>();
      for (const s of valueSeries) {
        const own = _withoutLe(s.labels);
        const key = _labelText(own);
        const group = groups.get(key) ?? { labels: own, series: [] };
        group.series.push(s);
        groups.set(key, group);
      }
      // Nothing to draw for a label set that never counted (series start at 0), or an
      // operation that never ran (a histogram without observations).
      const lines = [...groups.values()].map(({ labels: own, series }) => ({
        labels: own,
        label: Object.keys(own).length === 0 ? metricName : _labelText(own),
        points: pointsOf(series).filter((p): p is PlotPoint => p.y !== null),
      })).filter((line) => line.points.some((p) => p.y !== 0));
      if (lines.length > PLOT_MARKERS.length) {
        const example = Object.entries(lines[0].labels).map(([k, v]) => `${k}=${v}`).join(",");
        throw new UsageError(
          `Cannot --plot ${metricName}: ${lines.length} label sets match, at most ${PLOT_MARKERS.length} fit one chart; choose with --labels, e.g. --labels ${example}`,
        );
      }
      context.out("");
      context.out(`${what} since ${formatTime(since, tz)}:`);
      const width = context.columns ?? 80;
      for (
        const line of plotLines(lines, {
          width,
          height: Math.max(5, Math.min(20, Math.floor(width / 6))),
          formatX: (x) => formatTime(x, tz).slice(5, 16),
        })
      ) context.out(line.trimEnd());
      return EXIT.ok;
    }
    context.out("");
    const rows = points.slice(-50).map((
      p,
    ) => [formatTime(p.x, tz), p.y === null ? "-" : _number(p.y)]);
    printTable(context, [bucketMs === undefined ? "time" : "bucket start", what], rows, {
      right: [1],
    });
    if (points.length > 50) {
      context.out(
        `(${points.length - 50} earlier point(s) not shown; narrow --since or use --avg)`,
      );
    }
    return EXIT.ok;
  } finally {
    db.close();
  }
}

function _list(
  context: CommandContext,
  families: { name: string; help: string; type: string }[],
  totals: StoredSeries[],
  counts: Map<number, number>,
  tz: TimeZoneSetting | undefined,
): number {
  const rows = families.filter((f) => f.type !== "gauge").map((f) => {
    const series = totals.filter((s) => s.family === f.name);
    const valueSeries = f.type === "histogram"
      ? series.filter((s) => s.name.endsWith("_count"))
      : series;
    const last = valueSeries.reduce((n, s) => n + s.value, 0);
    const samples = series.reduce((n, s) => n + (counts.get(s.id) ?? 0), 0);
    const updated = series.reduce((t, s) => Math.max(t, s.updatedAt), 0);
    return { name: f.name, type: f.type, help: f.help, last, samples, updated: updated || null };
  });
  if (context.json) {
    context.out(JSON.stringify(rows));
    return EXIT.ok;
  }
  printTable(
    context,
    ["name", "type", "last value", "samples", "updated", "help"],
    rows.map((r) => [
      r.name,
      r.type,
      _number(r.last),
      formatCount(r.samples),
      formatTime(r.updated, tz),
      r.help,
    ]),
    { right: [2, 3] },
  );
  return EXIT.ok;
}

interface _Timeline {
  /** Sample times (ms), ascending. */
  times: number[];
  /** For each time: summed total of `_sum` (or counter) series and of `_count` series. */
  value: number[];
  count: number[];
}

/** Sum the matching series at every time any of them changed (plus the value at `since`). */
function _timeline(
  db: DatabaseSync,
  series: StoredSeries[],
  since: number,
): _Timeline {
  const events: { ts: number; id: number; value: number }[] = [];
  const current = new Map<number, number>();
  for (const s of series) {
    current.set(s.id, sampleAtOrBefore(db, s.id, since - 1)?.value ?? 0);
    for (const sample of readMetricSamples(db, s.id, since)) {
      events.push({ ts: sample.ts, id: s.id, value: sample.value });
    }
  }
  events.sort((a, b) => a.ts - b.ts);
  const isCount = new Map(series.map((s) => [s.id, s.name.endsWith("_count")]));
  const timeline: _Timeline = { times: [], value: [], count: [] };
  const push = (ts: number) => {
    let value = 0;
    let count = 0;
    for (const [id, v] of current) {
      if (isCount.get(id)) count += v;
      else value += v;
    }
    if (timeline.times.at(-1) === ts) {
      timeline.value[timeline.value.length - 1] = value;
      timeline.count[timeline.count.length - 1] = count;
    } else {
      timeline.times.push(ts);
      timeline.value.push(value);
      timeline.count.push(count);
    }
  };
  push(since);
  for (const event of events) {
    current.set(event.id, event.value);
    push(event.ts);
  }
  return timeline;
}

/** A point of the history; `y` is null for a histogram window without observations. */
interface _Point {
  x: number;
  y: number | null;
}

function _totals(timeline: _Timeline, histogram: boolean): _Point[] {
  return timeline.times.map((ts, i) => ({
    x: ts,
    y: histogram
      ? (timeline.count[i] > 0 ? timeline.value[i] / timeline.count[i] : null)
      : timeline.value[i],
  })).slice(1);
}

function _buckets(
  timeline: _Timeline,
  histogram: boolean,
  bucketMs: number,
  since: number,
  now: number,
): _Point[] {
  const first = Math.floor(since / bucketMs) * bucketMs;
  const out: _Point[] = [];
  let i = 0;
  let lastValue = timeline.value[0];
  let lastCount = timeline.count[0];
  for (let start = first; start <= now; start += bucketMs) {
    const end = start + bucketMs;
    const startValue = lastValue;
    const startCount = lastCount;
    while (i < timeline.times.length && timeline.times[i] < end) {
      lastValue = timeline.value[i];
      lastCount = timeline.count[i];
      i++;
    }
    const dv = lastValue - startValue;
    const dc = lastCount - startCount;
    // A window without observations has no average: null, not 0.
    out.push({ x: start, y: histogram ? (dc > 0 ? dv / dc : null) : dv });
  }
  return out;
}

function _withoutLe(labels: Record<string, string>): Record<string, string> {
  const { le: _le, ...rest } = labels;
  return rest;
}

function _labelText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "{}" : `{${entries.map(([k, v]) => `${k}="${v}"`).join(",")}}`;
}

function _number(value: number): string {
  return Number.isInteger(value) ? formatCount(value) : value.toPrecision(4);
}
