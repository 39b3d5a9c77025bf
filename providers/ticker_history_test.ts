import assert from "node:assert/strict";
import type { FetchRequest, Provider } from "../core/provider.ts";
import type { Bar } from "../core/types.ts";
import { fake } from "./fake.ts";
import {
  servesHistoricalTickers,
  type TickerSegment,
  withTickerHistory,
} from "./ticker_history.ts";

/** A provider that records requests and delegates to the fake one. */
function recording(maxSymbolsPerRequest?: number) {
  const inner = fake({ seed: 7, gapRate: 0, now: () => Date.parse("2030-01-01T00:00:00Z") });
  const requests: FetchRequest[] = [];
  const provider: Provider = {
    name: "fake",
    maxSymbolsPerRequest,
    fetchBars: (request, options) => {
      requests.push(request);
      return inner.fetchBars(request, options);
    },
  };
  return { provider, requests, inner };
}

const SEGMENTS: Record<string, TickerSegment[]> = {
  META: [
    { ticker: "FB", start: "2022-06-01", end: "2022-06-08" },
    { ticker: "META", start: "2022-06-09", end: "2022-06-15" },
  ],
};

function segments(symbol: string, start: string, end: string): TickerSegment[] {
  return SEGMENTS[symbol] ?? [{ ticker: symbol, start, end }];
}

function sortedBySymbolTs(bars: Bar[]): boolean {
  return bars.every((b, i) =>
    i === 0 || bars[i - 1].symbol < b.symbol ||
    (bars[i - 1].symbol === b.symbol && bars[i - 1].ts < b.ts)
  );
}

Deno.test("withTickerHistory() fetches dates before a rename under the old ticker and relabels", async () => {
  const { provider, requests, inner } = recording(100);
  const wrapped = withTickerHistory(provider, segments);
  assert.equal(wrapped.name, "fake");
  assert.equal(wrapped.maxSymbolsPerRequest, 100);
  const request: FetchRequest = {
    symbols: ["META", "AAPL", "MSFT"],
    timeframe: "1d",
    start: "2022-06-01",
    end: "2022-06-15",
  };
  const bars = await wrapped.fetchBars(request);
  // AAPL and MSFT go out together as before; META one segment per request.
  assert.deepEqual(requests.map((r) => [r.symbols, r.start, r.end]), [
    [["AAPL", "MSFT"], "2022-06-01", "2022-06-15"],
    [["FB"], "2022-06-01", "2022-06-08"],
    [["META"], "2022-06-09", "2022-06-15"],
  ]);
  assert.ok(sortedBySymbolTs(bars));
  const meta = bars.filter((b) => b.symbol === "META");
  assert.equal(meta.length, 11); // trading days 2022-06-01..15
  assert.ok(!bars.some((b) => b.symbol === "FB"));
  const fbDirect = await inner.fetchBars({ ...request, symbols: ["FB"], end: "2022-06-08" });
  const metaDirect = await inner.fetchBars({ ...request, symbols: ["META"], start: "2022-06-09" });
  assert.deepEqual(
    meta.map((b) => b.close),
    [...fbDirect, ...metaDirect].map((b) => b.close),
  );
  assert.deepEqual(meta.slice(0, fbDirect.length), fbDirect.map((b) => ({ ...b, symbol: "META" })));
});

Deno.test("withTickerHistory() leaves a request without renamed symbols unchanged", async () => {
  const { provider, requests, inner } = recording();
  const request: FetchRequest = {
    symbols: ["SPY", "AAPL"],
    timeframe: "5m",
    start: "2024-03-04",
    end: "2024-03-05",
  };
  const bars = await withTickerHistory(provider, segments).fetchBars(request);
  assert.equal(requests.length, 1);
  assert.deepEqual(bars, await inner.fetchBars(request));
});

Deno.test("withTickerHistory() clips segments to the request and fills uncovered dates with the symbol", async () => {
  const { provider, requests } = recording();
  const wrapped = withTickerHistory(provider, () => [
    { ticker: "FB", start: "2012-05-18", end: "2022-06-08" },
    { ticker: "META", start: "2022-06-09", end: "2022-06-09" },
  ]);
  const bars = await wrapped.fetchBars({
    symbols: ["META"],
    timeframe: "1d",
    start: "2022-06-07",
    end: "2022-06-13",
  });
  assert.deepEqual(requests.map((r) => [r.symbols[0], r.start, r.end]), [
    ["FB", "2022-06-07", "2022-06-08"],
    ["META", "2022-06-09", "2022-06-13"],
  ]);
  assert.deepEqual(bars.map((b) => b.tradingDate), [
    "2022-06-07",
    "2022-06-08",
    "2022-06-09",
    "2022-06-10",
    "2022-06-13",
  ]);
  assert.ok(bars.every((b) => b.symbol === "META"));
});

Deno.test("withTickerHistory() refuses overlapping segments", async () => {
  const { provider } = recording();
  const wrapped = withTickerHistory(provider, () => [
    { ticker: "FB", start: "2022-06-01", end: "2022-06-09" },
    { ticker: "META", start: "2022-06-09", end: "2022-06-15" },
  ]);
  await assert.rejects(
    () =>
      wrapped.fetchBars({
        symbols: ["META"],
        timeframe: "1d",
        start: "2022-06-01",
        end: "2022-06-15",
      }),
    /Invalid ticker segments of "META": META from 2022-06-09 overlaps/,
  );
});

Deno.test("servesHistoricalTickers() is true for polygon and fake only", () => {
  assert.deepEqual(
    ["polygon", "fake", "alpaca", "finnhub", "iex"].map(servesHistoricalTickers),
    [true, true, false, false, false],
  );
});
