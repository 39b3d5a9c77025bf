import assert from "node:assert/strict";
import { aggregateBars } from "../core/aggregate.ts";
import { createValidator, validateBars } from "../core/validate.ts";
import { tradingDays, zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { corruptFakeBars, fake, fakeDefects, fakeInfo, generateFakeDay } from "./fake.ts";

function count(bars: Bar[], session: Bar["session"]): number {
  return bars.filter((b) => b.session === session).length;
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

Deno.test("fakeInfo describes a keyless provider with every timeframe", () => {
  assert.equal(fakeInfo.name, "fake");
  assert.deepEqual(fakeInfo.env, []);
  assert.deepEqual([...fakeInfo.timeframes], ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]);
  assert.deepEqual([...fakeInfo.feeds], ["sip", "iex"]);
  assert.equal(fakeInfo.defaultFeed, "sip");
  assert.deepEqual([...fakeInfo.adjustments], ["raw"]);
  assert.equal(fake().name, "fake");
});

Deno.test("generateFakeDay() returns identical bars for the same seed, symbol and date", () => {
  const first = generateFakeDay("AAPL", "2024-03-12", { seed: 7 });
  const second = generateFakeDay("AAPL", "2024-03-12", { seed: 7 });
  assert.ok(first.length > 900);
  assert.deepEqual(first, second);
  // A fingerprint of the first bar guards against a change of the generator going unnoticed:
  // stored data and benchmarks rely on the same seed giving the same market everywhere.
  const { ts, session, open, close, volume, vwap } = first[0];
  assert.deepEqual(
    { count: first.length, ts, session, open, close, volume, vwap },
    {
      count: 953,
      ts: Date.UTC(2024, 2, 12, 8, 0),
      session: "pre",
      open: 122.43,
      close: 122.44,
      volume: 12,
      vwap: 122.447,
    },
  );
});

Deno.test("fake().fetchBars() returns a day's bars alone the same as inside a longer range", async () => {
  const provider = fake({ seed: 7 });
  const request = { symbols: ["AAPL", "MSFT"], timeframe: "1m" as const };
  const range = await provider.fetchBars({ ...request, start: "2024-03-04", end: "2024-03-15" });
  const alone = await provider.fetchBars({ ...request, start: "2024-03-12", end: "2024-03-12" });
  assert.deepEqual(range.filter((b) => b.tradingDate === "2024-03-12"), alone);
  assert.deepEqual(
    alone.filter((b) => b.symbol === "MSFT"),
    generateFakeDay("MSFT", "2024-03-12", { seed: 7 }),
  );
});

Deno.test("generateFakeDay() gives different markets for different seeds", () => {
  const closes = (seed: number) =>
    generateFakeDay("AAPL", "2024-03-12", { seed, gapRate: 0 }).map((b) => b.close);
  assert.notDeepEqual(closes(1), closes(2));
  assert.notDeepEqual(closes(0), closes(-1));
  assert.notDeepEqual(
    generateFakeDay("AAPL", "2024-03-12", { gapRate: 0 }).map((b) => b.close),
    generateFakeDay("MSFT", "2024-03-12", { gapRate: 0 }).map((b) => b.close),
  );
});

Deno.test("generateFakeDay() with gapRate 0 yields every session minute of a trading day", () => {
  const full = generateFakeDay("AAPL", "2024-03-12", { gapRate: 0 });
  assert.equal(full.length, 960);
  assert.deepEqual([count(full, "pre"), count(full, "regular"), count(full, "post")], [
    330,
    390,
    240,
  ]);
  for (let i = 1; i < full.length; i++) assert.equal(full[i].ts - full[i - 1].ts, 60_000);

  const early = generateFakeDay("AAPL", "2024-11-29", { gapRate: 0 });
  assert.equal(early.length, 780);
  assert.equal(count(early, "regular"), 210);
  assert.equal(early.at(-1)!.ts, zonedTime("2024-11-29", "16:59"));

  assert.deepEqual(generateFakeDay("AAPL", "2024-12-25", { gapRate: 0 }), [], "Christmas");
  assert.deepEqual(generateFakeDay("AAPL", "2024-03-16", { gapRate: 0 }), [], "Saturday");
});

Deno.test("generateFakeDay() leaves out about gapRate of the minutes, the rest unchanged", () => {
  for (const gapRate of [0.01, 0.2]) {
    let present = 0;
    let possible = 0;
    for (const date of tradingDays("2024-04-01", "2024-04-30")) {
      const withGaps = generateFakeDay("GAPS", date, { gapRate });
      const complete = generateFakeDay("GAPS", date, { gapRate: 0 });
      present += withGaps.length;
      possible += complete.length;
      // A gap removes a minute without moving the prices of the others.
      const byTs = new Map(complete.map((b) => [b.ts, b]));
      for (const bar of withGaps) assert.deepEqual(bar, byTs.get(bar.ts));
    }
    const observed = 1 - present / possible;
    // 21 days x 960 minutes: 4 standard deviations of a binomial share is well under 0.015.
    assert.ok(Math.abs(observed - gapRate) < 0.015, `gapRate ${gapRate}, observed ${observed}`);
  }
});

Deno.test("generateFakeDay() bars keep OHLC, volume, vwap and trade count consistent", () => {
  const bars = ["AAPL", "BRK.B", "TINY", "X"].flatMap((symbol) =>
    tradingDays("2024-11-25", "2024-12-03").flatMap((date) =>
      generateFakeDay(symbol, date, { seed: 3, feed: "iex" })
    )
  );
  assert.ok(bars.length > 5_000);
  for (const b of bars) {
    const where = `${b.symbol} ${new Date(b.ts).toISOString()}`;
    assert.ok(b.high >= Math.max(b.open, b.close), where);
    assert.ok(b.low <= Math.min(b.open, b.close), where);
    assert.ok(b.low > 0, where);
    assert.ok(b.vwap !== null && b.vwap >= b.low && b.vwap <= b.high, where);
    assert.ok(Number.isInteger(b.volume) && b.volume > 0, where);
    assert.ok(Number.isInteger(b.tradeCount) && b.tradeCount! >= 1, where);
    assert.ok(b.tradeCount! <= b.volume, where);
    for (const price of [b.open, b.high, b.low, b.close]) {
      assert.equal(Math.round(price * 100) / 100, price, `${where} ${price} not in cents`);
    }
    assert.deepEqual(
      [b.timeframe, b.provider, b.feed, b.adjustment],
      ["1m", "fake", "iex", "raw"],
      where,
    );
  }
});

Deno.test("generateFakeDay() labels sessions at their boundaries, across DST", () => {
  // 2024-01-10 is EST (UTC-5); 2024-03-11 is the first trading day of EDT (UTC-4).
  for (const [date, offset] of [["2024-01-10", 5], ["2024-03-11", 4]] as const) {
    const [y, m, d] = date.split("-").map(Number);
    const at = (hour: number, minute: number) => Date.UTC(y, m - 1, d, hour + offset, minute);
    const bars = generateFakeDay("AAPL", date, { gapRate: 0 });
    const sessionAt = (ts: number) => bars.find((b) => b.ts === ts)?.session;
    assert.equal(bars[0].ts, at(4, 0), date);
    assert.equal(bars.at(-1)!.ts, at(19, 59), date);
    assert.equal(sessionAt(at(9, 29)), "pre", date);
    assert.equal(sessionAt(at(9, 30)), "regular", date);
    assert.equal(sessionAt(at(15, 59)), "regular", date);
    assert.equal(sessionAt(at(16, 0)), "post", date);
  }
});

Deno.test("generateFakeDay() opens each day near the previous day's close", () => {
  for (const symbol of ["AAPL", "PENNY", "ZZZZ"]) {
    let previous: Bar | undefined;
    for (const date of tradingDays("2024-06-24", "2024-09-10")) {
      const bars = generateFakeDay(symbol, date, { seed: 11 });
      if (previous !== undefined) {
        const change = Math.abs(bars[0].open / previous.close - 1);
        assert.ok(change < 0.03, `${symbol} ${date}: ${previous.close} -> ${bars[0].open}`);
      }
      previous = bars.at(-1);
    }
  }
});

Deno.test("generateFakeDay() keeps prices in a plausible band from 1990 to 2100", () => {
  for (const symbol of ["AAPL", "SPY", "Q"]) {
    const closes: number[] = [];
    for (let year = 1990; year <= 2100; year += 2) {
      const [date] = tradingDays(`${year}-06-01`, `${year}-06-10`);
      closes.push(generateFakeDay(symbol, date, { gapRate: 0 }).at(-1)!.close);
    }
    const [low, high] = [Math.min(...closes), Math.max(...closes)];
    assert.ok(low > 4 && high < 2_000, `${symbol}: ${low}..${high}`);
    assert.ok(high / low > 1.3, `${symbol} should wander over a century: ${low}..${high}`);
  }
  const last = generateFakeDay("AAPL", "2100-12-31", { gapRate: 0 });
  assert.equal(last.length, 960);
});

Deno.test("generateFakeDay() shapes volume like a U and moves prices by ~0.1% a minute", () => {
  const days = tradingDays("2024-05-01", "2024-05-31")
    .map((date) => generateFakeDay("AAPL", date, { gapRate: 0 }));
  const volumeAt = (from: number, to: number) =>
    mean(days.flatMap((bars) => bars.slice(from, to).map((b) => b.volume)));
  const pre = volumeAt(0, 330);
  const firstHalfHour = volumeAt(330, 360);
  const midday = volumeAt(450, 600);
  const lastHalfHour = volumeAt(690, 720);
  const post = volumeAt(720, 960);
  assert.ok(firstHalfHour > 2 * midday, `open ${firstHalfHour} vs midday ${midday}`);
  assert.ok(lastHalfHour > 1.5 * midday, `close ${lastHalfHour} vs midday ${midday}`);
  assert.ok(pre < midday / 5 && post < midday / 5, `pre ${pre}, post ${post}, midday ${midday}`);

  const returns = days.flatMap((bars) =>
    bars.slice(331, 720).map((b, i) => Math.log(b.close / bars[330 + i].close))
  );
  const volatility = Math.sqrt(mean(returns.map((r) => r * r)));
  assert.ok(volatility > 0.0004 && volatility < 0.002, `per-minute volatility ${volatility}`);
});

Deno.test("fake().fetchBars() rolls up to 5m, 1h and 1d buckets", async () => {
  const provider = fake({ gapRate: 0 });
  const request = { symbols: ["MSFT", "AAPL"], start: "2024-11-25", end: "2024-12-01" };
  const fiveMinutes = await provider.fetchBars({ ...request, timeframe: "5m" });
  const monday = fiveMinutes.filter((b) => b.symbol === "AAPL" && b.tradingDate === "2024-11-25");
  assert.equal(monday.length, 960 / 5);
  assert.equal(count(monday, "regular"), 78);
  assert.equal(
    count(
      fiveMinutes.filter((b) => b.tradingDate === "2024-11-29" && b.symbol === "MSFT"),
      "regular",
    ),
    42,
  );

  const hours = await provider.fetchBars({ ...request, timeframe: "1h" });
  const regularHours = hours.filter((b) =>
    b.symbol === "AAPL" && b.tradingDate === "2024-11-25" && b.session === "regular"
  );
  assert.deepEqual(
    regularHours.map((b) => b.ts),
    ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
      .map((time) => zonedTime("2024-11-25", time)),
  );

  const daily = await provider.fetchBars({ ...request, timeframe: "1d", feed: "iex" });
  // Thanksgiving (28th) and the weekend are closed: 25, 26, 27, 29 for each symbol.
  assert.deepEqual(
    daily.map((b) => `${b.symbol} ${b.tradingDate}`),
    ["AAPL", "MSFT"].flatMap((s) => ["25", "26", "27", "29"].map((d) => `${s} 2024-11-${d}`)),
  );
  for (const bar of daily) {
    assert.equal(bar.ts, zonedTime(bar.tradingDate, "00:00"));
    assert.deepEqual([bar.timeframe, bar.session, bar.feed], ["1d", "regular", "iex"]);
  }
  const minutes = generateFakeDay("AAPL", "2024-11-29", { gapRate: 0, feed: "iex" });
  assert.deepEqual(daily[3], aggregateBars(minutes, "1d")[0]);
  assert.equal(daily[3].close, minutes.filter((b) => b.session === "regular").at(-1)!.close);
});

Deno.test("fake().fetchBars() sorts by symbol then ts without duplicates", async () => {
  const bars = await fake().fetchBars({
    symbols: ["MSFT", "AAPL", "MSFT"],
    timeframe: "15m",
    start: "2024-03-08",
    end: "2024-03-11",
  });
  for (let i = 1; i < bars.length; i++) {
    const [a, b] = [bars[i - 1], bars[i]];
    assert.ok(a.symbol < b.symbol || (a.symbol === b.symbol && a.ts < b.ts), `at ${i}`);
  }
  assert.deepEqual([...new Set(bars.map((b) => b.symbol))], ["AAPL", "MSFT"]);
  assert.ok(bars.every((b) => b.feed === "sip" && b.provider === "fake"));
});

Deno.test("fake().fetchBars() stops with the signal's reason", async () => {
  const provider = fake();
  const request = { symbols: ["AAPL", "MSFT"], timeframe: "1m" as const };
  const reason = new Error("stopped by test");
  await assert.rejects(
    provider.fetchBars({ ...request, start: "2024-01-02", end: "2024-01-05" }, {
      signal: AbortSignal.abort(reason),
    }),
    (error) => error === reason,
  );

  const controller = new AbortController();
  const pending = provider.fetchBars({ ...request, start: "2020-01-01", end: "2024-12-31" }, {
    signal: controller.signal,
  });
  controller.abort(reason);
  await assert.rejects(pending, (error) => error === reason);
});

Deno.test("fake() and fetchBars() reject invalid options with RangeError", async () => {
  assert.throws(
    () => fake({ gapRate: 1 }),
    /Invalid fake gapRate 1: expected a number in \[0, 1\)/,
  );
  assert.throws(() => fake({ gapRate: -0.1 }), RangeError);
  assert.throws(() => fake({ gapRate: NaN }), RangeError);
  assert.throws(() => fake({ seed: 1.5 }), /Invalid fake seed 1.5: expected a safe integer/);
  assert.throws(() => fake({ seed: 2 ** 53 }), RangeError);
  assert.throws(() => generateFakeDay("AAPL", "2024-02-30"), /Invalid date "2024-02-30"/);

  const provider = fake();
  const request = { symbols: ["AAPL"], timeframe: "1m" as const };
  await assert.rejects(
    provider.fetchBars({ ...request, start: "2024-13-01", end: "2024-12-31" }),
    /Invalid start date "2024-13-01": expected YYYY-MM-DD/,
  );
  await assert.rejects(
    provider.fetchBars({ ...request, start: "2024-03-08", end: "2024-03-01" }),
    RangeError,
  );
  await assert.rejects(
    provider.fetchBars({ ...request, start: "2024-03-01", end: "2024-03-08", feed: "otc" }),
    /Invalid feed "otc"/,
  );
});

Deno.test("fake() with corruptRate 0 delivers exactly the clean bars", async () => {
  const request = {
    symbols: ["AAPL"],
    timeframe: "1m" as const,
    start: "2024-03-04",
    end: "2024-03-05",
  };
  assert.deepEqual(
    await fake({ seed: 3, corruptRate: 0 }).fetchBars(request),
    await fake({ seed: 3 }).fetchBars(request),
  );
});

Deno.test("corruptFakeBars() corrupts about the rate of regular bars, never two in a row, the same way every time", () => {
  const day = generateFakeDay("MSFT", "2024-03-12", { seed: 1, gapRate: 0 });
  const first = corruptFakeBars(day, { seed: 1, corruptRate: 0.1 });
  const again = corruptFakeBars(day, { seed: 1, corruptRate: 0.1 });
  assert.deepEqual(first, again);
  assert.deepEqual(day, generateFakeDay("MSFT", "2024-03-12", { seed: 1, gapRate: 0 }));
  const changed = first.bars.map((b, i) => b !== day[i]);
  const count = changed.filter(Boolean).length;
  assert.equal(count, first.defects.length);
  // 390 regular bars at 10%, less the neighbours of corrupted ones: 25-45.
  assert.ok(count >= 25 && count <= 45, `${count} bars corrupted`);
  for (let i = 1; i < changed.length; i++) assert.ok(!(changed[i] && changed[i - 1]));
  for (let i = 0; i < day.length; i++) {
    if (changed[i]) assert.equal(day[i].session, "regular");
  }
  const rules = new Set(first.defects.map((d) => d.rule));
  for (const rule of ["ohlc_consistency", "positive_prices", "extreme_move", "vwap_range"]) {
    assert.ok(rules.has(rule), `no ${rule} defect among ${[...rules]}`);
  }
});

Deno.test("corruptFakeBars() gives daily bars only defects that need no neighbours", () => {
  const defects = tradingDays("2024-01-02", "2024-06-28").flatMap((date) =>
    fakeDefects("SPY", date, { corruptRate: 0.5, timeframe: "1d" })
  );
  assert.ok(defects.length > 30);
  for (const defect of defects) {
    assert.ok(
      !["outside_session", "extreme_move", "volume_spike"].includes(defect.rule),
      defect.rule,
    );
  }
});

Deno.test("fake() rejects a corruptRate outside 0-0.5", () => {
  assert.throws(() => fake({ corruptRate: 0.6 }), {
    name: "RangeError",
    message: "Invalid fake corruptRate 0.6: expected a number in [0, 0.5]",
  });
});

Deno.test("fake() defects are exactly what validation finds, in every timeframe", async () => {
  const symbols = ["AAPL", "BRK.B"];
  const start = "2024-03-07";
  const end = "2024-03-13";
  for (const timeframe of fakeInfo.timeframes) {
    // A week has few daily bars: corrupt more of them.
    const corruptRate = timeframe === "1d" ? 0.5 : 0.08;
    const bars = await fake({ seed: 5, corruptRate }).fetchBars({
      symbols,
      timeframe,
      start,
      end,
    });
    const expected = symbols.flatMap((symbol) =>
      tradingDays(start, end).flatMap((date) =>
        fakeDefects(symbol, date, { seed: 5, corruptRate, timeframe })
      )
    ).map((d) => `${d.symbol} ${d.ts} ${d.rule}`).sort();
    const outcome = createValidator()(bars);
    const found = [
      ...outcome.rejected.map((r) => `${r.bar.symbol} ${r.bar.ts} ${r.rule}`),
      ...validateBars(outcome.keep).map((f) => `${f.symbol} ${f.ts} ${f.rule}`),
    ].sort();
    assert.ok(expected.length > 0, timeframe);
    assert.deepEqual(found, expected, timeframe);
  }
});

Deno.test("fake().fetchBars() makes bars only for sessions closed at its clock", async () => {
  const daysOf = (bars: Bar[]) => [...new Set(bars.map((b) => b.tradingDate))];
  const request = { symbols: ["AAPL"], start: "2024-11-26", end: "2024-12-02" };
  // 13:30 ET on the early-close day 2024-11-29: its regular session is over, after-hours is not.
  const early = fake({ gapRate: 0, now: () => Date.parse("2024-11-29T18:30:00Z") });
  const minutes = await early.fetchBars({ ...request, timeframe: "1m" });
  assert.deepEqual(daysOf(minutes), ["2024-11-26", "2024-11-27"]);
  assert.deepEqual(minutes.slice(-960), generateFakeDay("AAPL", "2024-11-27", { gapRate: 0 }));
  const daily = await early.fetchBars({ ...request, timeframe: "1d" });
  assert.deepEqual(daysOf(daily), ["2024-11-26", "2024-11-27", "2024-11-29"]);
  // After-hours of 2024-11-29 end at 17:00 ET, when the fake's early-close day ends too.
  const evening = fake({ gapRate: 0, now: () => Date.parse("2024-11-29T22:00:00Z") });
  const full = await evening.fetchBars({ ...request, timeframe: "1m" });
  assert.deepEqual(daysOf(full), ["2024-11-26", "2024-11-27", "2024-11-29"]);
  assert.equal(
    full.filter((b) => b.tradingDate === "2024-11-29").at(-1)!.ts,
    Date.parse("2024-11-29T21:59:00Z"),
  );
  // 19:59 vs 20:00 ET on a full day; a Saturday clock gives the Friday.
  const at = (iso: string) => fake({ gapRate: 0, now: () => Date.parse(iso) });
  const day = {
    symbols: ["AAPL"],
    timeframe: "5m" as const,
    start: "2024-03-05",
    end: "2024-03-05",
  };
  assert.equal((await at("2024-03-06T00:59:00Z").fetchBars(day)).length, 0);
  assert.equal((await at("2024-03-06T01:00:00Z").fetchBars(day)).length, 192);
  const week = {
    symbols: ["AAPL"],
    timeframe: "1h" as const,
    start: "2024-03-04",
    end: "2024-03-10",
  };
  assert.deepEqual(
    daysOf(await at("2024-03-09T17:00:00Z").fetchBars(week)),
    tradingDays("2024-03-04", "2024-03-08"),
  );
});
