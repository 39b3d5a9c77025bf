import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobSpec } from "../core/jobs.ts";
import {
  createMetrics,
  IN_PROCESS_PROVIDERS,
  INITIAL_ERROR_CODES,
  JOB_OUTCOMES,
  RATE_LIMIT_WAIT_MODES,
  type SeriesValue,
} from "../core/metrics.ts";
import { TIMEFRAMES } from "../core/types.ts";
import { VALIDATION_RULES } from "../core/validate.ts";
import { UsageError } from "../core/errors.ts";
import { providers } from "../providers/mod.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import {
  readMetricSamples,
  readMetricTotals,
  recordFreshness,
  sampleCounts,
} from "./metrics_store.ts";
import {
  createTelemetry,
  freshnessCapOf,
  legacySeries,
  liveGauges,
  METRICS_MAX_SERIES_ENV,
  openTelemetry,
  sessionsBehind,
  type Telemetry,
  type TelemetryOptions,
} from "./telemetry.ts";

/** A "process": its own connection to the data directory's database and its own telemetry. */
function startProcess(dir: string, options: TelemetryOptions = {}): Telemetry {
  const db = openDatabase(join(dir, META_FILE));
  migrate(db);
  // A long flush interval: tests flush explicitly unless they test the timer.
  return createTelemetry(db, db, { flushEveryMs: 60_000, ...options }, () => db.close());
}

async function withDir(fn: (dir: string) => Promise<void> | void) {
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

/** Stored totals above zero: the series something was recorded in, not those created at 0. */
function recorded(db: Parameters<typeof readMetricTotals>[0]) {
  return readMetricTotals(db).filter((t) => t.value !== 0);
}

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
      while (recorded(reader).length === 0) {
        assert.ok(Date.now() < deadline, "nothing flushed within 5 s");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(
        recorded(reader).map((t) => [t.name, t.labels, t.value]),
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
      assert.deepEqual(recorded(db).map((t) => t.value), [2]);
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
      assert.deepEqual(recorded(locker).map((t) => t.value), [107]);
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
      const latency = text.split("\n").filter((l) =>
        l.startsWith("mp_request_latency_seconds") && l.includes('provider="fake"') &&
        l.includes('feed="sip"')
      );
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
        .filter((s) =>
          s.name.startsWith("mp_request_latency_seconds") && s.labels.provider === "fake" &&
          s.labels.feed === "sip"
        );
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

Deno.test("telemetry: scrape adds this process's metrics, with no broken prom-client defaults", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      const text = await server.scrape();
      assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
      assert.match(text, /^process_resident_memory_bytes \d+/m);
      assert.match(text, /^process_start_time_seconds \d+/m);
      assert.doesNotMatch(text, /^# TYPE \S+_total gauge$/m);
      // prom-client's collector under Deno: event-loop lag 9223372036.85 / NaN, CPU since the
      // first scrape; none of it is exposed.
      assert.doesNotMatch(text, /^nodejs_/m);
      assert.doesNotMatch(text, / (NaN|9223372036\.\d*)$/m);
      assert.equal(
        parseScrape(text).filter((s) => s.name === "marketpipe_event_loop_lag_seconds").length,
        1,
      );
      assert.ok(text.endsWith("\n"));
      assert.doesNotMatch(await server.scrape({ process: false }), /^process_/m);
    } finally {
      await server.close();
    }
  });
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
      const [series] = recorded(db);
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
      assert.deepEqual(recorded(history).map((t) => t.value), [42]);
      assert.deepEqual(readMetricTotals(data), [], "no totals in the data directory");
    } finally {
      history.close();
      data.close();
    }
  });
});

