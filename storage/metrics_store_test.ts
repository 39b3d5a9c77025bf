import assert from "node:assert/strict";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import type { JobSpec } from "../core/jobs.ts";
import type { SeriesValue } from "../core/metrics.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import {
  addMetricDeltas,
  countRunningJobs,
  pruneMetricSamples,
  readFreshness,
  readFreshnessSummary,
  readMetricSamples,
  readMetricTotals,
  recordFreshness,
  sampleAtOrBefore,
  sampleCounts,
} from "./metrics_store.ts";

/** Run `fn` with a migrated metadata database in a temp directory, removed afterwards. */
async function withDb(fn: (db: DatabaseSync, dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "mp-metrics-store-" });
  const db = openDatabase(join(dir, META_FILE));
  try {
    migrate(db);
    await fn(db, dir);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const ROWS = { provider: "fake", timeframe: "1m" };

function rows(value: number, labels: Record<string, string> = ROWS): SeriesValue {
  return {
    name: "mp_ingest_rows_total",
    family: "mp_ingest_rows_total",
    kind: "counter",
    labels,
    value,
  };
}

function latency(suffix: string, value: number, le?: string): SeriesValue {
  const labels: Record<string, string> = { provider: "fake", feed: "sip" };
  if (le !== undefined) labels.le = le;
  return {
    name: `mp_request_latency_seconds${suffix}`,
    family: "mp_request_latency_seconds",
    kind: "histogram",
    labels,
    value,
  };
}

Deno.test("addMetricDeltas() adds increases to the totals and records each new total", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [rows(960)], 1_000);
    addMetricDeltas(db, [rows(40)], 2_000);
    addMetricDeltas(db, [rows(1)], 3_000);
    const totals = readMetricTotals(db);
    assert.equal(totals.length, 1);
    assert.equal(totals[0].value, 1_001);
    assert.equal(totals[0].updatedAt, 3_000);
    assert.deepEqual(readMetricSamples(db, totals[0].id, 0), [
      { ts: 1_000, value: 960 },
      { ts: 2_000, value: 1_000 },
      { ts: 3_000, value: 1_001 },
    ]);
    assert.deepEqual(readMetricSamples(db, totals[0].id, 2_000).map((s) => s.ts), [2_000, 3_000]);
    assert.deepEqual(sampleCounts(db), new Map([[totals[0].id, 3]]));
  });
});

Deno.test("addMetricDeltas() creates a series at 0 once and leaves it alone at 0 afterwards", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [rows(0)], 1_000);
    let [series] = readMetricTotals(db);
    assert.equal(series.value, 0);
    assert.deepEqual(readMetricSamples(db, series.id, 0), [{ ts: 1_000, value: 0 }]);
    // A second process announcing the same series at 0 writes nothing.
    addMetricDeltas(db, [rows(0)], 2_000);
    assert.deepEqual(sampleCounts(db), new Map([[series.id, 1]]));
    assert.equal(readMetricTotals(db)[0].updatedAt, 1_000);
    addMetricDeltas(db, [rows(5)], 3_000);
    addMetricDeltas(db, [rows(0)], 4_000);
    [series] = readMetricTotals(db);
    assert.equal(series.value, 5, "a zero never resets a total");
    assert.deepEqual(readMetricSamples(db, series.id, 0), [
      { ts: 1_000, value: 0 },
      { ts: 3_000, value: 5 },
    ]);
  });
});

Deno.test("addMetricDeltas() keys series by labels whatever their order", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [rows(5, { provider: "fake", timeframe: "1m" })], 1_000);
    addMetricDeltas(db, [rows(7, { timeframe: "1m", provider: "fake" })], 2_000);
    addMetricDeltas(db, [rows(1, { provider: "fake", timeframe: "5m" })], 2_000);
    const totals = readMetricTotals(db);
    assert.deepEqual(totals.map((t) => [t.labels, t.value]), [
      [{ provider: "fake", timeframe: "1m" }, 12],
      [{ provider: "fake", timeframe: "5m" }, 1],
    ]);
  });
});

