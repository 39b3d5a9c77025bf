/**
 * Issue 5 review fixes: coverage of aggregated timeframes judged by the regular session as
 * `marketpipe gaps` does, web jobs that aggregate like `ingest --aggregate`, and API edge cases.
 */
import assert from "node:assert/strict";
import { buildIngestRequest } from "../providers/ingest_request.ts";
import { ingest } from "../core/ingest.ts";
import { generateFakeDay } from "../providers/mod.ts";
import { aggregateIngested, openStore } from "../storage/mod.ts";
import { errorOf, jsonOf, startServe, testServer, waitUntil } from "./web_fixture.ts";

const WEEK = { start: "2024-03-04", end: "2024-03-08" } as const;
const WEEK_DAYS = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"];

/** A fake 1m ingest of `symbols` over WEEK, then (optionally) the CLI's roll-up. */
async function ingestWeek(
  dir: string,
  symbols: string,
  options: { gapRate?: string; aggregate?: boolean } = {},
): Promise<void> {
  const prepared = await buildIngestRequest({
    symbols,
    ...WEEK,
    "fake-gap-rate": options.gapRate,
  });
  const store = await openStore(dir, { command: "test" });
  try {
    const provider = prepared.factory.create({ env: {}, params: prepared.request.params });
    const summary = await ingest({ provider, store }, prepared.request);
    assert.equal(summary.status, "succeeded");
    if (options.aggregate) await aggregateIngested(store, summary.job!);
  } finally {
    store.close();
  }
}

interface CoverageBody {
  timeframe: string;
  days: { date: string; status: string; bars: number; regular: number; expected: number }[];
}

