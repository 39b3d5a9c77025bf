import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobSpec } from "../core/jobs.ts";
import { createMetrics, type SeriesValue } from "../core/metrics.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { readMetricSamples, readMetricTotals, recordFreshness } from "./metrics_store.ts";
import {
  createTelemetry,
  legacySeries,
  openTelemetry,
  type Telemetry,
  type TelemetryOptions,
  withoutMislabelledGauges,
} from "./telemetry.ts";

/** A "process": its own connection to the data directory's database and its own telemetry. */
function startProcess(dir: string, options: TelemetryOptions = {}): Telemetry {
  const db = openDatabase(join(dir, META_FILE));
  migrate(db);
  // A long flush interval: tests flush explicitly unless they test the timer.
  return createTelemetry(db, db, { flushEveryMs: 60_000, ...options }, () => db.close());
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "mp-telemetry-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Samples of an exposition: `name`, labels and value. */
function parseScrape(text: string) {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    out.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return out;
}

function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  return parseScrape(text).filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).reduce((n, s) => n + s.value, 0);
}

const ROWS = { provider: "fake", timeframe: "1m" };

Deno.test("telemetry: two processes' counters are summed in either one's scrape", async () => {
  await withDir(async (dir) => {
    const a = startProcess(dir);
    const b = startProcess(dir);
    try {
      a.metrics.ingestRows.inc(ROWS, 960);
      b.metrics.ingestRows.inc(ROWS, 1_920);
      b.metrics.jobs.inc({ outcome: "succeeded" });
      await b.flush();
      // a's scrape flushes a's own increases first, then reads everybody's totals.
      const text = await a.scrape({ process: false });
      assert.equal(sumOf(text, "mp_ingest_rows_total", ROWS), 2_880);
      assert.equal(sumOf(text, "mp_jobs_total", { outcome: "succeeded" }), 1);
      assert.equal(sumOf(await b.scrape({ process: false }), "mp_ingest_rows_total"), 2_880);
      // Scraping again adds nothing twice.
      assert.equal(sumOf(await a.scrape({ process: false }), "mp_ingest_rows_total"), 2_880);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("telemetry: totals stay monotonic when a process restarts with a fresh registry", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      const seen: number[] = [];
      const scrape = async () =>
        seen.push(sumOf(await server.scrape({ process: false }), "mp_ingest_rows_total"));
      for (const rowsWritten of [500, 300, 200]) {
        // Each ingest is a new process: its registry starts at zero.
        const ingest = startProcess(dir);
        ingest.metrics.ingestRows.inc(ROWS, rowsWritten / 2);
        await ingest.flush();
        await scrape();
        ingest.metrics.ingestRows.inc(ROWS, rowsWritten / 2);
        await ingest.close();
        await scrape();
      }
      assert.deepEqual(seen, [250, 500, 650, 800, 900, 1_000]);
      // The serving process itself restarts too.
      await server.close();
      const restarted = startProcess(dir);
      try {
        assert.equal(
          sumOf(await restarted.scrape({ process: false }), "mp_ingest_rows_total"),
          1_000,
        );
      } finally {
        await restarted.close();
      }
    } catch (error) {
      await server.close().catch(() => {});
      throw error;
    }
  });
});

Deno.test("telemetry: the flush timer persists increases a few times a second without being asked", async () => {
  await withDir(async (dir) => {
    const process = startProcess(dir, { flushEveryMs: 20 });
    const reader = openDatabase(join(dir, META_FILE));
    try {
      process.metrics.rateLimiterWaits.inc({ provider: "fake", mode: "local" }, 3);
      const deadline = Date.now() + 5_000;
      while (readMetricTotals(reader).length === 0) {
        assert.ok(Date.now() < deadline, "nothing flushed within 5 s");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(
        readMetricTotals(reader).map((t) => [t.name, t.labels, t.value]),
        [["mp_rate_limiter_waits_total", { mode: "local", provider: "fake" }, 3]],
      );
    } finally {
      reader.close();
      await process.close();
    }
  });
});

Deno.test("telemetry: close() persists what was recorded since the last flush", async () => {
  await withDir(async (dir) => {
    const process = startProcess(dir);
    process.metrics.errors.inc({ provider: "fake", feed: "sip", code: "429" }, 2);
    await process.close();
    const db = openDatabase(join(dir, META_FILE));
    try {
      assert.deepEqual(readMetricTotals(db).map((t) => t.value), [2]);
    } finally {
      db.close();
    }
  });
});

Deno.test("telemetry: increases of a flush that failed are written by the next one", async () => {
  await withDir(async (dir) => {
    const process = startProcess(dir);
    const locker = openDatabase(join(dir, META_FILE));
    try {
      process.metrics.ingestRows.inc(ROWS, 100);
      const busy = createTelemetryBusyProbe(dir);
      // Another process holds the write lock longer than this one waits.
      locker.exec("BEGIN IMMEDIATE");
      try {
        busy.metrics.ingestRows.inc(ROWS, 7);
        await assert.rejects(busy.flush(), /locked|busy/i);
      } finally {
        locker.exec("ROLLBACK");
      }
      await busy.flush();
      await process.flush();
      assert.deepEqual(readMetricTotals(locker).map((t) => t.value), [107]);
      await busy.close();
    } finally {
      locker.close();
      await process.close();
    }
  });
});

/** Telemetry whose database gives up at once when another connection holds the write lock. */
function createTelemetryBusyProbe(dir: string): Telemetry {
  const db = openDatabase(join(dir, META_FILE));
  db.exec("PRAGMA busy_timeout = 0");
  return createTelemetry(db, db, { flushEveryMs: 60_000 }, () => db.close());
}

const SPEC: JobSpec = {
  provider: "fake",
  feed: "sip",
  adjustment: "raw",
  timeframe: "1m",
  symbols: ["AAPL"],
  start: "2024-03-04",
  end: "2024-03-04",
  params: {},
};

Deno.test("telemetry: scrape shows running jobs from the jobs table of any process", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    const ingestDb = openDatabase(join(dir, META_FILE));
    const meta = new MetaStore(ingestDb, { command: "ingest" });
    try {
      const running = async () => sumOf(await server.scrape({ process: false }), "mp_jobs_running");
      assert.equal(await running(), 0);
      const task = { symbol: "AAPL", start: "2024-03-04", end: "2024-03-04", days: 1 };
      const a = meta.claimJob(meta.createJob(SPEC, "a", [task]).id);
      meta.claimJob(meta.createJob(SPEC, "b", [task]).id);
      assert.equal(await running(), 2);
      meta.finishJob(a.id, "succeeded");
      assert.equal(await running(), 1);
      const text = await server.scrape({ process: false });
      assert.match(text, /^# TYPE mp_jobs_running gauge$/m);
    } finally {
      meta.close();
      await server.close();
    }
  });
});