Deno.test("addMetricDeltas() from two connections (two processes) sums, and the total never falls", async () => {
  await withDb((db, dir) => {
    const other = openDatabase(join(dir, META_FILE));
    try {
      let previous = 0;
      for (let i = 1; i <= 20; i++) {
        addMetricDeltas(i % 2 === 0 ? db : other, [rows(i)], i * 100);
        const total = readMetricTotals(i % 3 === 0 ? db : other)[0].value;
        assert.ok(total >= previous, `total went from ${previous} to ${total}`);
        previous = total;
      }
      assert.equal(previous, 210);
      const samples = readMetricSamples(db, readMetricTotals(db)[0].id, 0).map((s) => s.value);
      assert.deepEqual(samples, samples.toSorted((a, b) => a - b));
    } finally {
      other.close();
    }
  });
});

Deno.test("addMetricDeltas() writes all deltas of a flush or none", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [rows(10)], 1_000);
    const bad = {
      ...rows(5, { provider: "fake", timeframe: "5m" }),
      kind: "gauge",
    } as unknown as SeriesValue;
    assert.throws(() => addMetricDeltas(db, [rows(3), bad], 2_000), /CHECK constraint/);
    assert.deepEqual(readMetricTotals(db).map((t) => t.value), [10]);
    assert.equal(readMetricSamples(db, readMetricTotals(db)[0].id, 0).length, 1);
    // The connection is usable afterwards (the transaction was rolled back).
    addMetricDeltas(db, [rows(3)], 3_000);
    assert.deepEqual(readMetricTotals(db).map((t) => t.value), [13]);
  });
});

Deno.test("readMetricTotals() gives histogram parts their family name", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [
      latency("_bucket", 2, "0.5"),
      latency("_bucket", 3, "+Inf"),
      latency("_sum", 1.25),
      latency("_count", 3),
    ], 1_000);
    const totals = readMetricTotals(db);
    assert.deepEqual(
      totals.map((t) => [t.name, t.family, t.kind]),
      [
        ["mp_request_latency_seconds_bucket", "mp_request_latency_seconds", "histogram"],
        ["mp_request_latency_seconds_bucket", "mp_request_latency_seconds", "histogram"],
        ["mp_request_latency_seconds_count", "mp_request_latency_seconds", "histogram"],
        ["mp_request_latency_seconds_sum", "mp_request_latency_seconds", "histogram"],
      ],
    );
    assert.equal(totals.find((t) => t.name.endsWith("_sum"))!.value, 1.25);
    assert.deepEqual(
      totals.filter((t) => t.name.endsWith("_bucket")).map((t) => t.labels.le).sort(),
      ["+Inf", "0.5"],
    );
  });
});

Deno.test("sampleAtOrBefore() finds the last total at or before a time", async () => {
  await withDb((db) => {
    addMetricDeltas(db, [rows(1)], 1_000);
    addMetricDeltas(db, [rows(2)], 2_000);
    const id = readMetricTotals(db)[0].id;
    assert.equal(sampleAtOrBefore(db, id, 999), undefined);
    assert.deepEqual(sampleAtOrBefore(db, id, 1_000), { ts: 1_000, value: 1 });
    assert.deepEqual(sampleAtOrBefore(db, id, 1_999), { ts: 1_000, value: 1 });
    assert.deepEqual(sampleAtOrBefore(db, id, 5_000), { ts: 2_000, value: 3 });
  });
});

Deno.test("pruneMetricSamples() deletes old history but keeps the totals", async () => {
  await withDb((db) => {
    for (let i = 1; i <= 10; i++) addMetricDeltas(db, [rows(10)], i * 1_000);
    const id = readMetricTotals(db)[0].id;
    assert.equal(pruneMetricSamples(db, 6_000), 4);
    assert.equal(readMetricTotals(db)[0].value, 100);
    // What is left: the last sample before the cutoff (the baseline) and everything after.
    assert.deepEqual(
      readMetricSamples(db, id, 0).map((s) => s.ts),
      [5_000, 6_000, 7_000, 8_000, 9_000, 10_000],
    );
  });
});

