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
import { metricsResponse, runMetrics } from "./metrics.ts";

// ---------------------------------------------------------------------------------------------
// metricsResponse()

const SCRAPE = "# HELP mp_jobs_running Running\n# TYPE mp_jobs_running gauge\nmp_jobs_running 0\n";

function respond(request: Request, maxHeaderSize = 16_384) {
  let scrapes = 0;
  const response = metricsResponse(request, {
    maxHeaderSize,
    scrape: () => {
      scrapes++;
      return Promise.resolve(SCRAPE);
    },
  });
  return { response, scrapes: () => scrapes };
}

Deno.test("metricsResponse() answers GET /metrics with the exposition and its content type", async () => {
  const { response, scrapes } = respond(new Request("http://localhost/metrics"));
  const r = await response;
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(await r.text(), SCRAPE);
  assert.equal(scrapes(), 1);
});

Deno.test("metricsResponse() answers HEAD with the headers and no body", async () => {
  const r = await respond(new Request("http://localhost/metrics", { method: "HEAD" })).response;
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(r.body, null);
});

Deno.test("metricsResponse() answers 404 off /metrics, without scraping", async () => {
  for (const path of ["/", "/metric", "/metrics/", "/api/metrics"]) {
    const { response, scrapes } = respond(new Request(`http://localhost${path}`));
    const r = await response;
    assert.equal(r.status, 404, path);
    assert.match(await r.text(), /try \/metrics/);
    assert.equal(scrapes(), 0);
  }
  // A query string is still /metrics.
  assert.equal((await respond(new Request("http://localhost/metrics?x=1")).response).status, 200);
});

Deno.test("metricsResponse() answers 405 with Allow for methods other than GET and HEAD", async () => {
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    const { response, scrapes } = respond(new Request("http://localhost/metrics", { method }));
    const r = await response;
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.get("allow"), "GET, HEAD");
    await r.body?.cancel();
    assert.equal(scrapes(), 0);
  }
});

Deno.test("metricsResponse() answers 431 when the headers exceed the limit, before anything else", async () => {
  const headers = { "X-Padding": "x".repeat(2_000) };
  const big = respond(new Request("http://localhost/nope", { method: "POST", headers }), 1_024);
  const r = await big.response;
  assert.equal(r.status, 431);
  await r.body?.cancel();
  assert.equal(big.scrapes(), 0);
  // Just under the limit is fine: name + value + 4 bytes per header.
  const fits = new Request("http://localhost/metrics", { headers: { "X-A": "y".repeat(1_017) } });
  assert.equal((await respond(fits, 1_024).response).status, 200);
  const over = new Request("http://localhost/metrics", { headers: { "X-A": "y".repeat(1_018) } });
  assert.equal((await respond(over, 1_024).response).status, 431);
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
  points: { ts: string; value: number }[];
}

function pointMap(history: History): Record<string, number> {
  return Object.fromEntries(
    history.points.filter((p) => p.value !== 0).map((p) => [p.ts.slice(11, 16), p.value]),
  );
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
    assert.equal(history.points.reduce((n, p) => n + p.value, 0), 192);
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
    assert.equal(history.points.reduce((n, p) => n + p.value, 0), 192);
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