Deno.test("telemetry: scrape shows data freshness per symbol and timeframe, capped", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir, { freshnessCap: 3 });
    try {
      const db = openDatabase(join(dir, META_FILE));
      try {
        for (let i = 0; i < 5; i++) {
          recordFreshness(db, [{
            symbol: `S${i}`,
            timeframe: "1m",
            lastTs: 1_700_000_000_000 + i * 60_000,
          }], 1_000 + i);
        }
        recordFreshness(db, [{ symbol: "S4", timeframe: "5m", lastTs: 1_700_000_000_000 }], 2_000);
      } finally {
        db.close();
      }
      const text = await server.scrape({ process: false });
      const fresh = parseScrape(text).filter((s) =>
        s.name === "mp_data_last_bar_timestamp_seconds"
      );
      assert.deepEqual(
        fresh.map((s) => [s.labels.symbol, s.labels.timeframe, s.value]),
        [
          ["S4", "5m", 1_700_000_000],
          ["S4", "1m", 1_700_000_240],
          ["S3", "1m", 1_700_000_180],
        ],
      );
      assert.match(text, /^# TYPE mp_data_last_bar_timestamp_seconds gauge$/m);
    } finally {
      await server.close();
    }
  });
});

Deno.test("telemetry: scrape shows the serving process's event-loop lag in seconds", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      const text = await server.scrape({ process: false });
      const lag = parseScrape(text).filter((s) => s.name === "marketpipe_event_loop_lag_seconds");
      assert.equal(lag.length, 1);
      assert.ok(lag[0].value >= 0 && lag[0].value < 5, `lag ${lag[0].value}`);
      assert.match(text, /^# TYPE marketpipe_event_loop_lag_seconds gauge$/m);
    } finally {
      await server.close();
    }
  });
});

