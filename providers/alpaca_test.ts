import assert from "node:assert/strict";
import { aggregateBars } from "../core/aggregate.ts";
import { zonedTime } from "../core/calendar.ts";
import { ProviderError } from "../core/provider.ts";
import {
  ALPACA_MOCK_KEY,
  ALPACA_MOCK_SECRET,
  assertSameBars,
  createAlpacaMock,
  createMarket,
  expectedBars,
  type MarketOptions,
  type startMockServer,
  withMockServer,
} from "../tests/mocks/mod.ts";
import type { AlpacaMockOptions } from "../tests/mocks/alpaca.ts";
import { alpaca, alpacaFactory } from "./alpaca.ts";

async function withAlpaca(
  options: { market?: MarketOptions; mock?: Omit<AlpacaMockOptions, "market"> },
  fn: (ctx: {
    mock: ReturnType<typeof createAlpacaMock>;
    server: ReturnType<typeof startMockServer>;
    provider: (extra?: Partial<Parameters<typeof alpaca>[0]>) => ReturnType<typeof alpaca>;
  }) => Promise<void>,
) {
  const mock = createAlpacaMock({ ...options.mock, market: createMarket(options.market) });
  await withMockServer({ alpaca: mock }, (server) =>
    fn({
      mock,
      server,
      provider: (extra = {}) =>
        alpaca({
          key: ALPACA_MOCK_KEY,
          secret: ALPACA_MOCK_SECRET,
          baseUrl: server.base("alpaca"),
          rateLimit: 60_000,
          baseDelayMs: 1,
          ...extra,
        }),
    }));
}

Deno.test("alpaca() pages a multi-symbol request to the end and returns exactly what was served", async () => {
  await withAlpaca(
    { mock: { shortPageEvery: 3, emptyFinalPage: true } },
    async ({ mock, server, provider }) => {
      const bars = await provider().fetchBars({
        symbols: ["MSFT", "AAPL", "NVDA", "AAPL"],
        timeframe: "1m",
        start: "2024-03-07",
        end: "2024-03-12", // across the switch to daylight time on 2024-03-10
        feed: "iex",
        pageSize: 1_000,
      });
      const expected = expectedBars(mock.served.values(), {
        provider: "alpaca",
        feed: "iex",
        adjustment: "raw",
        timeframe: "1m",
      });
      assert.ok(expected.length > 3_000);
      assertSameBars(bars, expected);
      assert.ok(mock.stats.emptyPages >= 1, "a token led to an empty final page");
      const requests = server.requests;
      assert.equal(requests.length, mock.stats.pages);
      const { page_token: _first, ...params } = requests[0].query;
      assert.deepEqual(params, {
        symbols: "AAPL,MSFT,NVDA",
        timeframe: "1Min",
        start: "2024-03-07T05:00:00Z",
        end: "2024-03-13T03:59:59Z",
        limit: "1000",
        adjustment: "raw",
        feed: "iex",
        sort: "asc",
      });
      for (const request of requests.slice(1)) {
        const { page_token, ...rest } = request.query;
        assert.ok(page_token, "later pages send the token");
        assert.deepEqual(rest, params, "all other parameters stay unchanged");
        assert.equal(request.headers["apca-api-key-id"], ALPACA_MOCK_KEY);
        assert.equal(request.headers["apca-api-secret-key"], ALPACA_MOCK_SECRET);
      }
      // Pre-market opens at 09:00Z in winter and 08:00Z once New York is on daylight time.
      const aapl = bars.filter((b) => b.symbol === "AAPL");
      assert.equal(
        aapl.find((b) => b.tradingDate === "2024-03-08")!.ts >= Date.parse("2024-03-08T09:00:00Z"),
        true,
      );
      assert.equal(
        aapl.find((b) => b.tradingDate === "2024-03-11")!.ts < Date.parse("2024-03-11T09:00:00Z"),
        true,
      );
    },
  );
});

