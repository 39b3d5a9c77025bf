import assert from "node:assert/strict";
import { expectedRegularBars, findGaps, tradingDayRuns } from "./validate_gaps.ts";

Deno.test("expectedRegularBars() knows full days, early closes, holidays and timeframes", () => {
  assert.equal(expectedRegularBars("2024-03-05", "1m"), 390);
  assert.equal(expectedRegularBars("2024-11-29", "1m"), 210);
  assert.equal(expectedRegularBars("2024-03-05", "1h"), 7);
  assert.equal(expectedRegularBars("2024-11-29", "1h"), 4);
  assert.equal(expectedRegularBars("2024-03-05", "4h"), 2);
  assert.equal(expectedRegularBars("2024-03-05", "1d"), 1);
  assert.equal(expectedRegularBars("2024-03-29", "1m"), 0); // Good Friday
});

Deno.test("findGaps() lists trading days without bars, skipping weekends and holidays", () => {
  const gaps = findGaps("AAPL", "2024-03-25", "2024-04-02", [
    { date: "2024-03-25", bars: 960, regular: 390 },
    { date: "2024-03-27", bars: 960, regular: 390 },
    { date: "2024-04-02", bars: 960, regular: 390 },
  ], { timeframe: "1m" });
  // 03-29 is Good Friday and 03-30/31 a weekend: not gaps.
  assert.deepEqual(gaps.missing, ["2024-03-26", "2024-03-28", "2024-04-01"]);
  assert.equal(gaps.tradingDays, 6);
  assert.equal(gaps.daysWithData, 3);
  assert.deepEqual(gaps.lowCoverage, []);
});

Deno.test("findGaps() flags a regular session below the threshold, and not one at it", () => {
  const gaps = findGaps("AAPL", "2024-11-26", "2024-11-29", [
    { date: "2024-11-26", bars: 900, regular: 350 }, // 89.7% of 390
    { date: "2024-11-27", bars: 900, regular: 351 }, // 90% of 390
    { date: "2024-11-29", bars: 500, regular: 188 }, // 89.5% of 210 (early close)
  ], { timeframe: "1m", minCoverage: 0.9 });
  assert.deepEqual(gaps.lowCoverage.map((d) => [d.date, d.regularBars, d.expected]), [
    ["2024-11-26", 350, 390],
    ["2024-11-29", 188, 210],
  ]);
  assert.deepEqual(gaps.missing, []); // 11-28 is Thanksgiving
});

Deno.test("findGaps() reports days a provider answered empty as known empty, not missing", () => {
  const gaps = findGaps("AAPL", "2024-03-04", "2024-03-06", [
    { date: "2024-03-04", bars: 960, regular: 390 },
  ], { timeframe: "1m", knownEmpty: new Set(["2024-03-05"]) });
  assert.deepEqual(gaps.missing, ["2024-03-06"]);
  assert.deepEqual(gaps.knownEmpty, ["2024-03-05"]);
});

Deno.test("findGaps() checks only presence for daily bars", () => {
  const gaps = findGaps("SPY", "2024-03-04", "2024-03-05", [
    { date: "2024-03-04", bars: 1, regular: 1 },
  ], { timeframe: "1d" });
  assert.deepEqual(gaps.missing, ["2024-03-05"]);
  assert.deepEqual(gaps.lowCoverage, []);
});

Deno.test("tradingDayRuns() joins consecutive trading days across weekends and holidays", () => {
  assert.deepEqual(
    tradingDayRuns(["2024-03-27", "2024-03-28", "2024-04-01", "2024-04-03", "2024-04-05"]),
    ["2024-03-27..2024-04-01", "2024-04-03", "2024-04-05"],
  );
  assert.deepEqual(tradingDayRuns([]), []);
});