Deno.test("telemetry: scrape renders each family once, and histograms in order", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      server.metrics.requestLatency.observe({ provider: "fake", feed: "sip" }, 0.2);
      server.metrics.requestLatency.observe({ provider: "fake", feed: "sip" }, 3);
      const text = await server.scrape({ process: false });
      const helps = [...text.matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]);
      assert.equal(new Set(helps).size, helps.length, "a family repeated");
      for (const name of ["mp_requests_total", "mp_request_latency_seconds", "mp_jobs_running"]) {
        assert.ok(helps.includes(name), name);
      }
      const latency = text.split("\n").filter((l) => l.startsWith("mp_request_latency_seconds"));
      assert.equal(latency.length, 14);
      assert.match(latency[11], /_bucket\{.*le="\+Inf".*\} 2$/);
      assert.match(latency[12], /^mp_request_latency_seconds_sum\{.*\} 3\.2$/);
      assert.match(latency[13], /^mp_request_latency_seconds_count\{.*\} 2$/);
    } finally {
      await server.close();
    }
  });
});

Deno.test("telemetry: a histogram recorded by two processes scrapes like one prom-client registry", async () => {
  await withDir(async (dir) => {
    const a = startProcess(dir);
    const b = startProcess(dir);
    const reference = createMetrics();
    try {
      const labels = { provider: "fake", feed: "sip" };
      for (const [process, seconds] of [[a, 0.2], [b, 0.04], [a, 3], [b, 45]] as const) {
        process.metrics.requestLatency.observe(labels, seconds);
        reference.requestLatency.observe(labels, seconds);
      }
      await b.flush();
      const ours = parseScrape(await a.scrape({ process: false }))
        .filter((s) => s.name.startsWith("mp_request_latency_seconds"));
      const theirs = parseScrape(await reference.registry.metrics())
        .filter((s) => s.name.startsWith("mp_request_latency_seconds"));
      const key = (s: { name: string; labels: Record<string, string>; value: number }) =>
        `${s.name}{le=${s.labels.le ?? ""}} ${s.value}`;
      assert.deepEqual(ours.map(key), theirs.map(key));
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("telemetry: scrape adds process metrics, minus gauges misnamed _total", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      const text = await server.scrape();
      assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
      assert.match(text, /^process_resident_memory_bytes \d+/m);
      assert.doesNotMatch(text, /^# TYPE \S+_total gauge$/m);
      assert.ok(text.endsWith("\n"));
      assert.doesNotMatch(await server.scrape({ process: false }), /^process_/m);
    } finally {
      await server.close();
    }
  });
});

Deno.test("withoutMislabelledGauges() drops only gauge families whose name ends in _total", () => {
  const text = [
    "# HELP nodejs_active_handles_total Handles",
    "# TYPE nodejs_active_handles_total gauge",
    "nodejs_active_handles_total 3",
    "# HELP process_cpu_seconds_total CPU",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total 1.5",
    "# HELP nodejs_heap_size_total_bytes Heap",
    "# TYPE nodejs_heap_size_total_bytes gauge",
    "nodejs_heap_size_total_bytes 100",
    "",
  ].join("\n");
  assert.equal(
    withoutMislabelledGauges(text),
    text.split("\n").slice(3).join("\n"),
  );
});

function total(name: string, labels: Record<string, string>, value: number): SeriesValue {
  const family = name.replace(/_(bucket|sum|count)$/, "");
  return {
    name,
    family: name.startsWith("mp_request_latency_seconds") ? family : name,
    kind: name.startsWith("mp_request_latency_seconds") ? "histogram" : "counter",
    labels,
    value,
  };
}

Deno.test("legacySeries() sums the current series by source (the provider)", () => {
  const { families, samples } = legacySeries([
    total("mp_requests_total", { provider: "alpaca", feed: "iex", status: "2xx" }, 10),
    total("mp_requests_total", { provider: "alpaca", feed: "sip", status: "4xx" }, 5),
    total("mp_requests_total", { provider: "fake", feed: "sip", status: "2xx" }, 1),
    total("mp_errors_total", { provider: "alpaca", feed: "iex", code: "429" }, 2),
    total("mp_errors_total", { provider: "alpaca", feed: "sip", code: "429" }, 3),
    total("mp_request_latency_seconds_bucket", { provider: "alpaca", feed: "iex", le: "1" }, 4),
    total("mp_request_latency_seconds_bucket", { provider: "alpaca", feed: "sip", le: "1" }, 6),
    total("mp_request_latency_seconds_sum", { provider: "alpaca", feed: "iex" }, 0.5),
    total("mp_request_latency_seconds_sum", { provider: "alpaca", feed: "sip" }, 1.25),
    total("mp_request_latency_seconds_count", { provider: "alpaca", feed: "sip" }, 6),
    total("mp_ingest_rows_total", { provider: "alpaca", timeframe: "1m" }, 1_000),
  ]);
  assert.deepEqual(families.map((f) => [f.name, f.type]), [
    ["mp_requests_legacy_total", "counter"],
    ["mp_errors_legacy_total", "counter"],
    ["mp_request_legacy_latency_seconds", "histogram"],
  ]);
  const value = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))
      .map((s) => s.value);
  assert.deepEqual(value("mp_requests_legacy_total", { source: "alpaca" }), [15]);
  assert.deepEqual(value("mp_requests_legacy_total", { source: "fake" }), [1]);
  assert.deepEqual(value("mp_errors_legacy_total", { source: "alpaca", code: "429" }), [5]);
  assert.deepEqual(
    value("mp_request_legacy_latency_seconds_bucket", { source: "alpaca", le: "1" }),
    [10],
  );
  assert.deepEqual(value("mp_request_legacy_latency_seconds_sum", { source: "alpaca" }), [1.75]);
  assert.deepEqual(value("mp_request_legacy_latency_seconds_count", { source: "alpaca" }), [6]);
  assert.ok(samples.every((s) => !s.name.startsWith("mp_ingest")), "only the original's series");
  assert.ok(
    samples.filter((s) => s.family === "mp_request_legacy_latency_seconds").every((s) =>
      s.kind === "histogram"
    ),
  );
});

