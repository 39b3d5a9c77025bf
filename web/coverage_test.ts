import assert from "node:assert/strict";
import { coverageCalendar, expectedBars, summarizeCoverage } from "./coverage.ts";

Deno.test("expectedBars() counts regular-session buckets, early closes included", () => {
  assert.equal(expectedBars("2024-03-05", "1m"), 390);
  assert.equal(expectedBars("2024-03-05", "5m"), 78);
  assert.equal(expectedBars("2024-03-05", "1h"), 7);
  assert.equal(expectedBars("2024-11-29", "1m"), 210); // day after Thanksgiving: 13:00 close
  assert.equal(expectedBars("2024-03-05", "1d"), 1);
  assert.equal(expectedBars("2024-03-29", "1m"), 0); // Good Friday
});

Deno.test("coverageCalendar() marks full, partial, empty, missing, holiday, weekend, future", () => {
  const days = coverageCalendar(
    [
      { tradingDate: "2024-03-04", bars: 950 },
      { tradingDate: "2024-03-05", bars: 100 },
      { tradingDate: "2024-03-06", bars: 0 },
    ],
    { timeframe: "1m", start: "2024-03-04", end: "2024-03-11", today: "2024-03-08" },
  );
  assert.deepEqual(days.map((d) => [d.date, d.status]), [
    ["2024-03-04", "full"],
    ["2024-03-05", "partial"],
    ["2024-03-06", "empty"],
    ["2024-03-07", "missing"],
    ["2024-03-08", "missing"],
    ["2024-03-09", "weekend"],
    ["2024-03-10", "weekend"],
    ["2024-03-11", "future"],
  ]);
  const easter = coverageCalendar([], {
    timeframe: "1d",
    start: "2024-03-29",
    end: "2024-03-29",
    today: "2024-12-31",
  });
  assert.deepEqual(easter, [
    { date: "2024-03-29", status: "holiday", bars: 0, expected: 0, holiday: "Good Friday" },
  ]);
  assert.deepEqual(summarizeCoverage(days), {
    full: 1,
    partial: 1,
    empty: 1,
    missing: 2,
    holiday: 0,
    weekend: 2,
    future: 1,
  });
});
