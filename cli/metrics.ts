import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { parseDuration, parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { createMetrics, familiesOf } from "../core/metrics.ts";
import { plotLine, type PlotPoint } from "../core/plot.ts";
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
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, formatTime, renderTable } from "./format.ts";
import { dataDirOf, historyDirOf, positionals } from "./options.ts";

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
    if (invocation.options.sources[name] === "flag") {
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
  const maxConnections = parseIntOption(
    context.env.METRICS_MAX_CONNECTIONS ?? "100",
    "METRICS_MAX_CONNECTIONS",
    1,
    100_000,
  );
  const maxHeaderSize = parseIntOption(
    context.env.METRICS_MAX_HEADER_SIZE ?? "16384",
    "METRICS_MAX_HEADER_SIZE",
    256,
    1_048_576,
  );
  const legacy = invocation.flag("legacy-metrics");
  const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
  try {
    await serveMetricsHttp({
      hostname: host,
      port,
      maxConnections,
      maxHeaderSize,
      signal: context.signal,
      scrape: () => telemetry.scrape({ legacy }),
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

/** Options of {@link serveMetricsHttp}. */
export interface ServeMetricsOptions {
  hostname: string;
  /** 0: any free port. */
  port: number;
  /** Open TCP connections at once; one more gets 503 and is closed. */
  maxConnections: number;
  /** Bytes of request line plus headers; beyond it 431. */
  maxHeaderSize: number;
  /** The exposition text. */
  scrape: () => Promise<string>;
  /** Stops the server: the listener and every open connection close. */
  signal: AbortSignal;
  onListen?: (addr: { hostname: string; port: number }) => void;
  /** A connection that has not been answered by then is closed (default 10 s). */
  timeoutMs?: number;
}

const _REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/**
 * A minimal HTTP/1.1 server for `/metrics` over `Deno.listen`: one request per connection, every
 * response with `Connection: close`. Unlike `Deno.serve` it sees TCP connections, so it can cap
 * open connections (idle ones included) and the raw size of the request head.
 */
export async function serveMetricsHttp(options: ServeMetricsOptions): Promise<void> {
  const { signal } = options;
  if (signal.aborted) return;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const addr = listener.addr as Deno.NetAddr;
  options.onListen?.({ hostname: addr.hostname, port: addr.port });
  const open = new Set<_Connection>(); // counted against maxConnections
  const rejected = new Set<_Connection>();
  const pending = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    pending.add(work);
    work.finally(() => pending.delete(work));
  };
  let listening = true;
  const stop = () => {
    if (listening) listener.close();
    listening = false;
    for (const connection of [...open, ...rejected]) connection.close();
  };
  signal.addEventListener("abort", stop, { once: true });
  try {
    while (!signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (signal.aborted) break;
        throw new Error(`Cannot accept a connection on ${addr.hostname}:${addr.port}`, {
          cause: error,
        });
      }
      const connection = new _Connection(conn, options.timeoutMs ?? 10_000);
      if (open.size >= options.maxConnections) {
        rejected.add(connection);
        const response = _respond(503, "Too many connections\n", { "Retry-After": "1" });
        track(connection.reject(response).finally(() => rejected.delete(connection)));
        continue;
      }
      open.add(connection);
      track(connection.handle(options).finally(() => open.delete(connection)));
    }
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
    await Promise.allSettled([...pending]);
  }
}

class _Connection {
  #conn: Deno.Conn;
  #closed = false;
  #timer: ReturnType<typeof setTimeout>;

  constructor(conn: Deno.Conn, timeoutMs: number) {
    this.#conn = conn;
    this.#timer = setTimeout(() => this.close(), timeoutMs);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#conn.close();
  }

  /** Read one request head, answer it, close. I/O errors of the peer just end the connection. */
  async handle(options: ServeMetricsOptions): Promise<void> {
    try {
      const head = await this.#readHead(options.maxHeaderSize);
      if (head === undefined) return;
      const response = head === _TOO_LARGE
        ? _respond(431, "Request header fields too large\n")
        : await _answerHead(head, options.scrape);
      await this.reject(response);
    } catch (error) {
      if (!this.#closed && !_isPeerError(error)) throw error;
    } finally {
      this.close();
    }
  }

  /** Send `response`, then drain what the client still sends so closing does not reset it. */
  async reject(response: Uint8Array): Promise<void> {
    try {
      await _writeAll(this.#conn, response);
      await this.#conn.closeWrite();
      const buffer = new Uint8Array(4096);
      while (!this.#closed && (await this.#conn.read(buffer)) !== null);
    } catch (error) {
      if (!this.#closed && !_isPeerError(error)) throw error;
    } finally {
      this.close();
    }
  }

  /** The head without its blank line, "too large", or undefined when the client closed early. */
  async #readHead(maxHeaderSize: number): Promise<string | undefined> {
    const buffer = new Uint8Array(maxHeaderSize + 1);
    const decoder = new TextDecoder("latin1");
    let length = 0;
    while (length <= maxHeaderSize) {
      const n = await this.#conn.read(buffer.subarray(length));
      if (n === null) return undefined;
      length += n;
      // Clients may send empty lines before the request line (RFC 9112 section 2.2).
      const text = decoder.decode(buffer.subarray(0, length)).replace(/^(\r?\n)+/, "");
      const end = /\r?\n\r?\n/.exec(text);
      if (end) {
        return end.index + end[0].length > maxHeaderSize ? _TOO_LARGE : text.slice(0, end.index);
      }
    }
    return _TOO_LARGE;
  }
}

const _TOO_LARGE = "\0too large";

function _isPeerError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.NotConnected;
}

async function _writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

const _TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parse a request head and answer it (see {@link _answer}). */
async function _answerHead(head: string, scrape: () => Promise<string>): Promise<Uint8Array> {
  const lines = head.split(/\r?\n/).filter((line) => line !== "");
  const match = /^(\S+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  const headersOk = lines.slice(1).every((line) => {
    const colon = line.indexOf(":");
    return colon > 0 && _TOKEN.test(line.slice(0, colon));
  });
  if (!match || !_TOKEN.test(match[1]) || !headersOk) return _respond(400, "Bad request\n");
  const [, method, target] = match;
  let pathname: string;
  if (target.startsWith("/")) pathname = target.replace(/[?#].*$/, "");
  else if (/^https?:\/\//i.test(target) && URL.canParse(target)) {
    pathname = new URL(target).pathname;
  } else return _respond(400, "Bad request\n");
  const answer = await _answer(method, pathname, scrape);
  const body = new TextEncoder().encode(answer.body);
  return _respond(answer.status, method === "HEAD" ? "" : body, {
    ...answer.headers,
    "Content-Length": String(body.length),
  });
}

/** A complete HTTP/1.1 response with `Connection: close`. */
function _respond(
  status: number,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Uint8Array {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const all: Record<string, string> = {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": String(bytes.length),
    ...headers,
    Date: new Date().toUTCString(),
    Connection: "close",
  };
  const text = `HTTP/1.1 ${status} ${_REASONS[status]}\r\n${
    Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join("")
  }\r\n`;
  const headBytes = new TextEncoder().encode(text);
  const out = new Uint8Array(headBytes.length + bytes.length);
  out.set(headBytes);
  out.set(bytes, headBytes.length);
  return out;
}

/** Route a metrics request: 404 off /metrics, 405 with Allow for other methods, else the scrape. */
async function _answer(
  method: string,
  pathname: string,
  scrape: () => Promise<string>,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  if (pathname !== "/metrics") {
    return { status: 404, headers: {}, body: "Not found: try /metrics\n" };
  }
  if (method !== "GET" && method !== "HEAD") {
    return { status: 405, headers: { Allow: "GET, HEAD" }, body: "Method not allowed\n" };
  }
  return {
    status: 200,
    headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
    body: await scrape(),
  };
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
    const { didYouMean } = await import("../core/errors.ts");
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
    if (metricName === undefined) return _list(context, families, totals, sampleCounts(db));
    const family = families.find((f) => f.name === metricName)!;
    const matching = totals.filter((s) =>
      s.family === metricName &&
      Object.entries(labels).every(([k, v]) => Object.hasOwn(s.labels, k) && s.labels[k] === v)
    );
    const isHistogram = family.type === "histogram";
    const valueSeries = matching.filter((s) =>
      isHistogram ? s.name.endsWith("_sum") || s.name.endsWith("_count") : true
    );
    const timeline = _timeline(db, valueSeries, since);
    const points = bucketMs === undefined
      ? _totals(timeline, isHistogram)
      : _buckets(timeline, isHistogram, bucketMs, since, now);
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
      context.out("");
      context.out(`${what} since ${formatTime(since)}:`);
      const width = context.columns ?? 80;
      for (
        const line of plotLine(points.filter((p): p is PlotPoint => p.y !== null), {
          width,
          height: Math.max(5, Math.min(20, Math.floor(width / 6))),
          formatX: (x) => formatTime(x).slice(5, 16),
        })
      ) context.out(line.trimEnd());
      return EXIT.ok;
    }
    context.out("");
    const rows = points.slice(-50).map((p) => [formatTime(p.x), p.y === null ? "-" : _number(p.y)]);
    for (
      const line of renderTable([bucketMs === undefined ? "time" : "bucket start", what], rows, {
        right: [1],
      })
    ) {
      context.out(line);
    }
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
  for (
    const line of renderTable(
      ["name", "type", "last value", "samples", "updated", "help"],
      rows.map((
        r,
      ) => [
        r.name,
        r.type,
        _number(r.last),
        formatCount(r.samples),
        formatTime(r.updated),
        r.help,
      ]),
      { right: [2, 3] },
    )
  ) context.out(line);
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
