import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { join } from "node:path";
import type { SeriesValue } from "../core/metrics.ts";
import {
  addMetricDeltas,
  META_FILE,
  migrate,
  openDatabase,
  pruneMetricSamples,
} from "../storage/mod.ts";
import { parseInvocation } from "./args.ts";
import { COMMANDS } from "./commands.ts";
import type { CommandContext } from "./context.ts";
import { runMetrics, serveMetricsHttp } from "./metrics.ts";

// ---------------------------------------------------------------------------------------------
// serveMetricsHttp(): the server `metrics --port` runs, over a real socket on 127.0.0.1.

const SCRAPE = "# HELP mp_jobs_running Running\n# TYPE mp_jobs_running gauge\nmp_jobs_running 0\n";

/** Serve SCRAPE on a free port for the length of `fn`, counting the scrapes. */
async function withMetricsServer(
  fn: (server: { url: string; port: number; scrapes: () => number }) => Promise<void>,
  options: { maxHeaderSize?: number; timeoutMs?: number } = {},
): Promise<void> {
  const controller = new AbortController();
  let port = 0;
  let scrapes = 0;
  const served = serveMetricsHttp({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 10,
    maxHeaderSize: options.maxHeaderSize ?? 16_384,
    scrape: () => {
      scrapes++;
      return Promise.resolve(SCRAPE);
    },
    signal: controller.signal,
    timeoutMs: options.timeoutMs,
    onListen: (addr) => port = addr.port,
  });
  try {
    await fn({ url: `http://127.0.0.1:${port}`, port, scrapes: () => scrapes });
  } finally {
    controller.abort();
    await served;
  }
}

/** Send raw bytes on a new connection and read the whole answer until the server closes. */
async function rawRequest(port: number, bytes: string | Uint8Array): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  if (bytes.length > 0) {
    await conn.write(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  }
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65_536);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  return new TextDecoder().decode(
    chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
  );
}

Deno.test("serveMetricsHttp() answers GET /metrics with the exposition and its content type", async () => {
  await withMetricsServer(async ({ url, scrapes }) => {
    const r = await fetch(`${url}/metrics`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await r.text(), SCRAPE);
    assert.equal(scrapes(), 1);
  });
});

Deno.test("serveMetricsHttp() answers HEAD with the headers and no body", async () => {
  await withMetricsServer(async ({ url, port }) => {
    const r = await fetch(`${url}/metrics`, { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await r.text(), "");
    const raw = await rawRequest(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(
      raw,
      new RegExp(`\r\nContent-Length: ${new TextEncoder().encode(SCRAPE).length}\r\n`),
    );
    assert.ok(raw.endsWith("\r\n\r\n"), "no body after the head");
  });
});

Deno.test("serveMetricsHttp() answers 404 off /metrics, without scraping", async () => {
  await withMetricsServer(async ({ url, scrapes }) => {
    for (const path of ["/", "/metric", "/metrics/", "/api/metrics"]) {
      const r = await fetch(`${url}${path}`);
      assert.equal(r.status, 404, path);
      assert.match(await r.text(), /try \/metrics/);
    }
    assert.equal(scrapes(), 0);
    // A query string is still /metrics.
    const r = await fetch(`${url}/metrics?x=1`);
    assert.equal(r.status, 200);
    await r.body?.cancel();
  });
});

Deno.test("serveMetricsHttp() answers 405 with Allow for methods other than GET and HEAD", async () => {
  await withMetricsServer(async ({ url, scrapes }) => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const r = await fetch(`${url}/metrics`, { method });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get("allow"), "GET, HEAD");
      await r.body?.cancel();
    }
    assert.equal(scrapes(), 0);
  });
});

Deno.test("serveMetricsHttp() answers 431 when the head exceeds the limit, before anything else", async () => {
  await withMetricsServer(async ({ url, scrapes }) => {
    const big = await fetch(`${url}/nope`, {
      method: "POST",
      headers: { "X-Padding": "x".repeat(2_000) },
    });
    assert.equal(big.status, 431);
    await big.body?.cancel();
    assert.equal(scrapes(), 0);
    // Just under the limit is served (the exact byte boundary: "metrics server: 431 ..." below).
    const fits = await fetch(`${url}/metrics`, { headers: { "X-A": "y".repeat(500) } });
    assert.equal(fits.status, 200);
    await fits.body?.cancel();
    assert.equal(scrapes(), 1);
  }, { maxHeaderSize: 1_024 });
});