Deno.test("telemetry: a fresh data dir's first scrape has every known series at 0", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    try {
      const samples = parseScrape(await server.scrape({ process: false }));
      const at = (name: string, labels: Record<string, string>) => {
        const found = samples.filter((s) =>
          s.name === name && JSON.stringify(Object.entries(s.labels).sort()) ===
            JSON.stringify(Object.entries(labels).sort())
        );
        assert.equal(found.length, 1, `${name}${JSON.stringify(labels)} is not in the scrape`);
        return found[0].value;
      };
      for (const { info } of Object.values(providers)) {
        const provider = info.name;
        // The fake provider sends no HTTP requests: no request, latency or error series.
        const feeds = IN_PROCESS_PROVIDERS.includes(provider) ? [] : info.feeds;
        for (const feed of info.feeds.filter((f) => !feeds.includes(f))) {
          assert.ok(
            !samples.some((s) =>
              s.name.startsWith("mp_request") && s.labels.provider === provider &&
              s.labels.feed === feed
            ),
            `${provider} has request series`,
          );
        }
        for (const feed of feeds) {
          for (const code of INITIAL_ERROR_CODES) {
            assert.equal(at("mp_errors_total", { provider, feed, code }), 0);
          }
          for (const status of ["2xx", "4xx", "5xx", "none"]) {
            assert.equal(at("mp_requests_total", { provider, feed, status }), 0);
          }
          assert.equal(at("mp_request_latency_seconds_count", { provider, feed }), 0);
          assert.equal(at("mp_request_latency_seconds_bucket", { provider, feed, le: "+Inf" }), 0);
        }
        for (const mode of RATE_LIMIT_WAIT_MODES) {
          assert.equal(at("mp_rate_limiter_waits_total", { provider, mode }), 0);
        }
        for (const timeframe of TIMEFRAMES) {
          assert.equal(at("mp_ingest_rows_total", { provider, timeframe }), 0);
        }
      }
      for (const rule of VALIDATION_RULES) {
        assert.equal(
          at("mp_validation_errors_total", { rule: rule.id, severity: rule.severity }),
          0,
        );
      }
      for (const outcome of JOB_OUTCOMES) assert.equal(at("mp_jobs_total", { outcome }), 0);
      for (const operation of ["ingest", "validate", "aggregate"]) {
        assert.equal(at("mp_processing_time_seconds_count", { operation }), 0);
      }
      // Bounded: a few hundred series, none per symbol.
      const counters = samples.filter((s) => s.name.startsWith("mp_"));
      assert.ok(counters.length < 1_000, `${counters.length} series`);
      assert.ok(counters.every((s) => s.labels.symbol === undefined));
    } finally {
      await server.close();
    }
  });
});

Deno.test("telemetry: the zero series are stored once, and a counter's first increase counts from 0", async () => {
  await withDir(async (dir) => {
    const server = startProcess(dir);
    const db = openDatabase(join(dir, META_FILE));
    try {
      await server.flush();
      const stored = readMetricTotals(db);
      const failed = stored.find((t) =>
        t.name === "mp_jobs_total" && t.labels.outcome === "failed"
      )!;
      assert.equal(failed.value, 0, "in metric_series before any job failed");
      const samplesBefore = sampleCounts(db);
      // Every later process (each ingest) announces the same series: nothing is rewritten.
      const ingest = startProcess(dir);
      await ingest.flush();
      assert.deepEqual(sampleCounts(db), samplesBefore);
      ingest.metrics.jobs.inc({ outcome: "failed" });
      await ingest.close();
      assert.deepEqual(
        readMetricSamples(db, failed.id, 0).map((s) => s.value),
        [0, 1],
        "the history has the 0 that increase() counts the first failure from",
      );
      assert.equal(
        sumOf(await server.scrape({ process: false }), "mp_jobs_total", { outcome: "failed" }),
        1,
      );
    } finally {
      db.close();
      await server.close();
    }
  });
});

Deno.test("telemetry: the freshness cap comes from MARKETPIPE_METRICS_MAX_SERIES, default 1,000", () => {
  assert.equal(freshnessCapOf({}), 1_000);
  assert.equal(freshnessCapOf({ env: {} }), 1_000);
  assert.equal(freshnessCapOf({ env: { [METRICS_MAX_SERIES_ENV]: "25" } }), 25);
  assert.equal(freshnessCapOf({ env: { [METRICS_MAX_SERIES_ENV]: "0" } }), 0);
  assert.equal(freshnessCapOf({ freshnessCap: 7, env: { [METRICS_MAX_SERIES_ENV]: "25" } }), 7);
  for (const bad of ["-1", "ten", "1.5", "2000000"]) {
    assert.throws(
      () => freshnessCapOf({ env: { [METRICS_MAX_SERIES_ENV]: bad } }),
      (error: Error) =>
        error instanceof UsageError &&
        error.message ===
          `Invalid MARKETPIPE_METRICS_MAX_SERIES "${bad}": expected a whole number from 0 to 1000000`,
    );
  }
});

Deno.test("openTelemetry() refuses a malformed MARKETPIPE_METRICS_MAX_SERIES before touching the data dir", async () => {
  await withDir(async (dir) => {
    const dataDir = join(dir, "data");
    await assert.rejects(
      openTelemetry(dataDir, { env: { [METRICS_MAX_SERIES_ENV]: "lots" } }),
      UsageError,
    );
    await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
  });
});