Deno.test("alpaca() maps daily bars stamped at New York midnight to their trading date", async () => {
  await withAlpaca({}, async ({ provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["SPY"],
      timeframe: "1d",
      start: "2024-03-07",
      end: "2024-04-02", // Good Friday 2024-03-29 is a holiday
      feed: "sip",
    });
    const dates = bars.map((b) => b.tradingDate);
    assert.equal(dates.length, 18);
    assert.ok(!dates.includes("2024-03-29"));
    assert.equal(bars[0].ts, Date.parse("2024-03-07T05:00:00Z"));
    assert.equal(
      bars.find((b) => b.tradingDate === "2024-03-11")!.ts,
      Date.parse("2024-03-11T04:00:00Z"),
    );
    assert.ok(
      bars.every((b) => b.session === "regular" && b.timeframe === "1d" && b.feed === "sip"),
    );
  });
});

Deno.test("alpaca() rolls 1h bars up from 30m bars anchored at the 09:30 open", async () => {
  await withAlpaca({}, async ({ server, provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["AAPL"],
      timeframe: "1h",
      start: "2024-03-12",
      end: "2024-03-12",
      feed: "sip",
    });
    assert.equal(server.requests[0].query.timeframe, "30Min");
    const starts = bars.map((b) => new Date(b.ts).toISOString().slice(11, 16));
    // 04:00 ET is 08:00Z: 04:00-04:30, then hours from 04:30; regular hours from 09:30.
    assert.deepEqual(starts.slice(0, 3), ["08:00", "08:30", "09:30"]);
    assert.ok(starts.includes("13:30") && !starts.includes("13:00"));
    assert.equal(bars.length, 18);
    assert.deepEqual(bars.filter((b) => b.session === "regular").length, 7);
  });
});

Deno.test("alpaca() feeds and adjustments change what is served", async () => {
  const splits = { NVDA: { date: "2024-03-11", ratio: 10 } };
  await withAlpaca({ market: { splits } }, async ({ provider }) => {
    const request = {
      symbols: ["NVDA"],
      timeframe: "1m" as const,
      start: "2024-03-08",
      end: "2024-03-11",
    };
    const iex = await provider().fetchBars({ ...request, feed: "iex" });
    const sip = await provider().fetchBars({ ...request, feed: "sip" });
    assert.ok(iex.length < sip.length * 0.9, "IEX-only bars are sparser");
    const raw = await provider().fetchBars({ ...request, feed: "sip", adjustment: "raw" });
    const split = await provider().fetchBars({ ...request, feed: "sip", adjustment: "split" });
    const before = (bars: typeof raw) => bars.find((b) => b.tradingDate === "2024-03-08")!;
    const after = (bars: typeof raw) => bars.find((b) => b.tradingDate === "2024-03-11")!;
    assert.equal(before(split).open, Math.round((before(raw).open / 10) * 10_000) / 10_000);
    assert.equal(before(split).volume, before(raw).volume * 10);
    assert.equal(after(split).open, after(raw).open);
    assert.equal(split[0].adjustment, "split");
  });
});

