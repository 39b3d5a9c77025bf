import assert from "node:assert/strict";
import { ProviderError } from "../core/provider.ts";
import {
  assertSameBars,
  createFinnhubMock,
  createMarket,
  expectedBars,
  FINNHUB_MOCK_FREE_KEY,
  FINNHUB_MOCK_KEY,
  type FinnhubMockOptions,
  startMockServer,
} from "../tests/mocks/mod.ts";
import { finnhub, finnhubFactory } from "./finnhub.ts";

async function withFinnhub(
  options: Omit<FinnhubMockOptions, "market">,
  fn: (ctx: {
    mock: ReturnType<typeof createFinnhubMock>;
    server: ReturnType<typeof startMockServer>;
    provider: (token?: string) => ReturnType<typeof finnhub>;
  }) => Promise<void>,
) {
  const mock = createFinnhubMock({
    rateLimits: [{ limit: 1_000, windowMs: 1_000 }],
    ...options,
    market: createMarket(),
  });
  const server = startMockServer({ finnhub: mock });
  try {
    await fn({
      mock,
      server,
      provider: (token = FINNHUB_MOCK_KEY) =>
        finnhub({
          token,
          baseUrl: `${server.base("finnhub")}/api/v1`,
          rateLimit: 60_000,
          baseDelayMs: 1,
        }),
    });
  } finally {
    await server.close();
  }
}

Deno.test("finnhub() splits intraday ranges into windows under a month and maps column arrays", async () => {
  await withFinnhub({}, async ({ mock, server, provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["AAPL"],
      timeframe: "1m",
      start: "2024-03-01",
      end: "2024-04-10",
    });
    // Candles carry no VWAP or trade count.
    const served = [...mock.served.values()].map((b) => ({ ...b, vwap: null, tradeCount: null }));
    assertSameBars(
      bars,
      expectedBars(served, {
        provider: "finnhub",
        feed: "sip",
        adjustment: "raw",
        timeframe: "1m",
      }),
    );
    assert.equal(bars[0].tradingDate, "2024-03-01");
    assert.equal(bars.at(-1)!.tradingDate, "2024-04-10");
    assert.equal(server.requests.length, 2);
    const [first, second] = server.requests.map((r) => r.query);
    assert.deepEqual(first, {
      symbol: "AAPL",
      resolution: "1",
      from: String(Date.parse("2024-03-01T05:00:00Z") / 1000),
      to: String(Date.parse("2024-03-29T04:00:00Z") / 1000 - 1),
    });
    assert.equal(second.from, String(Date.parse("2024-03-29T04:00:00Z") / 1000));
    // The key travels in a header, never in the URL.
    assert.equal(server.requests[0].headers["x-finnhub-token"], FINNHUB_MOCK_KEY);
    assert.equal(server.requests[0].query.token, undefined);
  });
});

Deno.test("finnhub() reads daily candles stamped at either midnight as their trading date", async () => {
  for (const dailyAtUtcMidnight of [false, true]) {
    await withFinnhub({ dailyAtUtcMidnight }, async ({ provider }) => {
      const bars = await provider().fetchBars({
        symbols: ["AAPL"],
        timeframe: "1d",
        start: "2024-03-07",
        end: "2024-03-12",
        adjustment: "split",
      });
      assert.deepEqual(bars.map((b) => b.tradingDate), [
        "2024-03-07",
        "2024-03-08",
        "2024-03-11",
        "2024-03-12",
      ]);
      assert.equal(bars[2].ts, Date.parse("2024-03-11T04:00:00Z"));
      assert.equal(bars[0].adjustment, "split");
    });
  }
});

Deno.test("finnhub() reads no_data as no bars", async () => {
  await withFinnhub({}, async ({ provider }) => {
    assert.deepEqual(
      await provider().fetchBars({
        symbols: ["ZZZZ"],
        timeframe: "5m",
        start: "2024-03-04",
        end: "2024-03-05",
      }),
      [],
    );
  });
});

Deno.test("finnhub() explains the 403 of a free key once and sends nothing more", async () => {
  await withFinnhub({}, async ({ server, provider }) => {
    const free = provider(FINNHUB_MOCK_FREE_KEY);
    const request = {
      symbols: ["AAPL"],
      timeframe: "1m" as const,
      start: "2024-03-04",
      end: "2024-03-04",
    };
    const error = await free.fetchBars(request).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 403);
    assert.match(
      error.message,
      /HTTP 403 "You don't have access to this resource.": stock candles are a premium/,
    );
    await assert.rejects(free.fetchBars(request));
    assert.equal(server.requests.length, 1);
    const none = await provider("").fetchBars(request).catch((e) => e);
    assert.equal(none.status, 401);
    assert.match(none.message, /check FINNHUB_TOKEN/);
  });
});

Deno.test("finnhubFactory refuses adjustments Finnhub does not serve before anything runs", () => {
  const settings = { env: { FINNHUB_TOKEN: "t" }, params: {} };
  finnhubFactory.check!(settings, { timeframe: "1m", feed: "sip", adjustment: "raw" });
  assert.throws(
    () => finnhubFactory.check!(settings, { timeframe: "1d", feed: "sip", adjustment: "raw" }),
    { name: "UsageError", message: /daily bars split-adjusted only: use --adjustment split/ },
  );
  assert.throws(
    () => finnhubFactory.check!(settings, { timeframe: "5m", feed: "sip", adjustment: "split" }),
    { name: "UsageError", message: /intraday bars unadjusted only/ },
  );
  assert.throws(() => finnhubFactory.check!({ env: {}, params: {} }), /set FINNHUB_TOKEN/);
});