Deno.test("pruneMetricSamples() keeps the baseline a later history window starts from", async () => {
  await withDb((db) => {
    // A counter that last changed long ago, then once inside the window that is kept.
    addMetricDeltas(db, [rows(1_000)], 1_000);
    addMetricDeltas(db, [rows(10)], 9_000);
    const id = readMetricTotals(db)[0].id;
    pruneMetricSamples(db, 5_000);
    // A window starting after the cutoff must still see 1,000 as the value at its start,
    // otherwise its increase would be reported as 1,010 instead of 10.
    assert.deepEqual(sampleAtOrBefore(db, id, 6_000), { ts: 1_000, value: 1_000 });
    assert.equal(readMetricSamples(db, id, 6_000).at(-1)!.value - 1_000, 10);
    // Pruning again changes nothing; only samples before the baseline ever go.
    assert.equal(pruneMetricSamples(db, 5_000), 0);
    addMetricDeltas(db, [rows(5)], 10_000);
    pruneMetricSamples(db, 9_500);
    assert.deepEqual(
      readMetricSamples(db, id, 0),
      [{ ts: 9_000, value: 1_010 }, { ts: 10_000, value: 1_015 }],
    );
  });
});

Deno.test("recordFreshness() keeps the newest bar time per symbol and timeframe", async () => {
  await withDb((db) => {
    recordFreshness(db, [
      { symbol: "AAPL", timeframe: "1m", lastTs: 5_000 },
      { symbol: "AAPL", timeframe: "5m", lastTs: 4_000 },
    ], 100);
    recordFreshness(db, [{ symbol: "AAPL", timeframe: "1m", lastTs: 3_000 }], 200);
    recordFreshness(db, [{ symbol: "AAPL", timeframe: "5m", lastTs: 9_000 }], 300);
    const fresh = readFreshness(db, 10);
    const of = (timeframe: string) => fresh.find((f) => f.timeframe === timeframe)!.lastTs;
    assert.equal(of("1m"), 5_000, "an older backfill does not move freshness back");
    assert.equal(of("5m"), 9_000);
  });
});

Deno.test("readFreshness() returns at most the cap, most recently updated first", async () => {
  await withDb((db) => {
    for (let i = 0; i < 50; i++) {
      recordFreshness(db, [{ symbol: `S${i}`, timeframe: "1m", lastTs: i }], 1_000 + i);
    }
    const top = readFreshness(db, 3);
    assert.deepEqual(top.map((f) => f.symbol), ["S49", "S48", "S47"]);
    assert.equal(readFreshness(db, 1_000).length, 50);
    assert.deepEqual(readFreshness(db, 0), []);
  });
});

Deno.test("readFreshnessSummary() counts series and finds the oldest and newest per timeframe", async () => {
  await withDb((db) => {
    assert.deepEqual(readFreshnessSummary(db), []);
    for (let i = 0; i < 2_000; i++) {
      recordFreshness(db, [{ symbol: `S${i}`, timeframe: "1m", lastTs: 10_000 + i }], i);
    }
    recordFreshness(db, [
      { symbol: "AAPL", timeframe: "1d", lastTs: 7_000 },
      { symbol: "MSFT", timeframe: "1d", lastTs: 9_000 },
    ], 5);
    assert.deepEqual(readFreshnessSummary(db), [
      { timeframe: "1d", series: 2, oldestLastTs: 7_000, newestLastTs: 9_000 },
      { timeframe: "1m", series: 2_000, oldestLastTs: 10_000, newestLastTs: 11_999 },
    ]);
  });
});

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

Deno.test("countRunningJobs() counts jobs in the running state only", async () => {
  await withDb((_, dir) => {
    // MetaStore closes its connection, so it gets its own.
    const db = openDatabase(join(dir, META_FILE));
    const meta = new MetaStore(db, { command: "test" });
    try {
      assert.equal(countRunningJobs(db), 0);
      const task = { symbol: "AAPL", start: "2024-03-04", end: "2024-03-04", days: 1 };
      const a = meta.createJob(SPEC, "a", [task]);
      const b = meta.createJob(SPEC, "b", [task]);
      assert.equal(countRunningJobs(db), 0, "pending is not running");
      meta.claimJob(a.id);
      meta.claimJob(b.id);
      assert.equal(countRunningJobs(db), 2);
      meta.finishJob(a.id, "succeeded");
      assert.equal(countRunningJobs(db), 1);
    } finally {
      meta.close();
    }
  });
});