Deno.test("telemetry: --legacy-metrics scrape adds the legacy families next to the current ones", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      server.metrics.requests.inc({ provider: "fake", feed: "sip", status: "2xx" }, 4);
      server.metrics.requests.inc({ provider: "fake", feed: "iex", status: "2xx" }, 2);
      const legacy = await server.scrape({ legacy: true, process: false });
      assert.equal(sumOf(legacy, "mp_requests_legacy_total", { source: "fake" }), 6);
      assert.equal(sumOf(legacy, "mp_requests_total"), 6);
      assert.match(legacy, /^# TYPE mp_requests_legacy_total counter$/m);
      assert.doesNotMatch(await server.scrape({ process: false }), /legacy/);
    } finally {
      await server.close();
    }
  });
});

Deno.test("telemetry: history older than the retention is pruned, totals are not", async () => {
  await withDir(async (dir) => {
    let now = Date.UTC(2024, 2, 1);
    const process = startProcess(dir, { now: () => now, retentionMs: 86_400_000 });
    const db = openDatabase(join(dir, META_FILE));
    try {
      for (let day = 0; day < 5; day++) {
        process.metrics.ingestRows.inc(ROWS, 10);
        await process.flush();
        now += 2 * 3_600_000;
        process.metrics.ingestRows.inc(ROWS, 10);
        await process.flush();
        now += 22 * 3_600_000;
      }
      const [series] = readMetricTotals(db);
      assert.equal(series.value, 100);
      const samples = readMetricSamples(db, series.id, 0);
      // Within the last day, plus the one baseline sample before it.
      const cutoff = now - 24 * 3_600_000 - 86_400_000;
      assert.ok(samples.length < 10, `${samples.length} samples kept`);
      assert.ok(samples.filter((s) => s.ts < cutoff).length <= 1);
    } finally {
      db.close();
      await process.close();
    }
  });
});

Deno.test("openTelemetry() keeps history in historyDir and reads jobs and freshness from the data dir", async () => {
  await withDir(async (dir) => {
    const dataDir = join(dir, "data");
    const historyDir = join(dir, "multiproc");
    const telemetry = await openTelemetry(dataDir, { historyDir, flushEveryMs: 60_000 });
    try {
      telemetry.metrics.ingestRows.inc(ROWS, 42);
      const data = openDatabase(join(dataDir, META_FILE));
      try {
        recordFreshness(data, [{ symbol: "AAPL", timeframe: "1m", lastTs: 1_000_000 }], 1);
      } finally {
        data.close();
      }
      const text = await telemetry.scrape({ process: false });
      assert.equal(sumOf(text, "mp_ingest_rows_total"), 42);
      assert.equal(sumOf(text, "mp_data_last_bar_timestamp_seconds", { symbol: "AAPL" }), 1_000);
    } finally {
      await telemetry.close();
    }
    const history = openDatabase(join(historyDir, "marketpipe-metrics.db"));
    const data = openDatabase(join(dataDir, META_FILE));
    try {
      assert.deepEqual(readMetricTotals(history).map((t) => t.value), [42]);
      assert.deepEqual(readMetricTotals(data), [], "no totals in the data directory");
    } finally {
      history.close();
      data.close();
    }
  });
});