Deno.test("serveMetricsHttp() closes a connection that never finishes its head", async () => {
  await withMetricsServer(async ({ port, scrapes }) => {
    const answer = await rawRequest(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    assert.equal(answer, "", "closed without an answer");
    assert.equal(scrapes(), 0);
  }, { timeoutMs: 200 });
});

// ---------------------------------------------------------------------------------------------
// History: `marketpipe metrics --metric ...` run in-process with a fake context.

/** "Now" of the history tests: 12:15 UTC, so hour buckets start at :00 and `--since 24h` mid-hour. */
const NOW = Date.UTC(2024, 2, 5, 12, 15);
const MIN = 60_000;
const HOUR = 60 * MIN;

interface Run {
  code: number;
  out: string[];
}

async function metricsCommand(
  dir: string,
  args: string[],
  options: { columns?: number; env?: Record<string, string> } = {},
): Promise<Run> {
  const env = options.env ?? {};
  const parsed = await parseInvocation(
    COMMANDS,
    ["metrics", ...args, "--data-dir", dir],
    env,
    (path) => Deno.readTextFile(path),
  );
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") throw new Error("unreachable");
  const out: string[] = [];
  const context: CommandContext = {
    env,
    out: (line) => out.push(line),
    err: () => {},
    columns: options.columns,
    signal: new AbortController().signal,
    verbose: false,
    json: parsed.invocation.flag("json"),
    version: "test",
  };
  const clock = FakeTimers.install({ toFake: ["Date"], now: NOW });
  try {
    return { code: await runMetrics(parsed.invocation, context), out };
  } finally {
    clock.uninstall();
  }
}

async function json<T>(dir: string, args: string[]): Promise<T> {
  const run = await metricsCommand(dir, [...args, "--json"]);
  assert.equal(run.code, 0);
  assert.equal(run.out.length, 1, run.out.join("\n"));
  return JSON.parse(run.out[0]) as T;
}

function rows(timeframe: string, value: number): SeriesValue {
  return {
    name: "mp_ingest_rows_total",
    family: "mp_ingest_rows_total",
    kind: "counter",
    labels: { provider: "fake", timeframe },
    value,
  };
}

/** Increases of mp_processing_time_seconds{operation}: one `_sum` and one `_count` delta. */
function timing(operation: string, seconds: number, count: number): SeriesValue[] {
  const part = (suffix: string, value: number): SeriesValue => ({
    name: `mp_processing_time_seconds${suffix}`,
    family: "mp_processing_time_seconds",
    kind: "histogram",
    labels: { operation },
    value,
  });
  return [part("_sum", seconds), part("_count", count)];
}

/**
 * A data directory with known history: ingest rows before the window (1,000) and inside it
 * (100 at 09:25, 50 at 10:20, 25 at 10:45, 7 of 5m bars at 10:45, 10 at 11:45), and ingest and
 * query timings.
 */
async function withHistory(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
  const db = openDatabase(join(dir, META_FILE));
  try {
    migrate(db);
    addMetricDeltas(db, [rows("1m", 1_000)], NOW - 30 * HOUR);
    addMetricDeltas(db, [rows("1m", 100)], NOW - 3 * HOUR + 10 * MIN);
    addMetricDeltas(db, [rows("1m", 50)], NOW - 2 * HOUR + 5 * MIN);
    addMetricDeltas(db, [rows("1m", 25), rows("5m", 7)], NOW - 2 * HOUR + 30 * MIN);
    addMetricDeltas(db, [rows("1m", 10)], NOW - 30 * MIN);

    addMetricDeltas(db, timing("ingest", 50, 10), NOW - 30 * HOUR);
    addMetricDeltas(db, timing("ingest", 2, 4), NOW - 3 * HOUR - 5 * MIN); // 09:10
    addMetricDeltas(db, timing("ingest", 1, 1), NOW - 2 * HOUR - 25 * MIN); // 09:50
    addMetricDeltas(db, timing("ingest", 10, 2), NOW - 55 * MIN); // 11:20
    addMetricDeltas(db, timing("query", 1, 8), NOW - 45 * MIN); // 11:30
  } finally {
    db.close();
  }
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface History {
  name: string;
  type: string;
  bucket: string | null;
  since: string;
  series: { labels: Record<string, string>; total: number }[];
  points: { ts: string; value: number | null }[];
}

function pointMap(history: History): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of history.points) {
    if (p.value !== 0 && p.value !== null) out[p.ts.slice(11, 16)] = p.value;
  }
  return out;
}