Deno.test("telemetry: the freshness cap drops series, says how many, and the summary covers all", async () => {
  await withDir(async (dir) => {
    const cap = 40;
    const server = startProcess(dir, { env: { [METRICS_MAX_SERIES_ENV]: String(cap) } });
    const db = openDatabase(join(dir, META_FILE));
    try {
      const oldest = Date.UTC(2024, 2, 4, 14, 30);
      recordFreshness(
        db,
        Array.from({ length: 150 }, (_, i) => ({
          symbol: `S${String(i).padStart(3, "0")}`,
          timeframe: "1m",
          lastTs: oldest + i * 60_000,
        })),
        1_000,
      );
      recordFreshness(
        db,
        [{ symbol: "SPY", timeframe: "1d", lastTs: Date.UTC(2024, 2, 8, 5) }],
        2_000,
      );
      const text = await server.scrape({ process: false });
      const samples = parseScrape(text);
      const perSymbol = samples.filter((s) => s.name === "mp_data_last_bar_timestamp_seconds");
      assert.equal(perSymbol.length, cap);
      assert.equal(sumOf(text, "mp_data_last_bar_series_dropped"), 151 - cap);
      assert.equal(sumOf(text, "mp_data_series", { timeframe: "1m" }), 150);
      assert.equal(sumOf(text, "mp_data_series", { timeframe: "1d" }), 1);
      assert.equal(
        sumOf(text, "mp_data_oldest_last_bar_timestamp_seconds", { timeframe: "1m" }),
        oldest / 1000,
        "the stalest symbol counts even when its own series was dropped",
      );
      assert.equal(
        sumOf(text, "mp_data_newest_last_bar_timestamp_seconds", { timeframe: "1m" }),
        oldest / 1000 + 149 * 60,
      );
      for (
        const name of [
          "mp_data_last_bar_series_dropped",
          "mp_data_series",
          "mp_data_oldest_last_bar_timestamp_seconds",
          "mp_data_sessions_behind",
        ]
      ) {
        assert.match(text, new RegExp(`^# TYPE ${name} gauge$`, "m"));
      }
      // Under the cap nothing is dropped.
      const roomy = startProcess(dir, { freshnessCap: 1_000 });
      try {
        assert.equal(
          sumOf(await roomy.scrape({ process: false }), "mp_data_last_bar_series_dropped"),
          0,
        );
      } finally {
        await roomy.close();
      }
    } finally {
      db.close();
      await server.close();
    }
  });
});

Deno.test("liveGauges() counts the sessions the stalest symbol of each timeframe is behind", async () => {
  await withDir(async (dir) => {
    const db = openDatabase(join(dir, META_FILE));
    migrate(db);
    try {
      recordFreshness(db, [
        // Last 1m bar Thursday 2024-03-07 19:59 ET; Friday's session is missing.
        { symbol: "AAPL", timeframe: "1m", lastTs: Date.parse("2024-03-08T00:59:00Z") },
        { symbol: "MSFT", timeframe: "1m", lastTs: Date.parse("2024-03-08T20:59:00Z") },
        // Daily bar of Friday 2024-03-08 (midnight New York).
        { symbol: "AAPL", timeframe: "1d", lastTs: Date.parse("2024-03-08T05:00:00Z") },
      ], 1);
      // Monday 2024-03-11 21:00 ET: Monday's session (and its after-hours) has closed.
      const now = Date.parse("2024-03-12T01:00:00Z");
      const { samples } = liveGauges(db, { freshnessCap: 10, lag: 0, now });
      const behind = Object.fromEntries(
        samples.filter((s) => s.name === "mp_data_sessions_behind").map((s) => [
          s.labels.timeframe,
          s.value,
        ]),
      );
      assert.deepEqual(behind, { "1d": 1, "1m": 2 });
      // Through telemetry, counted up to its session clock (MARKETPIPE_NOW), not the history's.
      const server = startProcess(dir, { sessionClock: () => now });
      try {
        const text = await server.scrape({ process: false });
        assert.equal(sumOf(text, "mp_data_sessions_behind", { timeframe: "1m" }), 2);
      } finally {
        await server.close();
      }
    } finally {
      db.close();
    }
  });
});

Deno.test("sessionsBehind() skips weekends and holidays and is 0 for the current session", () => {
  const friday = Date.parse("2024-03-29T05:00:00Z"); // Good Friday 2024: the exchange is closed
  const thursday = Date.parse("2024-03-28T19:00:00Z");
  // Tuesday 2024-04-02 after the close: Monday 1st and Tuesday 2nd have closed since Thursday.
  assert.equal(sessionsBehind(thursday, "1d", Date.parse("2024-04-02T21:00:00Z")), 2);
  assert.equal(sessionsBehind(friday, "1d", Date.parse("2024-04-02T21:00:00Z")), 2);
  // During Thursday's own session nothing is behind.
  assert.equal(sessionsBehind(thursday, "1m", Date.parse("2024-03-28T19:30:00Z")), 0);
  assert.equal(sessionsBehind(0, "1m", Date.parse("2024-03-28T19:30:00Z")), undefined);
});