Deno.test("alpaca() fails fast on bad credentials and says so, without retrying", async () => {
  await withAlpaca({}, async ({ server, provider }) => {
    const bad = provider({ secret: "WRONGSECRET000000000000000" });
    const request = {
      symbols: ["AAPL"],
      timeframe: "1m" as const,
      start: "2024-03-04",
      end: "2024-03-04",
    };
    const error = await bad.fetchBars(request).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 403);
    assert.equal(error.retriable, false);
    assert.match(
      error.message,
      /HTTP 403 "forbidden": bad credentials: .*ALPACA_KEY and ALPACA_SECRET/,
    );
    assert.ok(!error.message.includes("WRONGSECRET"));
    // Every later request of this provider fails the same way without reaching the server.
    await assert.rejects(bad.fetchBars(request), (e) => e === error);
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("alpaca() tells a missing SIP entitlement apart from bad credentials", async () => {
  const now = Date.parse("2024-03-15T19:00:00Z");
  await withAlpaca({ mock: { now: () => now } }, async ({ provider }) => {
    const client = provider();
    const today = {
      symbols: ["AAPL"],
      timeframe: "1m" as const,
      start: "2024-03-15",
      end: "2024-03-15",
    };
    const error = await client.fetchBars({ ...today, feed: "sip" }).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 403);
    assert.match(error.message, /subscription does not permit querying recent SIP data/);
    assert.match(
      error.message,
      /not entitled.*credentials are fine.*--feed iex or --feed delayed_sip/,
    );
    // Not fatal: the same client still serves other feeds.
    assert.ok((await client.fetchBars({ ...today, feed: "delayed_sip" })).length > 0);
  });
});

Deno.test("alpaca() returns no bars for a symbol the API does not know", async () => {
  await withAlpaca({}, async ({ provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["ZZZZ", "AAPL"],
      timeframe: "5m",
      start: "2024-03-04",
      end: "2024-03-04",
    });
    assert.ok(bars.length > 0);
    assert.ok(bars.every((b) => b.symbol === "AAPL"));
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
});

Deno.test("alpaca() stops when the server repeats a page token", async () => {
  const body = JSON.stringify({ bars: {}, next_page_token: "QUFQTHxNfDIwMjQ=" });
  let calls = 0;
  const provider = alpaca({
    key: "k",
    secret: "s",
    baseUrl: "http://mock.test",
    rateLimit: 60_000,
    fetch: (() => {
      calls++;
      return Promise.resolve(new Response(body));
    }) as typeof fetch,
  });
  await assert.rejects(
    provider.fetchBars({
      symbols: ["AAPL"],
      timeframe: "1m",
      start: "2024-03-04",
      end: "2024-03-04",
    }),
    /repeated a next_page_token/,
  );
  assert.equal(calls, 2);
});

Deno.test("alpacaFactory accepts both env var spellings and refuses missing ones", () => {
  const env = { APCA_API_KEY_ID: "a", APCA_API_SECRET_KEY: "b" };
  alpacaFactory.check!({ env, params: {} });
  assert.equal(
    alpacaFactory.create({ env: { ALPACA_KEY: "a", ALPACA_SECRET: "b" }, params: {} })
      .maxSymbolsPerRequest,
    100,
  );
  assert.throws(() => alpacaFactory.check!({ env: { ALPACA_KEY: "a" }, params: {} }), {
    name: "UsageError",
    message:
      'Missing credentials for provider "alpaca": set ALPACA_SECRET (or APCA_API_SECRET_KEY)',
  });
  assert.throws(
    () => alpacaFactory.check!({ env: { ...env, ALPACA_BASE_URL: "ftp://x" }, params: {} }),
    {
      name: "UsageError",
    },
  );
});

Deno.test("1m bars from alpaca roll up to the same 5m bars as the mock's own 5Min bars", async () => {
  await withAlpaca({}, async ({ provider }) => {
    const request = { symbols: ["IBM"], start: "2024-03-04", end: "2024-03-04", feed: "sip" };
    const minutes = await provider().fetchBars({ ...request, timeframe: "1m" });
    const fives = await provider().fetchBars({ ...request, timeframe: "5m" });
    const rolled = aggregateBars(minutes, "5m");
    assert.equal(fives.length, rolled.length);
    assert.deepEqual(
      fives.map((b) => [b.ts, b.open, b.high, b.low, b.close, b.volume]),
      rolled.map((b) => [b.ts, b.open, b.high, b.low, b.close, b.volume]),
    );
    assert.equal(fives[0].ts, zonedTime("2024-03-04", "04:00"));
  });
});

Deno.test("the Alpaca mock answers like the API: single endpoint, 422 bodies, rate headers", async () => {
  await withAlpaca({}, async ({ server }) => {
    const headers = {
      "APCA-API-KEY-ID": ALPACA_MOCK_KEY,
      "APCA-API-SECRET-KEY": ALPACA_MOCK_SECRET,
    };
    const get = async (path: string) => {
      const response = await fetch(`${server.base("alpaca")}${path}`, { headers });
      return { status: response.status, headers: response.headers, body: await response.json() };
    };
    const single = await get(
      "/v2/stocks/AAPL/bars?timeframe=1Day&start=2024-03-04&end=2024-03-06&feed=sip",
    );
    assert.equal(single.status, 200);
    assert.equal(single.body.symbol, "AAPL");
    assert.deepEqual(single.body.bars.map((b: { t: string }) => b.t), [
      "2024-03-04T05:00:00Z",
      "2024-03-05T05:00:00Z",
    ]);
    assert.equal(single.body.next_page_token, null);
    assert.equal(single.headers.get("X-Ratelimit-Limit"), "200");
    assert.equal(single.headers.get("X-Ratelimit-Remaining"), "199");
    const empty = await get("/v2/stocks/ZZZZ/bars?timeframe=1Min&start=2024-03-04&end=2024-03-04");
    assert.deepEqual(empty.body, { bars: null, symbol: "ZZZZ", next_page_token: null });
    assert.deepEqual((await get("/v2/stocks/bars?symbols=AAPL&timeframe=60Min")).body, {
      code: 42210000,
      message: "invalid timeframe",
    });
    assert.equal(
      (await get("/v2/stocks/bars?symbols=AAPL&timeframe=1Min&limit=10001")).status,
      422,
    );
    const backwards = await get(
      "/v2/stocks/bars?symbols=AAPL&timeframe=1Min&start=2024-03-05&end=2024-03-04",
    );
    assert.deepEqual(backwards.body.message, "end should not be before start");
    const unauthorized = await fetch(
      `${server.base("alpaca")}/v2/stocks/bars?symbols=AAPL&timeframe=1Min`,
    );
    assert.equal(unauthorized.status, 403);
    assert.deepEqual(await unauthorized.json(), { message: "forbidden" });
  });
});

Deno.test("alpacaFactory takes the SDK's APCA_API_DATA_URL, and ALPACA_BASE_URL wins over it", async () => {
  await withAlpaca({}, async ({ server }) => {
    const credentials = { ALPACA_KEY: ALPACA_MOCK_KEY, ALPACA_SECRET: ALPACA_MOCK_SECRET };
    const request = {
      symbols: ["IBM"],
      timeframe: "1d" as const,
      start: "2024-03-04",
      end: "2024-03-05",
      feed: "iex",
    };
    // Only the SDK's variable: the bars come from the mock it points to.
    const viaSdk = alpacaFactory.create({
      env: { ...credentials, APCA_API_DATA_URL: server.base("alpaca") },
      params: {},
    });
    assert.equal((await viaSdk.fetchBars(request)).length, 2);
    // Both set: ALPACA_BASE_URL is used and the other is not even read.
    const both = {
      ...credentials,
      ALPACA_BASE_URL: server.base("alpaca"),
      APCA_API_DATA_URL: "ftp://not-used",
    };
    alpacaFactory.check!({ env: both, params: {} });
    assert.equal(
      (await alpacaFactory.create({ env: both, params: {} }).fetchBars(request)).length,
      2,
    );
  });
  const credentials = { ALPACA_KEY: "a", ALPACA_SECRET: "b" };
  // A bad value is reported under the name that was used.
  assert.throws(
    () =>
      alpacaFactory.check!({ env: { ...credentials, APCA_API_DATA_URL: "ftp://x" }, params: {} }),
    { name: "UsageError", message: 'Invalid APCA_API_DATA_URL "ftp://x": expected an http(s) URL' },
  );
  assert.throws(
    () =>
      alpacaFactory.check!({
        env: { ...credentials, ALPACA_BASE_URL: "nope", APCA_API_DATA_URL: "https://x" },
        params: {},
      }),
    { name: "UsageError", message: 'Invalid ALPACA_BASE_URL "nope": expected an http(s) URL' },
  );
});
