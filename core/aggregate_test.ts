import assert from "node:assert/strict";
import { aggregateBars, bucketStart } from "./aggregate.ts";
import type { Bar, Session } from "./types.ts";

// Hours New York is behind UTC on the test dates, written out so the tests check DST themselves.
const UTC_OFFSET_HOURS: Record<string, number> = {
  "2024-01-10": 5, // winter, EST
  "2024-03-08": 5, // last Friday before DST starts (2024-03-10)
  "2024-03-11": 4, // first Monday after DST starts
  "2024-07-10": 4, // summer, EDT
  "2024-11-29": 5, // early close 13:00 (day after Thanksgiving)
};

/** Epoch ms of New York wall-clock `time` on `date`. */
function et(date: string, time: string): number {
  const [year, month, day] = date.split("-").map(Number);
  const [hour, minute] = time.split(":").map(Number);
  return Date.UTC(year, month - 1, day, hour + UTC_OFFSET_HOURS[date], minute);
}

function sessionOf(date: string, ts: number): Session {
  const close = date === "2024-11-29" ? "13:00" : "16:00";
  return ts < et(date, "09:30") ? "pre" : ts < et(date, close) ? "regular" : "post";
}

/** A 1m bar of `date` at New York `time`, with overridable fields. */
function bar(date: string, time: string, fields: Partial<Bar> = {}): Bar {
  const ts = et(date, time);
  return {
    symbol: "AAPL",
    timeframe: "1m",
    ts,
    open: 100,
    high: 101,
    low: 99,
    close: 100.5,
    volume: 10,
    vwap: 100.2,
    tradeCount: 2,
    tradingDate: date,
    session: sessionOf(date, ts),
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

/** One bar per minute from `from` (inclusive) to `to` (exclusive), New York time. */
function minutes(date: string, from: string, to: string, fields: Partial<Bar> = {}): Bar[] {
  const bars: Bar[] = [];
  for (let ts = et(date, from); ts < et(date, to); ts += 60_000) {
    const base = bar(date, "00:00", fields);
    bars.push({ ...base, ts, session: sessionOf(date, ts) });
  }
  return bars;
}

/** New York wall-clock `HH:MM` of `ts` on a test date. */
function wallClock(date: string, ts: number): string {
  const shifted = new Date(ts - UTC_OFFSET_HOURS[date] * 3_600_000);
  return shifted.toISOString().slice(11, 16);
}

Deno.test("aggregateBars() combines open, high, low, close, volume, trade count and vwap", () => {
  const date = "2024-01-10";
  const input = [
    bar(date, "09:30", { open: 10, high: 11, low: 9.5, close: 10.5, volume: 100, vwap: 10.2 }),
    bar(date, "09:31", { open: 10.5, high: 12, low: 10, close: 11, volume: 300, vwap: 11 }),
    bar(date, "09:32", { open: 11, high: 11.5, low: 9, close: 9.8, volume: 0, vwap: 10 }),
    bar(date, "09:33", {
      open: 9.8,
      high: 10.1,
      low: 9.7,
      close: 10,
      volume: 100,
      vwap: 9.9,
      tradeCount: null,
    }),
    bar(date, "09:34", {
      open: 10,
      high: 10.4,
      low: 9.9,
      close: 10.3,
      volume: 50,
      vwap: null,
      tradeCount: 7,
      feed: "iex",
    }),
  ];
  const [out, ...rest] = aggregateBars(input, "5m");
  assert.equal(rest.length, 0);
  assert.equal(out.ts, et(date, "09:30"));
  assert.equal(out.timeframe, "5m");
  assert.equal(out.open, 10);
  assert.equal(out.high, 12);
  assert.equal(out.low, 9);
  assert.equal(out.close, 10.3);
  assert.equal(out.volume, 550);
  assert.equal(out.tradeCount, 2 + 2 + 2 + 7);
  // Weighted over the bars that carry a vwap: (10.2*100 + 11*300 + 10*0 + 9.9*100) / 500.
  assert.ok(Math.abs(out.vwap! - 10.62) < 1e-9, `vwap ${out.vwap}`);
  assert.equal(out.session, "regular");
  assert.equal(out.tradingDate, date);
  assert.equal(out.feed, "iex", "carried from the bucket's last bar");
});

Deno.test("aggregateBars() keeps the volume-weighted vwap when an input vwap lies outside its bar's range", () => {
  const date = "2024-01-10";
  const out = aggregateBars([
    // A provider vwap far above its own high: the mean is not moved into [low, high].
    bar(date, "09:30", { open: 10, high: 10.5, low: 9.5, close: 10, volume: 100, vwap: 20 }),
    bar(date, "09:31", { open: 10, high: 10.5, low: 9.5, close: 10, volume: 100, vwap: 10 }),
  ], "5m");
  assert.equal(out[0].vwap, 15);
  assert.equal(out[0].high, 10.5);
  // Floating-point drift past the range is still clamped: 0.1 x 3 sums to 0.30000000000000004.
  const drift = aggregateBars(
    ["09:30", "09:31", "09:32"].map((time) =>
      bar(date, time, { open: 0.3, high: 0.3, low: 0.3, close: 0.3, volume: 1, vwap: 0.1 + 0.2 })
    ),
    "5m",
  );
  assert.equal(drift[0].vwap, 0.3);
});

Deno.test("aggregateBars() gives a null vwap for zero volume and a null trade count when none has one", () => {
  const date = "2024-01-10";
  const zeroVolume = aggregateBars(minutes(date, "09:30", "09:35", { volume: 0 }), "5m");
  assert.equal(zeroVolume.length, 1);
  assert.equal(zeroVolume[0].vwap, null);
  assert.equal(zeroVolume[0].volume, 0);

  const bare = aggregateBars(
    minutes(date, "09:30", "09:35", { vwap: null, tradeCount: null }),
    "5m",
  );
  assert.equal(bare[0].vwap, null);
  assert.equal(bare[0].tradeCount, null);
  assert.equal(bare[0].volume, 50);
});

Deno.test("aggregateBars() aligns 5m buckets to 09:30 New York", () => {
  const date = "2024-01-10";
  const out = aggregateBars(minutes(date, "09:30", "09:42"), "5m");
  assert.deepEqual(out.map((b) => wallClock(date, b.ts)), ["09:30", "09:35", "09:40"]);
  assert.deepEqual(out.map((b) => b.volume), [50, 50, 20]);
  assert.equal(out[0].ts, Date.UTC(2024, 0, 10, 14, 30));
});

Deno.test("aggregateBars() labels 1h buckets 09:30 to 15:30 in winter and in summer", () => {
  const labels = ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"];
  for (const [date, firstUtcHour] of [["2024-01-10", 14], ["2024-07-10", 13]] as const) {
    const out = aggregateBars(minutes(date, "09:30", "16:00"), "1h");
    assert.deepEqual(out.map((b) => wallClock(date, b.ts)), labels, date);
    assert.equal(out[0].ts, Date.UTC(2024, Number(date.slice(5, 7)) - 1, 10, firstUtcHour, 30));
    assert.deepEqual(out.map((b) => b.volume), [600, 600, 600, 600, 600, 600, 300], date);
  }
});

Deno.test("aggregateBars() keeps 1h buckets on 09:30 across the DST switch", () => {
  const friday = aggregateBars(minutes("2024-03-08", "09:30", "11:30"), "1h");
  const monday = aggregateBars(minutes("2024-03-11", "09:30", "11:30"), "1h");
  assert.deepEqual(friday.map((b) => new Date(b.ts).toISOString().slice(11, 16)), [
    "14:30",
    "15:30",
  ]);
  assert.deepEqual(monday.map((b) => new Date(b.ts).toISOString().slice(11, 16)), [
    "13:30",
    "14:30",
  ]);
});

Deno.test("aggregateBars() labels the partial first pre-market bucket 04:00", () => {
  const date = "2024-01-10";
  const out = aggregateBars(minutes(date, "04:00", "09:30"), "1h");
  assert.deepEqual(out.map((b) => wallClock(date, b.ts)), [
    "04:00",
    "04:30",
    "05:30",
    "06:30",
    "07:30",
    "08:30",
  ]);
  assert.deepEqual(out.map((b) => b.volume), [300, 600, 600, 600, 600, 600]);
  assert.ok(out.every((b) => b.session === "pre"));

  const fourHours = aggregateBars(minutes(date, "04:00", "09:30"), "4h");
  assert.deepEqual(fourHours.map((b) => wallClock(date, b.ts)), ["04:00", "05:30"]);
});

Deno.test("aggregateBars() never merges bars of different sessions into one bucket", () => {
  const date = "2024-01-10";
  const out = aggregateBars(minutes(date, "04:00", "20:00"), "4h");
  assert.deepEqual(
    out.map((b) => `${wallClock(date, b.ts)} ${b.session} ${b.volume}`),
    [
      "04:00 pre 900", // 04:00-05:30
      "05:30 pre 2400", // 05:30-09:30
      "09:30 regular 2400", // 09:30-13:30
      "13:30 regular 1500", // 13:30-16:00, cut at the close
      "16:00 post 900", // 16:00-17:30, the 13:30 bucket's post-market part
      "17:30 post 1500", // 17:30-20:00
    ],
  );
  const bars = minutes(date, "09:00", "10:00");
  const halfHours = aggregateBars(bars, "30m");
  assert.deepEqual(halfHours.map((b) => `${wallClock(date, b.ts)} ${b.session}`), [
    "09:00 pre",
    "09:30 regular",
  ]);
  assert.equal(halfHours[0].close, bars[29].close);
  assert.equal(halfHours[1].open, bars[30].open);
});

Deno.test("aggregateBars() ends the session at 13:00 on an early-close day", () => {
  const date = "2024-11-29";
  const bars = minutes(date, "04:00", "17:00").map((b, i) => ({ ...b, close: 100 + i / 100 }));
  const lastRegular = bars.filter((b) => b.session === "regular").at(-1)!;
  assert.equal(wallClock(date, lastRegular.ts), "12:59");

  const [daily, ...rest] = aggregateBars(bars, "1d");
  assert.equal(rest.length, 0);
  assert.equal(daily.close, lastRegular.close);
  assert.equal(daily.volume, 210 * 10);

  const hourly = aggregateBars(bars, "1h").filter((b) => b.session !== "pre");
  assert.deepEqual(hourly.map((b) => `${wallClock(date, b.ts)} ${b.session} ${b.volume}`), [
    "09:30 regular 600",
    "10:30 regular 600",
    "11:30 regular 600",
    "12:30 regular 300",
    "13:00 post 300",
    "13:30 post 600",
    "14:30 post 600",
    "15:30 post 600",
    "16:30 post 300",
  ]);
});

Deno.test("aggregateBars() daily bars cover the regular session unless extended is asked", () => {
  const date = "2024-01-10";
  const bars = [
    bar(date, "04:00", { open: 90, high: 95, low: 80, close: 91, volume: 5 }),
    bar(date, "09:30", { open: 100, high: 102, low: 99, close: 101, volume: 20 }),
    bar(date, "15:59", { open: 101, high: 103, low: 100, close: 102, volume: 30 }),
    bar(date, "19:59", { open: 102, high: 120, low: 101, close: 110, volume: 7 }),
  ];
  const [regular] = aggregateBars(bars, "1d");
  assert.deepEqual(
    [regular.ts, regular.open, regular.high, regular.low, regular.close, regular.volume],
    [Date.UTC(2024, 0, 10, 5, 0), 100, 103, 99, 102, 50],
  );
  assert.equal(regular.session, "regular");
  assert.equal(regular.timeframe, "1d");

  const [extended] = aggregateBars(bars, "1d", { session: "extended" });
  assert.deepEqual(
    [extended.ts, extended.open, extended.high, extended.low, extended.close, extended.volume],
    [Date.UTC(2024, 0, 10, 5, 0), 90, 120, 80, 110, 62],
  );
  assert.equal(extended.session, "regular");

  const summer = aggregateBars(minutes("2024-07-10", "09:30", "16:00"), "1d");
  assert.equal(summer[0].ts, Date.UTC(2024, 6, 10, 4, 0));
});

Deno.test("aggregateBars() sorts several symbols in any order by symbol then ts", () => {
  const date = "2024-01-10";
  const msft = minutes(date, "09:30", "09:40", { symbol: "MSFT" });
  const aapl = minutes(date, "09:30", "09:40", { symbol: "AAPL" });
  const shuffled = [...msft, ...aapl].reverse();
  const out = aggregateBars(shuffled, "5m");
  assert.deepEqual(out.map((b) => `${b.symbol} ${wallClock(date, b.ts)} ${b.volume}`), [
    "AAPL 09:30 50",
    "AAPL 09:35 50",
    "MSFT 09:30 50",
    "MSFT 09:35 50",
  ]);
  assert.deepEqual(aggregateBars(shuffled, "5m"), aggregateBars([...aapl, ...msft], "5m"));
  assert.equal(shuffled[0].symbol, "AAPL", "input left untouched");
});

Deno.test("aggregateBars() rolls 5m bars up like the 1m bars they came from", () => {
  const bars = minutes("2024-07-10", "04:00", "20:00").map((b, i) => ({
    ...b,
    high: 101 + (i % 7),
    low: 99 - (i % 5),
    volume: 1 + (i % 13),
  }));
  // vwap sums associate differently, so compare it to 1e-9.
  const rounded = (out: Bar[]) => out.map((b) => ({ ...b, vwap: Math.round(b.vwap! * 1e9) / 1e9 }));
  for (const timeframe of ["15m", "1h", "4h", "1d"] as const) {
    assert.deepEqual(
      rounded(aggregateBars(aggregateBars(bars, "5m"), timeframe)),
      rounded(aggregateBars(bars, timeframe)),
    );
  }
});

Deno.test("aggregateBars() rejects bars longer than the target timeframe", () => {
  const hourly = aggregateBars(minutes("2024-01-10", "09:30", "11:30"), "1h");
  assert.throws(() => aggregateBars(hourly, "5m"), RangeError);
  assert.throws(() => aggregateBars(hourly, "7m" as never), /expected one of 1m, 5m/);
});

Deno.test("bucketStart() anchors to 09:30 and clamps to the session start", () => {
  const date = "2024-07-10";
  assert.equal(bucketStart(et(date, "10:29"), "1h", "regular", date), et(date, "09:30"));
  assert.equal(bucketStart(et(date, "10:30"), "1h", "regular", date), et(date, "10:30"));
  assert.equal(bucketStart(et(date, "04:29"), "1h", "pre", date), et(date, "04:00"));
  assert.equal(bucketStart(et(date, "04:30"), "1h", "pre", date), et(date, "04:30"));
  assert.equal(bucketStart(et(date, "16:10"), "1h", "post", date), et(date, "16:00"));
  assert.equal(bucketStart(et(date, "16:40"), "1h", "post", date), et(date, "16:30"));
  assert.equal(bucketStart(et(date, "15:59"), "4h", "regular", date), et(date, "13:30"));
  assert.equal(bucketStart(et(date, "12:00"), "1d", "regular", date), et(date, "00:00"));
  assert.equal(bucketStart(et(date, "12:07"), "1m", "regular", date), et(date, "12:07"));
});