Deno.test("coverage counts aggregated timeframes from their stored bars", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-cov-" });
  await ingestWeek(dir, "AAPL", { aggregate: true });
  const server = await testServer(dir);
  try {
    const get = (path: string) => server.app.request(path);
    const five = await jsonOf<CoverageBody>(
      await get("/api/coverage?symbol=AAPL&timeframe=5m&start=2024-03-01&end=2024-03-05"),
    );
    assert.deepEqual(five.days.map((d) => [d.date, d.status, d.expected]), [
      ["2024-03-01", "missing", 78],
      ["2024-03-02", "weekend", 0],
      ["2024-03-03", "weekend", 0],
      ["2024-03-04", "full", 78],
      ["2024-03-05", "full", 78],
    ]);
    assert.ok(five.days[4].bars >= 78, `5m bars of 2024-03-05: ${five.days[4].bars}`);
    const daily = await jsonOf<CoverageBody>(
      await get("/api/coverage?symbol=AAPL&timeframe=1d&start=2024-03-04&end=2024-03-08"),
    );
    assert.deepEqual(daily.days.map((d) => [d.status, d.bars]), WEEK_DAYS.map(() => ["full", 1]));
    // Defaults come from the stored bars of the timeframe, not from ingest records.
    const defaults = await jsonOf<CoverageBody & { start: string; end: string }>(
      await get("/api/coverage?symbol=AAPL&timeframe=1h"),
    );
    assert.deepEqual([defaults.start, defaults.end], [WEEK.start, WEEK.end]);
    const symbol = await jsonOf<{ coverage: { timeframe: string; days_with_bars: number }[] }>(
      await get("/api/symbols/AAPL"),
    );
    assert.deepEqual(
      symbol.coverage.map((c) => [c.timeframe, c.days_with_bars]),
      ["1m", "5m", "15m", "30m", "1h", "4h", "1d"].map((tf) => [tf, 5]),
    );
    const page = await (await get("/symbols/AAPL?timeframe=5m&start=2024-03-04&end=2024-03-08"))
      .text();
    assert.match(page, /class="day full" title="2024-03-05: 78 of 78 regular-session bars/);
    assert.doesNotMatch(page, /class="day missing"[^>]*data-date="2024-03-05"/);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("coverage status compares regular-session bars with the session, as gaps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-cov-" });
  // Half the minutes missing: ~480 bars a day in all, ~195 of them regular.
  await ingestWeek(dir, "MSFT", { gapRate: "0.5" });
  const server = await testServer(dir);
  try {
    const body = await jsonOf<CoverageBody>(
      await server.app.request(
        `/api/coverage?symbol=MSFT&timeframe=1m&start=${WEEK.start}&end=${WEEK.end}`,
      ),
    );
    for (const day of body.days) {
      const bars = generateFakeDay("MSFT", day.date, { seed: 0, gapRate: 0.5 });
      const regular = bars.filter((bar) => bar.session === "regular").length;
      assert.equal(day.bars, bars.length);
      assert.equal(day.regular, regular);
      assert.equal(day.expected, 390);
      assert.ok(day.bars * 2 >= 390, "the old all-sessions rule would call it full");
      assert.equal(day.status, "partial", `${day.date}: ${regular} regular bars`);
    }
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("POST /api/jobs aggregates like ingest --aggregate, by default from config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-agg-" });
  const server = await testServer(dir, { ingestDefaults: { aggregate: true } });
  const app = server.app;
  const post = (body: unknown) =>
    app.request("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  const fiveMinuteBars = async (symbol: string) => {
    const response = await app.request(
      `/api/bars?symbol=${symbol}&timeframe=5m&start=${WEEK.start}&end=${WEEK.end}`,
    );
    if (response.status === 404 || response.status === 400) {
      await response.body?.cancel();
      return 0;
    }
    return (await jsonOf<{ bars: unknown[] }>(response)).bars.length;
  };
  const finish = async (id: string) => {
    await waitUntil(
      async () => {
        const job = await jsonOf<{ status: string; aggregating: boolean }>(
          await app.request(`/api/jobs/${id}`),
        );
        return job.status !== "running" && job.status !== "pending" && !job.aggregating &&
          !server.jobs.isRunningHere(id);
      },
      60_000,
      `job ${id} to finish`,
    );
  };
  try {
    const form = await (await app.request("/jobs")).text();
    assert.match(form, /<option value="true" selected>yes/);
    assert.match(
      (await errorOf(await post({ symbols: "AAPL", ...WEEK, aggregate: "maybe" }), 400)).message,
      /Invalid aggregate "maybe": expected true or false/,
    );
    assert.match(
      (await errorOf(
        await post({ symbols: "AAPL", ...WEEK, timeframe: "1d", aggregate: true }),
        400,
      )).message,
      /Cannot aggregate a 1d ingest/,
    );
    // The server's default (config aggregate: true).
    const started = await jsonOf<{ job: { id: string } }>(
      await post({ symbols: "AAPL", ...WEEK }),
      202,
    );
    await finish(started.job.id);
    assert.equal(await fiveMinuteBars("AAPL"), 5 * 192); // 04:00-20:00 in 5m buckets
    // An explicit false wins over the default.
    const plain = await jsonOf<{ job: { id: string } }>(
      await post({ symbols: "MSFT", ...WEEK, aggregate: false }),
      202,
    );
    await finish(plain.job.id);
    assert.equal(await fiveMinuteBars("MSFT"), 0);
    const spec = await jsonOf<{
      components: { schemas: { IngestRequest: { properties: Record<string, { type: string }> } } };
    }>(await app.request("/api/openapi.json"));
    assert.equal(spec.components.schemas.IngestRequest.properties.aggregate.type, "boolean");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GET /api/bars refuses repeated parameters, unservable Accept, negative cursors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-bars-" });
  await ingestWeek(dir, "AAPL");
  const server = await testServer(dir);
  try {
    const get = (path: string, init?: RequestInit) => server.app.request(path, init);
    const repeated = await errorOf(await get("/api/bars?symbol=AAPL&symbol=MSFT"), 400);
    assert.match(repeated.message, /Repeated parameter "symbol"/);
    const xml = await errorOf(
      await get("/api/bars?symbol=AAPL", { headers: { Accept: "application/xml" } }),
      406,
    );
    assert.equal(xml.code, "not_acceptable");
    const wildcard = await get("/api/bars?symbol=AAPL&limit=1", {
      headers: { Accept: "text/html, application/xml;q=0.9, */*;q=0.8" },
    });
    assert.equal(wildcard.headers.get("content-type")?.startsWith("application/json"), true);
    await wildcard.body?.cancel();
    const negative = btoa("t:-5").replaceAll("=", "");
    const cursor = await errorOf(await get(`/api/bars?symbol=AAPL&cursor=${negative}`), 400);
    assert.match(cursor.message, /Invalid cursor/);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve prints no request.signal warning for chunked POST bodies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-signal-" });
  const serve = await startServe(["--data-dir", dir]);
  try {
    const chunks = ReadableStream.from([new TextEncoder().encode('{"sql": "SELECT 42 AS x"}')]);
    const response = await fetch(`${serve.url}/api/query`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: chunks,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.deepEqual((await response.json()).rows, [[42]]);
    const health = await fetch(`${serve.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    serve.child.kill("SIGTERM");
    await serve.finished;
    await Deno.remove(dir, { recursive: true });
  }
  assert.doesNotMatch(serve.stderr(), /request\.signal|legacy behavior/);
});