Deno.test("metrics --avg: counter buckets hold each hour's increase and add up to the window's", async () => {
  await withHistory(async (dir) => {
    const history = await json<History>(dir, [
      "--metric",
      "mp_ingest_rows_total",
      "--since",
      "24h",
      "--avg",
      "1h",
    ]);
    assert.equal(history.since, "2024-03-04T12:15:00.000Z");
    assert.equal(history.bucket, "1h");
    // 12:00 yesterday to 12:00 today, every hour, aligned to the hour.
    assert.equal(history.points.length, 25);
    assert.equal(history.points[0].ts, "2024-03-04T12:00:00.000Z");
    assert.equal(history.points.at(-1)!.ts, "2024-03-05T12:00:00.000Z");
    assert.deepEqual(pointMap(history), { "09:00": 100, "10:00": 82, "11:00": 10 });
    assert.equal(history.points.reduce((n, p) => n + (p.value ?? 0), 0), 192);
    assert.deepEqual(
      history.series.map((s) => [s.labels.timeframe, s.total]),
      [["1m", 1_185], ["5m", 7]],
    );
  });
});

Deno.test("metrics --avg: 15m buckets split the same increases finer, same sum", async () => {
  await withHistory(async (dir) => {
    const history = await json<History>(dir, [
      "--metric",
      "mp_ingest_rows_total",
      "--since",
      "6h",
      "--avg",
      "15m",
    ]);
    assert.deepEqual(pointMap(history), {
      "09:15": 100,
      "10:15": 50,
      "10:45": 32,
      "11:45": 10,
    });
    assert.equal(history.points.reduce((n, p) => n + (p.value ?? 0), 0), 192);
  });
});

Deno.test("metrics --labels: only the matching series count", async () => {
  await withHistory(async (dir) => {
    const history = await json<History>(dir, [
      "--metric",
      "mp_ingest_rows_total",
      "--avg",
      "1h",
      "--labels",
      "timeframe=5m",
    ]);
    assert.deepEqual(pointMap(history), { "10:00": 7 });
    assert.deepEqual(history.series, [{ labels: { provider: "fake", timeframe: "5m" }, total: 7 }]);
  });
});

Deno.test("metrics without --avg: cumulative totals at each change, starting from the window's baseline", async () => {
  await withHistory(async (dir) => {
    const history = await json<History>(dir, ["--metric", "mp_ingest_rows_total"]);
    assert.deepEqual(history.points.map((p) => [p.ts.slice(11, 16), p.value]), [
      ["09:25", 1_100],
      ["10:20", 1_150],
      ["10:45", 1_182],
      ["11:45", 1_192],
    ]);
  });
});

Deno.test("metrics --avg on a histogram: each bucket's average is Δsum / Δcount", async () => {
  await withHistory(async (dir) => {
    const all = await json<History>(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--avg",
      "1h",
    ]);
    assert.equal(all.type, "histogram");
    // 09:00: (2 + 1) / (4 + 1); 11:00: ingest 10 s over 2 and query 1 s over 8.
    assert.deepEqual(pointMap(all), { "09:00": 0.6, "11:00": 1.1 });
    // Windows without observations have no average (null), not an average of 0.
    assert.equal(all.points.length, 25);
    assert.deepEqual(all.points.filter((p) => p.value !== null).map((p) => p.ts.slice(11, 16)), [
      "09:00",
      "11:00",
    ]);
    const table = await metricsCommand(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--avg",
      "1h",
    ]);
    assert.ok(table.out.some((l) => /^2024-03-05 10:00:00Z\s+-$/.test(l)), table.out.join("\n"));
    assert.ok(!table.out.some((l) => /^2024-03-05 10:00:00Z\s+0$/.test(l)));
    const plot = await metricsCommand(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--avg",
      "1h",
      "--plot",
    ], { columns: 50 });
    const chart = plot.out.filter((l) => l.includes("┤"));
    // Only the two windows with observations are plotted: the minimum label is 0.6, not 0.
    assert.match(chart.at(-1)!, /^\s*0\.60 ┤/, plot.out.join("\n"));
    assert.equal(plot.out.join("").split("●").length - 1, 2);
    assert.deepEqual(
      all.series.map((s) => [s.labels, s.total]),
      [[{ operation: "ingest" }, 17], [{ operation: "query" }, 8]],
    );
    const ingest = await json<History>(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--avg",
      "1h",
      "--labels",
      "operation=ingest",
    ]);
    assert.deepEqual(pointMap(ingest), { "09:00": 0.6, "11:00": 5 });
    // Without --avg: the running average since the first observation.
    const running = await json<History>(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--labels",
      "operation=ingest",
    ]);
    assert.deepEqual(running.points.map((p) => p.value), [52 / 14, 53 / 15, 63 / 17]);
  });
});

