import assert from "node:assert/strict";
import { ProviderError } from "../core/provider.ts";
import {
  assertSameBars,
  createIexMock,
  createMarket,
  expectedBars,
  IEX_MOCK_TOKEN,
  startMockServer,
} from "../tests/mocks/mod.ts";
import { iex, iexFactory, iexInfo } from "./iex.ts";

async function withIex(
  fn: (ctx: {
    mock: ReturnType<typeof createIexMock>;
    server: ReturnType<typeof startMockServer>;
    provider: (token?: string) => ReturnType<typeof iex>;
  }) => Promise<void>,
) {
  const mock = createIexMock({
    market: createMarket({ splits: { IBM: { date: "2024-03-11", ratio: 3 } } }),
  });
  const server = startMockServer({ iex: mock });
  try {
    await fn({
      mock,
      server,
      provider: (token = IEX_MOCK_TOKEN) =>
        iex({ token, baseUrl: `${server.base("iex")}/stable`, rateLimit: 60_000, baseDelayMs: 1 }),
    });
  } finally {
    await server.close();
  }
}

Deno.test("iex() reads New York wall-clock minutes across DST and skips minutes without trades", async () => {
  await withIex(async ({ mock, server, provider }) => {
    for (const feed of ["sip", "iex"]) {
      const bars = await provider().fetchBars({
        symbols: ["IBM"],
        timeframe: "1m",
        start: "2024-03-08",
        end: "2024-03-11",
        feed,
      });
      const served = [...mock.served].filter(([key]) => key.startsWith(`${feed}|`)).map(([, b]) =>
        b
      );
      assertSameBars(
        bars,
        expectedBars(served, { provider: "iex", feed, adjustment: "raw", timeframe: "1m" }),
      );
      // 09:30 New York is 14:30Z in winter and 13:30Z in summer.
      assert.equal(
        bars.find((b) => b.tradingDate === "2024-03-08")!.ts >= Date.parse("2024-03-08T14:30:00Z"),
        true,
      );
      assert.equal(
        bars.find((b) => b.tradingDate === "2024-03-11")!.ts < Date.parse("2024-03-11T14:30:00Z"),
        true,
      );
      assert.ok(bars.every((b) => b.session === "regular"));
    }
    const iexOnly = server.requests.filter((r) => r.query.token === IEX_MOCK_TOKEN);
    assert.deepEqual(iexOnly.slice(0, 2).map((r) => r.path), [
      "/stable/stock/IBM/chart/date/20240308",
      "/stable/stock/IBM/chart/date/20240311",
    ]);
  });
});

Deno.test("iex() reads daily rows raw (u* fields) or split-adjusted", async () => {
  await withIex(async ({ server, provider }) => {
    const request = {
      symbols: ["IBM"],
      timeframe: "1d" as const,
      start: "2024-03-08",
      end: "2024-03-08",
    };
    const [raw] = await provider().fetchBars({ ...request, adjustment: "raw" });
    const [split] = await provider().fetchBars({ ...request, adjustment: "split" });
    assert.equal(server.requests[0].query.chartByDay, "true");
    assert.equal(raw.ts, Date.parse("2024-03-08T05:00:00Z"));
    assert.equal(split.close, Math.round((raw.close / 3) * 10_000) / 10_000);
  });
});

Deno.test("iex() answers an unknown symbol with no bars and stops asking for it", async () => {
  await withIex(async ({ server, provider }) => {
    const bars = await provider().fetchBars({
      symbols: ["ZZZZ"],
      timeframe: "1m",
      start: "2024-03-04",
      end: "2024-03-08",
    });
    assert.deepEqual(bars, []);
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("iex() fails fast on a refused token with a plain-text body", async () => {
  await withIex(async ({ server, provider }) => {
    const bad = provider("pk_wrongtoken000000000000001");
    const error = await bad.fetchBars({
      symbols: ["IBM"],
      timeframe: "1m",
      start: "2024-03-04",
      end: "2024-03-05",
    })
      .catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(
      error.message,
      'Cannot fetch /iex/stable/stock/IBM/chart/date/20240304 from "iex": HTTP 403 "The API key provided is not valid.": the token was refused: check IEX_TOKEN',
    );
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("iexFactory says the service is retired and needs IEX_BASE_URL", () => {
  assert.equal(iexInfo.status, "retired");
  assert.match(iexInfo.notes!, /2024-08-31/);
  assert.throws(() => iexFactory.check!({ env: { IEX_TOKEN: "t" }, params: {} }), {
    name: "UsageError",
    message: /needs IEX_BASE_URL: IEX Cloud shut down on 2024-08-31/,
  });
  assert.throws(
    () =>
      iexFactory.check!({ env: { IEX_TOKEN: "t", IEX_BASE_URL: "http://x/stable" }, params: {} }, {
        timeframe: "1d",
        feed: "iex",
        adjustment: "raw",
      }),
    /use --feed sip/,
  );
});
