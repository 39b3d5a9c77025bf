import assert from "node:assert/strict";
import { coverageCalendar, expectedBars, judgeByMinutes, summarizeCoverage } from "./coverage.ts";

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
      { date: "2024-03-04", bars: 950, regular: 390 },
      { date: "2024-03-05", bars: 100, regular: 100 },
    ],
    {
      timeframe: "1m",
      start: "2024-03-04",
      end: "2024-03-11",
      today: "2024-03-08",
      knownEmpty: new Set(["2024-03-06"]),
    },
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
    {
      date: "2024-03-29",
      status: "holiday",
      bars: 0,
      regular: 0,
      expected: 0,
      holiday: "Good Friday",
    },
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

Deno.test("coverageCalendar() judges the regular session like `gaps`, not pre/post bars", () => {
  const days = coverageCalendar(
    [
      // 554 pre/post-market bars and 30 regular ones: more than half of 390 in all, still partial.
      { date: "2024-03-04", bars: 584, regular: 30 },
      // 351 of 390 is exactly the 0.9 gaps threshold.
      { date: "2024-03-05", bars: 351, regular: 351 },
      { date: "2024-03-06", bars: 350, regular: 350 },
      // Early close (13:00): 210 regular bars make a full day.
      { date: "2024-11-29", bars: 210, regular: 210 },
    ],
    { timeframe: "1m", start: "2024-03-04", end: "2024-03-06", today: "2024-12-31" },
  );
  assert.deepEqual(days.map((d) => [d.date, d.status, d.regular, d.expected]), [
    ["2024-03-04", "partial", 30, 390],
    ["2024-03-05", "full", 351, 390],
    ["2024-03-06", "partial", 350, 390],
  ]);
  const early = coverageCalendar([{ date: "2024-11-29", bars: 210, regular: 210 }], {
    timeframe: "1m",
    start: "2024-11-29",
    end: "2024-11-29",
    today: "2024-12-31",
  });
  assert.deepEqual(early.map((d) => [d.status, d.expected]), [["full", 210]]);
  const daily = coverageCalendar([{ date: "2024-03-04", bars: 1, regular: 0 }], {
    timeframe: "1d",
    start: "2024-03-04",
    end: "2024-03-04",
    today: "2024-12-31",
  });
  assert.equal(daily[0].status, "full");
});

Deno.test("judgeByMinutes() marks an aggregated day partial when its 1m bars are", () => {
  const options = { start: "2024-03-04", end: "2024-03-06", today: "2024-03-08" };
  // Every 5m bucket of 03-04 and 03-05 exists, but 03-05 was built from 330 of 390 minutes.
  const fiveMinute = coverageCalendar(
    [
      { date: "2024-03-04", bars: 78, regular: 78 },
      { date: "2024-03-05", bars: 78, regular: 78 },
      { date: "2024-03-06", bars: 78, regular: 78 },
    ],
    { ...options, timeframe: "5m" },
  );
  const minutes = coverageCalendar(
    [
      { date: "2024-03-04", bars: 390, regular: 390 },
      { date: "2024-03-05", bars: 330, regular: 330 },
    ],
    { ...options, timeframe: "1m" },
  );
  assert.deepEqual(fiveMinute.map((d) => d.status), ["full", "full", "full"]);
  const judged = judgeByMinutes(fiveMinute, minutes);
  // 03-06 has no 1m bars (fetched as 5m directly): it keeps its own status.
  assert.deepEqual(judged.map((d) => d.status), ["full", "partial", "full"]);
  assert.deepEqual(judged[1].base, { status: "partial", regular: 330, expected: 390 });
  assert.equal(judged[2].base, undefined);
  assert.deepEqual(summarizeCoverage(judged).partial, 1);
});