Deno.test("metrics --avg counts increases from the retained baseline after history was pruned", async () => {
  await withHistory(async (dir) => {
    const db = openDatabase(join(dir, META_FILE));
    try {
      // The 1,000 rows of 30 h ago are older than a 1-day retention.
      pruneMetricSamples(db, NOW - 24 * HOUR);
    } finally {
      db.close();
    }
    const history = await json<History>(dir, [
      "--metric",
      "mp_ingest_rows_total",
      "--since",
      "12h",
      "--avg",
      "1h",
    ]);
    assert.deepEqual(pointMap(history), { "09:00": 100, "10:00": 82, "11:00": 10 });
  });
});

Deno.test("metrics --list: each family with its last value and sample count", async () => {
  await withHistory(async (dir) => {
    const list = await json<{ name: string; type: string; last: number; samples: number }[]>(dir, [
      "--list",
    ]);
    const byName = new Map(list.map((m) => [m.name, m]));
    assert.equal(byName.get("mp_ingest_rows_total")!.last, 1_192);
    assert.equal(byName.get("mp_ingest_rows_total")!.samples, 6);
    assert.equal(byName.get("mp_processing_time_seconds")!.last, 25, "observations");
    assert.equal(byName.get("mp_processing_time_seconds")!.samples, 10);
    assert.equal(byName.get("mp_errors_total")!.last, 0);
    assert.ok(list.every((m) => m.type !== "gauge"), "gauges have no history");
    const text = await metricsCommand(dir, ["--list"]);
    assert.match(text.out.find((l) => l.startsWith("mp_ingest_rows_total"))!, /\b1,192\b/);
  });
});

Deno.test("metrics --metric prints a table of the points and the labelled totals", async () => {
  await withHistory(async (dir) => {
    const run = await metricsCommand(dir, [
      "--metric",
      "mp_processing_time_seconds",
      "--avg",
      "1h",
    ]);
    assert.equal(run.code, 0);
    assert.match(run.out[0], /^mp_processing_time_seconds \(histogram\): /);
    assert.ok(run.out.includes('  {operation="ingest"} observations 17'), run.out.join("\n"));
    const header = run.out.find((l) => l.startsWith("bucket start"))!;
    assert.match(header, /average seconds per 1h$/);
    assert.ok(run.out.some((l) => /^2024-03-05 11:00:00Z\s+1\.100$/.test(l)), run.out.join("\n"));
  });
});

Deno.test("metrics --plot fits the terminal width and labels the axes", async () => {
  await withHistory(async (dir) => {
    const run = await metricsCommand(dir, [
      "--metric",
      "mp_ingest_rows_total",
      "--avg",
      "1h",
      "--plot",
    ], { columns: 50 });
    assert.equal(run.code, 0);
    const chart = run.out.filter((l) => l.includes("┤") || l.includes("└"));
    assert.equal(chart.length, 9, "height is width / 6 rows plus the axis");
    const plot = run.out.slice(run.out.indexOf(chart[0]));
    assert.ok(plot.every((l) => [...l].length <= 50), run.out.join("\n"));
    assert.ok(chart.every((l) => [...l].length >= 45), "the chart uses the terminal width");
    assert.match(plot.at(-1)!, /^\s+03-04 12:00\s+03-05 12:00$/);
    assert.match(chart[0], /^\s*100 ┤/);
    assert.match(chart[7], /^\s*0 ┤/);
    assert.ok(run.out.some((l) => l.includes("●")));
    assert.ok(run.out.includes("increase per 1h since 2024-03-04 12:15:00Z:"));
  });
});

