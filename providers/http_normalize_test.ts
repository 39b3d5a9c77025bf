import assert from "node:assert/strict";
import type { Bar } from "../core/types.ts";
import {
  checkRequest,
  createBarCollector,
  parseRfc3339,
  requestWindow,
  sortUniqueBars,
  sourceTimeframe,
} from "./http_normalize.ts";

const RAW = { open: 10, high: 11, low: 9, close: 10.5, volume: 100 };
const context = {
  provider: "p",
  feed: "sip",
  adjustment: "raw",
  start: "2024-03-08",
  end: "2024-03-11",
};

Deno.test("createBarCollector() labels sessions and trading dates from the calendar across DST", () => {
  const collector = createBarCollector({ ...context, timeframe: "1m" });
  collector.add("AAPL", Date.parse("2024-03-08T09:00:00Z"), RAW); // 04:00 EST: pre
  collector.add("AAPL", Date.parse("2024-03-08T14:30:00Z"), { ...RAW, vwap: 10.2, tradeCount: 7 });
  collector.add("AAPL", Date.parse("2024-03-11T13:30:00Z"), RAW); // 09:30 EDT: regular
  collector.add("AAPL", Date.parse("2024-03-11T20:00:00Z"), RAW); // 16:00 EDT: post
  const bars = collector.finish("1m");
  assert.deepEqual(bars.map((b) => [b.tradingDate, b.session]), [
    ["2024-03-08", "pre"],
    ["2024-03-08", "regular"],
    ["2024-03-11", "regular"],
    ["2024-03-11", "post"],
  ]);
  assert.deepEqual([bars[1].vwap, bars[1].tradeCount, bars[0].vwap], [10.2, 7, null]);
  assert.deepEqual([bars[0].provider, bars[0].feed, bars[0].adjustment], ["p", "sip", "raw"]);
});

Deno.test("createBarCollector() drops bars outside the dates, the sessions and trading days", () => {
  const collector = createBarCollector({ ...context, timeframe: "1m" });
  collector.add("AAPL", Date.parse("2024-03-07T15:00:00Z"), RAW); // before start
  collector.add("AAPL", Date.parse("2024-03-12T15:00:00Z"), RAW); // after end
  collector.add("AAPL", Date.parse("2024-03-08T08:59:00Z"), RAW); // 03:59 EST
  collector.add("AAPL", Date.parse("2024-03-09T15:00:00Z"), RAW); // Saturday
  collector.add("AAPL", Date.parse("2024-03-09T01:00:00Z"), RAW); // 20:00 EST Friday
  assert.equal(collector.dropped, 5);
  assert.deepEqual(collector.finish("1m"), []);
});

Deno.test("createBarCollector() stamps daily bars at New York midnight whatever midnight came in", () => {
  const collector = createBarCollector({ ...context, timeframe: "1d" });
  collector.add("A", Date.parse("2024-03-08T05:00:00Z"), RAW); // New York midnight, EST
  collector.add("B", Date.parse("2024-03-08T00:00:00Z"), RAW); // UTC midnight
  collector.add("C", Date.parse("2024-03-11T04:00:00Z"), RAW); // New York midnight, EDT
  collector.addDaily("D", "2024-03-10", RAW); // a Sunday: dropped
  const bars = collector.finish("1d");
  assert.deepEqual(bars.map((b) => [b.symbol, b.tradingDate, new Date(b.ts).toISOString()]), [
    ["A", "2024-03-08", "2024-03-08T05:00:00.000Z"],
    ["B", "2024-03-08", "2024-03-08T05:00:00.000Z"],
    ["C", "2024-03-11", "2024-03-11T04:00:00.000Z"],
  ]);
  assert.equal(collector.dropped, 1);
});

Deno.test("createBarCollector() refuses non-numeric fields and rolls 30m up to 1h", () => {
  const collector = createBarCollector({ ...context, timeframe: "30m" });
  assert.throws(
    () => collector.add("A", Date.parse("2024-03-08T15:00:00Z"), { ...RAW, close: Number.NaN }),
    TypeError,
  );
  collector.add("A", Date.parse("2024-03-08T14:30:00Z"), { ...RAW, high: 12 });
  collector.add("A", Date.parse("2024-03-08T15:00:00Z"), { ...RAW, low: 8, close: 9.5 });
  const [hour] = collector.finish("1h");
  assert.deepEqual(
    [hour.ts, hour.timeframe, hour.open, hour.high, hour.low, hour.close, hour.volume],
    [Date.parse("2024-03-08T14:30:00Z"), "1h", 10, 12, 8, 9.5, 200],
  );
});

Deno.test("sortUniqueBars() sorts by symbol then ts and keeps the last of duplicates", () => {
  const bar = (symbol: string, ts: number, close: number) => ({ symbol, ts, close }) as Bar;
  const out = sortUniqueBars([bar("B", 1, 1), bar("A", 2, 2), bar("A", 1, 3), bar("A", 2, 4)]);
  assert.deepEqual(out.map((b) => [b.symbol, b.ts, b.close]), [["A", 1, 3], ["A", 2, 4], [
    "B",
    1,
    1,
  ]]);
});

Deno.test("parseRfc3339() reads Z, offsets and nanoseconds, and refuses other text", () => {
  assert.equal(parseRfc3339("2022-04-11T08:00:00Z"), Date.parse("2022-04-11T08:00:00Z"));
  assert.equal(
    parseRfc3339("2022-04-11T08:00:00.123456789Z"),
    Date.parse("2022-04-11T08:00:00.123Z"),
  );
  assert.equal(parseRfc3339("2022-04-11T04:00:00-04:00"), Date.parse("2022-04-11T08:00:00Z"));
  assert.ok(Number.isNaN(parseRfc3339("2022-04-11")));
  assert.ok(Number.isNaN(parseRfc3339("11/04/2022 08:00")));
});

Deno.test("requestWindow(), sourceTimeframe() and checkRequest() describe what to ask for", () => {
  assert.deepEqual(requestWindow("2024-03-08", "2024-03-11"), {
    from: Date.parse("2024-03-08T05:00:00Z"),
    to: Date.parse("2024-03-12T04:00:00Z"),
  });
  assert.deepEqual(["1m", "30m", "1h", "4h", "1d"].map((t) => sourceTimeframe(t as "1m")), [
    "1m",
    "30m",
    "30m",
    "30m",
    "1d",
  ]);
  const info = { name: "p", timeframes: ["1m"], feeds: ["iex", "sip"], adjustments: ["raw"] };
  const request = {
    symbols: ["A"],
    timeframe: "1m" as const,
    start: "2024-03-08",
    end: "2024-03-08",
  };
  assert.deepEqual(checkRequest(request, info), { feed: "iex", adjustment: "raw" });
  assert.throws(() => checkRequest({ ...request, feed: "otc" }, info), /expected one of iex, sip/);
  assert.throws(() => checkRequest({ ...request, timeframe: "5m" }, info), RangeError);
  assert.throws(
    () => checkRequest({ ...request, start: "2024-03-09" }, info),
    /start is after end/,
  );
});
