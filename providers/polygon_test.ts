import assert from "node:assert/strict";
import { ProviderError } from "../core/provider.ts";
import {
  assertSameBars,
  createMarket,
  createPolygonMock,
  expectedBars,
  POLYGON_MOCK_FREE_KEY,
  POLYGON_MOCK_KEY,
  type PolygonMockOptions,
  type startMockServer,
  withMockServer,
} from "../tests/mocks/mod.ts";
import { polygon, polygonFactory } from "./polygon.ts";

async function withPolygon(
  options: Omit<PolygonMockOptions, "market">,
  fn: (ctx: {
    mock: ReturnType<typeof createPolygonMock>;
    server: ReturnType<typeof startMockServer>;
    provider: (apiKey?: string, rateLimit?: number) => ReturnType<typeof polygon>;
  }) => Promise<void>,
) {
  const mock = createPolygonMock({
    rateLimit: { limit: 1_000, windowMs: 1_000 },
    ...options,
    market: createMarket({ splits: { SPY: { date: "2024-03-20", ratio: 2 } } }),
  });
  await withMockServer({ polygon: mock }, (server) =>
    fn({
      mock,
      server,
      provider: (apiKey = POLYGON_MOCK_KEY, rateLimit = 60_000) =>
        polygon({ apiKey, baseUrl: server.base("polygon"), rateLimit, baseDelayMs: 1 }),
    }));
}

Deno.test("polygon() follows next_url on the configured host and appends the key again", async () => {
  await withPolygon({}, async ({ mock, server, provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["SPY", "QQQ"],
      timeframe: "1m",
      start: "2024-03-08",
      end: "2024-03-12",
      pageSize: 1_000,
    });
    const expected = expectedBars(mock.served.values(), {
      provider: "polygon",
      feed: "sip",
      adjustment: "raw",
      timeframe: "1m",
    });
    assert.ok(expected.length > 5_000);
    assertSameBars(bars, expected);
    const requests = server.requests;
    assert.ok(requests.length >= 6, `${requests.length} pages`);
    // The first request of each symbol carries the parameters; the next_url ones a cursor.
    assert.deepEqual(requests[0].query, {
      adjusted: "false",
      sort: "asc",
      limit: "1000",
      apiKey: POLYGON_MOCK_KEY,
    });
    assert.equal(
      requests[0].path,
      `/v2/aggs/ticker/QQQ/range/1/minute/${Date.parse("2024-03-08T05:00:00Z")}/${
        Date.parse("2024-03-13T04:00:00Z") - 1
      }`,
    );
    const followed = requests.filter((r) => r.query.cursor !== undefined);
    assert.ok(followed.length >= 4);
    assert.ok(followed.every((r) => r.query.apiKey === POLYGON_MOCK_KEY), "key re-appended");
  });
});

Deno.test("polygon() daily bars: ms timestamps at New York midnight, adjusted flag, missing n/vw", async () => {
  await withPolygon({}, async ({ server, provider }) => {
    const request = {
      symbols: ["SPY"],
      timeframe: "1d" as const,
      start: "2024-03-07",
      end: "2024-04-02",
    };
    const raw = await provider().fetchBars(request);
    const split = await provider().fetchBars({ ...request, adjustment: "split" });
    assert.equal(server.requests[1].query.adjusted, "true");
    assert.equal(raw.length, 18);
    assert.ok(!raw.some((b) => b.tradingDate === "2024-03-29"), "Good Friday");
    assert.equal(
      raw.find((b) => b.tradingDate === "2024-03-11")!.ts,
      Date.parse("2024-03-11T04:00:00Z"),
    );
    const before = (bars: typeof raw) => bars.find((b) => b.tradingDate === "2024-03-19")!;
    assert.equal(before(split).close, Math.round((before(raw).close / 2) * 10_000) / 10_000);
    const old = await provider().fetchBars({ ...request, start: "2005-04-01", end: "2005-04-04" });
    assert.deepEqual(old.map((b) => [b.tradingDate, b.vwap, b.tradeCount]), [
      ["2005-04-01", null, null],
      ["2005-04-04", null, null],
    ]);
    assert.equal(old[0].ts, 1112331600000);
  });
});

Deno.test("polygon() reads answers without results (or with null results) as no bars", async () => {
  for (const legacyNullResults of [false, true]) {
    await withPolygon({ legacyNullResults }, async ({ provider }) => {
      assert.deepEqual(
        await provider().fetchBars({
          symbols: ["ZZZZ"],
          timeframe: "1m",
          start: "2024-03-04",
          end: "2024-03-04",
        }),
        [],
      );
    });
  }
});

Deno.test("polygon() fails fast on an unknown key and explains a plan without minute data", async () => {
  await withPolygon({}, async ({ server, provider }) => {
    const request = {
      symbols: ["SPY"],
      timeframe: "1m" as const,
      start: "2024-03-04",
      end: "2024-03-04",
    };
    const bad = provider("PGBADKEY000000000000000099");
    const error = await bad.fetchBars(request).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 401);
    assert.match(
      error.message,
      /HTTP 401 "Unknown API Key": the key was refused: check POLYGON_API_KEY/,
    );
    assert.ok(!error.message.includes("PGBADKEY"));
    await assert.rejects(bad.fetchBars(request));
    assert.equal(server.requests.length, 1);
    const free = await provider(POLYGON_MOCK_FREE_KEY).fetchBars(request).catch((e) => e);
    assert.equal(free.status, 403);
    assert.match(free.message, /not entitled/);
    assert.equal(
      (await provider(POLYGON_MOCK_FREE_KEY).fetchBars({ ...request, timeframe: "1d" })).length,
      1,
    );
  });
});

Deno.test("polygon() waits out the free plan's 429s and still returns every bar", async () => {
  await withPolygon({ rateLimit: { limit: 2, windowMs: 500 } }, async ({ mock, provider }) => {
    // The client allows 10 requests per second against the server's 4: it meets 429s without
    // hints, backs off at least one request interval each time, and finishes.
    const bars = await provider(POLYGON_MOCK_KEY, 600).fetchBars({
      symbols: ["A", "B", "C", "D", "E", "F"],
      timeframe: "1d",
      start: "2024-03-04",
      end: "2024-03-08",
    });
    assert.equal(bars.length, 30);
    assert.ok(mock.stats.tooMany >= 1);
  });
});

Deno.test("polygonFactory names POLYGON_API_KEY when it is missing", () => {
  assert.throws(() => polygonFactory.check!({ env: {}, params: {} }), {
    name: "UsageError",
    message: 'Missing credentials for provider "polygon": set POLYGON_API_KEY',
  });
});