Deno.test("metrics history rejects unknown metrics and malformed --since, --avg and --labels", async () => {
  await withHistory(async (dir) => {
    await assert.rejects(
      metricsCommand(dir, ["--metric", "mp_ingest_row_total"]),
      /Unknown --metric "mp_ingest_row_total".*did you mean "mp_ingest_rows_total"/,
    );
    await assert.rejects(
      metricsCommand(dir, ["--metric", "mp_ingest_rows_total", "--since", "yesterday"]),
      /Invalid --since "yesterday"/,
    );
    await assert.rejects(
      metricsCommand(dir, ["--metric", "mp_ingest_rows_total", "--avg", "1.5h"]),
      /Invalid --avg "1.5h"/,
    );
    await assert.rejects(
      metricsCommand(dir, ["--metric", "mp_ingest_rows_total", "--labels", "provider"]),
      /Invalid --labels "provider"/,
    );
    await assert.rejects(metricsCommand(dir, ["--list", "--legacy-metrics"]), /needs --port/);
  });
});

Deno.test("metrics history says so when there is no history yet, and creates nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
  try {
    const run = await metricsCommand(dir, ["--list"]);
    assert.equal(run.code, 0);
    assert.match(run.out[0], /^No metric history yet: .*marketpipe\.db does not exist/);
    assert.deepEqual(await json(dir, ["--list"]), []);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics history reads PROMETHEUS_MULTIPROC_DIR when it is set", async () => {
  await withHistory(async (dir) => {
    const empty = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
    try {
      const run = await metricsCommand(empty, ["--list"], {
        env: { PROMETHEUS_MULTIPROC_DIR: dir },
      });
      // The history database lives under its own name in that directory.
      assert.match(run.out[0], /marketpipe-metrics\.db does not exist/);
    } finally {
      await Deno.remove(empty, { recursive: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Server mode: `marketpipe metrics` with a port from --port, METRICS_PORT or the config file.

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Run `metrics args...` in-process until it prints where it serves; `stop()` aborts it. */
async function startServer(dir: string, args: string[], env: Record<string, string> = {}) {
  const config = join(dir, "marketpipe.yaml");
  const parsed = await parseInvocation(
    COMMANDS,
    ["metrics", ...args, "--data-dir", dir],
    env,
    (path) => Deno.readTextFile(path === "marketpipe.yaml" ? config : path),
  );
  if (parsed.kind !== "run") throw new Error("unreachable");
  const err: string[] = [];
  const out: string[] = [];
  const controller = new AbortController();
  const done = runMetrics(parsed.invocation, {
    env,
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    signal: controller.signal,
    verbose: false,
    json: false,
    version: "test",
  });
  const deadline = Date.now() + 10_000;
  let port: number | undefined;
  while (port === undefined) {
    const line = err.find((l) => l.startsWith("Serving metrics on "));
    if (line) port = Number(/:(\d+)\/metrics/.exec(line)![1]);
    else if (out.length > 0) {
      controller.abort();
      await done;
      throw new Error(`metrics did not serve: ${out.join("\n")}`);
    } else if (Date.now() > deadline) throw new Error("metrics did not start in 10 s");
    else await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    port,
    async stop() {
      controller.abort();
      assert.equal(await done, 0);
    },
  };
}

Deno.test("metrics serves when the port comes from METRICS_PORT, the config file or --port, flag > env > config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
  try {
    const [flag, env, config] = [freePort(), freePort(), freePort()];
    await Deno.writeTextFile(join(dir, "marketpipe.yaml"), `port: "${config}"\n`);
    const cases: [string[], Record<string, string>, number][] = [
      [[], { METRICS_PORT: String(env) }, env],
      [["--config", "marketpipe.yaml"], {}, config],
      [["--config", "marketpipe.yaml"], { METRICS_PORT: String(env) }, env],
      [
        ["--config", "marketpipe.yaml", "--port", String(flag)],
        { METRICS_PORT: String(env) },
        flag,
      ],
    ];
    for (const [args, vars, expected] of cases) {
      const server = await startServer(dir, args, vars);
      try {
        assert.equal(server.port, expected, JSON.stringify([args, vars]));
        const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
        assert.equal(response.status, 200);
        await response.body?.cancel();
      } finally {
        await server.stop();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics server: a connection beyond METRICS_MAX_CONNECTIONS gets 503, idle ones count", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
  const server = await startServer(dir, ["--port", "0"], { METRICS_MAX_CONNECTIONS: "2" });
  try {
    const idle = [
      await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    ];
    try {
      // Accepts are in order, so both idle connections are open when the third arrives.
      const third = await rawRequest(server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.match(third, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
      assert.match(third, /\r\nRetry-After: 1\r\n/);
      assert.match(third, /\r\nConnection: close\r\n/);
    } finally {
      for (const conn of idle) conn.close();
    }
    const deadline = Date.now() + 5_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      status = response.status;
      await response.body?.cancel();
    }
    assert.equal(status, 200, "a scrape succeeds once the idle connections are closed");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics server: 431 past METRICS_MAX_HEADER_SIZE, 400 on garbage, HEAD and GET by the byte", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-cli-" });
  const server = await startServer(dir, ["--port", "0"], { METRICS_MAX_HEADER_SIZE: "1024" });
  try {
    const head = (extra: string) => `GET /metrics HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
    const fits = head(`X-A: ${"y".repeat(1024 - head("X-A: \r\n").length)}\r\n`);
    assert.equal(fits.length, 1024);
    assert.match(await rawRequest(server.port, fits), /^HTTP\/1\.1 200 OK\r\n/);
    const over = head(`X-A: ${"y".repeat(1025 - head("X-A: \r\n").length)}\r\n`);
    assert.match(
      await rawRequest(server.port, over),
      /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/,
    );
    // No end of head within the limit at all.
    assert.match(await rawRequest(server.port, "x".repeat(5000)), /^HTTP\/1\.1 431 /);
    assert.match(await rawRequest(server.port, "hello\r\n\r\n"), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(
      await rawRequest(server.port, "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"),
      /^HTTP\/1\.1 400 /,
    );
    const get = await rawRequest(server.port, head(""));
    const [getHead, body] = get.split("\r\n\r\n");
    assert.match(getHead, /\r\nContent-Type: text\/plain; version=0\.0\.4; charset=utf-8\r\n/);
    assert.match(getHead, /\r\nConnection: close(\r\n|$)/);
    const length = Number(/\r\nContent-Length: (\d+)/.exec(getHead)![1]);
    assert.equal(new TextEncoder().encode(body).length, length);
    assert.match(body, /^# HELP /m);
    const headOnly = await rawRequest(server.port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(headOnly, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(headOnly.endsWith("\r\n\r\n"), "HEAD has no body");
    const post = await rawRequest(server.port, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(post, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(post, /\r\nAllow: GET, HEAD\r\n/);
    assert.match(
      await rawRequest(server.port, head("").replace("/metrics", "/")),
      /^HTTP\/1\.1 404 /,
    );
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics refuses --port with history options and --avg or --plot without --metric", async () => {
  await withHistory(async (dir) => {
    for (
      const extra of [
        ["--list"],
        ["--metric", "mp_ingest_rows_total"],
        ["--since", "1h"],
        [
          "--labels",
          "a=b",
        ],
        ["--avg", "1h"],
        ["--plot"],
      ]
    ) {
      await assert.rejects(
        metricsCommand(dir, ["--port", "0", ...extra]),
        (error: Error) =>
          error.name === "UsageError" &&
          new RegExp(`^--port cannot be combined with ${extra[0]}`).test(error.message) &&
          !error.message.includes("\n"),
        extra[0],
      );
    }
    for (const option of [["--avg", "1h"], ["--plot"], ["--list", "--plot"]]) {
      await assert.rejects(metricsCommand(dir, option), /^UsageError: --(avg|plot) needs --metric/);
    }
    // A port from METRICS_PORT does not override history asked for with flags.
    const run = await metricsCommand(dir, ["--list"], { env: { METRICS_PORT: "0" } });
    assert.match(run.out.find((l) => l.startsWith("mp_ingest_rows_total"))!, /\b1,192\b/);
  });
});
