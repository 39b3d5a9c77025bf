import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import { createMetrics } from "./metrics.ts";
import type { Bar, Session } from "./types.ts";
import {
  createValidator,
  effectiveRules,
  type Finding,
  parseValidationSettings,
  RULE_IDS,
  validateBars,
  VALIDATION_RULES,
  validationConfigText,
} from "./validate.ts";

// New York is UTC-5 on these dates (EST) except where noted; written out so that the tests
// check the calendar's DST handling rather than reuse it.
const OFFSET: Record<string, number> = {
  "2024-03-05": 5,
  "2024-03-08": 5,
  "2024-03-09": 5, // Saturday
  "2024-03-11": 4, // first Monday after the switch to EDT
  "2024-03-29": 4, // Good Friday, closed
  "2024-11-29": 5, // early close 13:00
};

function et(date: string, time: string): number {
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  return Date.UTC(y, m - 1, d, hh + OFFSET[date], mm);
}

function sessionOf(date: string, time: string): Session {
  const close = date === "2024-11-29" ? "13:00" : "16:00";
  return time < "09:30" ? "pre" : time < close ? "regular" : "post";
}

/** A clean 1m bar at New York `time` on `date`. */
function bar(date: string, time: string, fields: Partial<Bar> = {}): Bar {
  return {
    symbol: "AAPL",
    timeframe: "1m",
    ts: et(date, time),
    open: 100,
    high: 101,
    low: 99,
    close: 100.5,
    volume: 1000,
    vwap: 100.2,
    tradeCount: 10,
    tradingDate: date,
    session: sessionOf(date, time),
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

/** Consecutive clean 1m bars from New York `from`, `count` of them. */
function minutes(date: string, from: string, count: number, fields: Partial<Bar> = {}): Bar[] {
  const out: Bar[] = [];
  const start = et(date, from);
  for (let i = 0; i < count; i++) {
    const ts = start + i * 60_000;
    const wall = new Date(ts - OFFSET[date] * 3_600_000).toISOString().slice(11, 16);
    out.push(bar(date, wall, fields));
  }
  return out;
}

function rules(findings: Finding[]): string[] {
  return findings.map((f) => f.rule);
}

/** Findings of one rule for the bars. */
function only(rule: string, bars: Bar[], settings = {}): Finding[] {
  return validateBars(bars, { rules: settings }).filter((f) => f.rule === rule);
}

Deno.test("VALIDATION_RULES has unique ids, a severity and a one-line description each", () => {
  assert.equal(new Set(RULE_IDS).size, RULE_IDS.length);
  for (const rule of VALIDATION_RULES) {
    assert.match(rule.id, /^[a-z_]+$/);
    assert.ok(["error", "warn", "info"].includes(rule.severity), rule.id);
    assert.ok(rule.description.length > 10 && !rule.description.includes("\n"), rule.id);
    if (rule.threshold !== undefined) assert.ok(rule.thresholdRange && rule.thresholdMeaning);
  }
  assert.deepEqual(
    VALIDATION_RULES.filter((r) => r.severity === "error").map((r) => r.id),
    [
      "positive_prices",
      "volume_non_negative",
      "ohlc_consistency",
      "ts_alignment",
      "duplicate_key",
      "non_trading_day",
      "outside_session",
      "session_label",
    ],
  );
});

Deno.test("validateBars() finds nothing in clean bars of a full day", () => {
  const day = minutes("2024-03-05", "04:00", 960);
  // A gentle walk, so that no close repeats 30 times and no move is extreme.
  day.forEach((b, i) => {
    const price = 100 + (i % 7) * 0.01;
    Object.assign(b, { open: price, close: price + 0.01, high: price + 0.02, low: price - 0.01 });
    b.vwap = price;
  });
  assert.deepEqual(validateBars(day), []);
});

Deno.test("validateBars() flags a non-positive or non-finite price, and not a tiny positive one", () => {
  assert.deepEqual(rules(only("positive_prices", [bar("2024-03-05", "10:00", { low: 0 })])), [
    "positive_prices",
  ]);
  assert.equal(only("positive_prices", [bar("2024-03-05", "10:00", { open: NaN })]).length, 1);
  assert.equal(
    only("positive_prices", [bar("2024-03-05", "10:00", { high: Infinity })]).length,
    1,
  );
  assert.deepEqual(only("positive_prices", [bar("2024-03-05", "10:00", { low: 0.0001 })]), []);
});

Deno.test("validateBars() flags a negative volume, and not a zero one", () => {
  assert.equal(only("volume_non_negative", [bar("2024-03-05", "10:00", { volume: -1 })]).length, 1);
  assert.equal(
    only("volume_non_negative", [bar("2024-03-05", "10:00", { volume: NaN })]).length,
    1,
  );
  const flat = { volume: 0, open: 100, high: 100, low: 100, close: 100, vwap: 100 };
  assert.deepEqual(only("volume_non_negative", [bar("2024-03-05", "10:00", flat)]), []);
});

Deno.test("validateBars() flags a high below the open, and not a high equal to it", () => {
  const broken = only("ohlc_consistency", [bar("2024-03-05", "10:00", { open: 101.01 })]);
  assert.equal(broken.length, 1);
  assert.equal(broken[0].detail, "high 101 is below open 101.01");
  assert.deepEqual(only("ohlc_consistency", [bar("2024-03-05", "10:00", { open: 101 })]), []);
});

Deno.test("validateBars() flags a low above the close or the high, and not a low equal to the close", () => {
  assert.equal(only("ohlc_consistency", [bar("2024-03-05", "10:00", { low: 100.51 })]).length, 1);
  assert.equal(
    only("ohlc_consistency", [bar("2024-03-05", "10:00", { low: 102, high: 101 })])[0].detail,
    "low 102 is above high 101",
  );
  assert.deepEqual(only("ohlc_consistency", [bar("2024-03-05", "10:00", { low: 100 })]), []);
});

Deno.test("validateBars() flags a 1m bar off the whole minute, and not one on it", () => {
  const on = bar("2024-03-05", "10:00");
  assert.equal(only("ts_alignment", [{ ...on, ts: on.ts + 1 }]).length, 1);
  assert.equal(only("ts_alignment", [{ ...on, ts: on.ts + 30_000 }]).length, 1);
  assert.deepEqual(only("ts_alignment", [on]), []);
});

Deno.test("validateBars() accepts 5m and 1h bars on the 09:30 or the clock grid, not off both", () => {
  const five = (time: string) => bar("2024-03-05", time, { timeframe: "5m" });
  assert.equal(only("ts_alignment", [five("09:36")]).length, 1);
  assert.deepEqual(only("ts_alignment", [five("09:35")]), []);
  const hour = (time: string) => bar("2024-03-05", time, { timeframe: "1h" });
  assert.deepEqual(only("ts_alignment", [hour("10:30")]), []); // session grid
  assert.deepEqual(only("ts_alignment", [hour("11:00")]), []); // clock grid (e.g. Alpaca)
  assert.deepEqual(only("ts_alignment", [hour("16:00")]), []); // after-hours start
  assert.equal(only("ts_alignment", [hour("10:45")]).length, 1);
  // The first pre-market hour starts at 04:00, a session start on neither grid's half hour.
  assert.deepEqual(only("ts_alignment", [hour("04:00")]), []);
});

Deno.test("validateBars() wants daily bars at midnight New York, across DST", () => {
  const daily = (date: string, time: string) =>
    bar(date, time, { timeframe: "1d", session: "regular" });
  assert.deepEqual(only("ts_alignment", [daily("2024-03-11", "00:00")]), []);
  assert.equal(only("ts_alignment", [daily("2024-03-11", "00:01")]).length, 1);
  // Midnight of the UTC day is not midnight in New York.
  const utcMidnight = { ...daily("2024-03-11", "00:00"), ts: Date.UTC(2024, 2, 11) };
  assert.equal(only("ts_alignment", [utcMidnight]).length, 1);
});

Deno.test("validateBars() flags the second bar with the same ts, and not the next minute", () => {
  const a = bar("2024-03-05", "10:00");
  const found = only("duplicate_key", [a, { ...a, close: 100.6 }]);
  assert.equal(found.length, 1);
  assert.deepEqual(only("duplicate_key", [a, bar("2024-03-05", "10:01")]), []);
});

Deno.test("validateBars() flags bars on a Saturday and on Good Friday, and not on a Friday", () => {
  assert.equal(only("non_trading_day", [bar("2024-03-09", "10:00")]).length, 1);
  assert.match(
    only("non_trading_day", [bar("2024-03-29", "10:00")])[0].detail,
    /2024-03-29 is not an NYSE trading day/,
  );
  assert.deepEqual(only("non_trading_day", [bar("2024-03-08", "10:00")]), []);
});

Deno.test("validateBars() flags bars outside 04:00-20:00 New York, after the DST switch too", () => {
  for (const date of ["2024-03-05", "2024-03-11"]) {
    assert.equal(only("outside_session", [bar(date, "03:59", { session: "pre" })]).length, 1);
    assert.deepEqual(only("outside_session", [bar(date, "04:00")]), []);
    assert.deepEqual(only("outside_session", [bar(date, "19:59")]), []);
    assert.equal(only("outside_session", [bar(date, "20:00", { session: "post" })]).length, 1);
  }
  // 04:00 New York is 08:00 UTC in summer time: 09:00 UTC would be 05:00, inside.
  assert.equal(bar("2024-03-11", "04:00").ts, Date.UTC(2024, 2, 11, 8));
});

Deno.test("validateBars() ends after-hours at 17:00 on an early-close day", () => {
  assert.deepEqual(only("outside_session", [bar("2024-11-29", "16:59")]), []);
  assert.equal(
    only("outside_session", [bar("2024-11-29", "17:00", { session: "post" })]).length,
    1,
  );
});

Deno.test("validateBars() flags a session label that contradicts the time, and not a right one", () => {
  assert.equal(
    only("session_label", [bar("2024-03-05", "09:29", { session: "regular" })])[0].detail,
    "labelled regular but 09:29 New York is pre",
  );
  assert.deepEqual(only("session_label", [bar("2024-03-05", "09:29", { session: "pre" })]), []);
  assert.deepEqual(only("session_label", [bar("2024-03-05", "09:30", { session: "regular" })]), []);
  // On an early-close day 13:00 is already after-hours.
  assert.equal(
    only("session_label", [bar("2024-11-29", "13:00", { session: "regular" })]).length,
    1,
  );
  assert.deepEqual(only("session_label", [bar("2024-11-29", "13:00", { session: "post" })]), []);
});

Deno.test("validateBars() flags a vwap above the high, and not one at the high or within the tolerance", () => {
  assert.equal(only("vwap_range", [bar("2024-03-05", "10:00", { vwap: 101.01 })]).length, 1);
  assert.equal(only("vwap_range", [bar("2024-03-05", "10:00", { vwap: 98.99 })]).length, 1);
  assert.deepEqual(only("vwap_range", [bar("2024-03-05", "10:00", { vwap: 101 })]), []);
  assert.deepEqual(only("vwap_range", [bar("2024-03-05", "10:00", { vwap: null })]), []);
  assert.deepEqual(
    only("vwap_range", [bar("2024-03-05", "10:00", { vwap: 101.09 })], {
      vwap_range: { threshold: 0.001 },
    }),
    [],
  );
});

Deno.test("validateBars() flags zero volume with movement, and not a flat bar or a traded one", () => {
  assert.equal(only("zero_volume_move", [bar("2024-03-05", "10:00", { volume: 0 })]).length, 1);
  const flat = { volume: 0, open: 100, high: 100, low: 100, close: 100, vwap: 100 };
  assert.deepEqual(only("zero_volume_move", [bar("2024-03-05", "10:00", flat)]), []);
  assert.deepEqual(only("zero_volume_move", [bar("2024-03-05", "10:00", { volume: 1 })]), []);
});

Deno.test("validateBars() flags a move above 20% from the previous close, and not one of exactly 20%", () => {
  const first = bar("2024-03-05", "10:00", { open: 100, high: 100, low: 100, close: 100 });
  const up = (close: number) =>
    bar("2024-03-05", "10:01", { open: 100, high: close, low: 100, close, vwap: 100 });
  const found = only("extreme_move", [first, up(120.01)]);
  assert.equal(found.length, 1);
  assert.equal(found[0].detail, "close 120.01 is 20.0% above the previous close 100");
  assert.deepEqual(only("extreme_move", [first, up(120)]), []);
  assert.deepEqual(
    only("extreme_move", [first, up(120.01)], { extreme_move: { threshold: 0.25 } }),
    [],
  );
});

Deno.test("validateBars() flags only the spike bar of a spike that reverts", () => {
  const flat = (time: string, price: number) =>
    bar("2024-03-05", time, {
      open: price,
      high: price,
      low: price,
      close: price,
      vwap: price,
    });
  const found = only("extreme_move", [
    flat("10:00", 100),
    flat("10:01", 150),
    flat("10:02", 100.5),
    flat("10:03", 100.4),
  ]);
  assert.deepEqual(found.map((f) => f.ts), [et("2024-03-05", "10:01")]);
});

Deno.test("validateBars() flags a split once, with a hint, and accepts the new level", () => {
  const flat = (time: string, price: number) =>
    bar("2024-03-05", time, {
      open: price,
      high: price,
      low: price,
      close: price,
      vwap: price,
    });
  const found = only("extreme_move", [
    flat("10:00", 100),
    flat("10:01", 50),
    flat("10:02", 50.2),
    flat("10:03", 49.9),
  ]);
  assert.equal(found.length, 1);
  assert.equal(
    found[0].detail,
    "close 50 is 50.0% below the previous close 100; looks like a 2:1 split, use split-adjusted data",
  );
});

Deno.test("validateBars() flags 30 regular closes in a row with volume, and not 29", () => {
  const run = (n: number) => [
    bar("2024-03-05", "10:00", { close: 100.4 }),
    ...minutes("2024-03-05", "10:01", n, { close: 100.5 }),
    bar("2024-03-05", "12:00", { close: 100.6 }),
  ];
  const found = only("stale_price", run(30));
  assert.equal(found.length, 1);
  assert.equal(found[0].ts, et("2024-03-05", "10:30"));
  assert.deepEqual(only("stale_price", run(29)), []);
  assert.equal(only("stale_price", run(5), { stale_price: { threshold: 5 } }).length, 1);
});

Deno.test("validateBars() does not count bars without volume or outside the regular session as stale", () => {
  const zero = minutes("2024-03-05", "10:00", 40, { close: 100.5 });
  for (const b of zero.filter((_, i) => i % 10 === 9)) {
    Object.assign(b, { volume: 0, open: 100.5, high: 100.5, low: 100.5, vwap: 100.5 });
  }
  assert.deepEqual(only("stale_price", zero), []);
  assert.deepEqual(only("stale_price", minutes("2024-03-05", "05:00", 60, { close: 100.5 })), []);
});

Deno.test("validateBars() flags volume above 20x the trailing median, and not 20x", () => {
  const history = minutes("2024-03-05", "10:00", 10, { volume: 100 });
  const next = (volume: number) => bar("2024-03-05", "10:10", { volume });
  const found = only("volume_spike", [...history, next(2001)]);
  assert.equal(found.length, 1);
  assert.equal(found[0].severity, "info");
  assert.deepEqual(only("volume_spike", [...history, next(2000)]), []);
});

Deno.test("validateBars() needs 10 bars of the same session before it judges a volume spike", () => {
  const nine = minutes("2024-03-05", "10:00", 9, { volume: 100 });
  assert.deepEqual(
    only("volume_spike", [...nine, bar("2024-03-05", "10:09", { volume: 1e6 })]),
    [],
  );
  // Pre-market history does not count for the regular open.
  const pre = minutes("2024-03-05", "09:00", 30, { volume: 100 });
  assert.deepEqual(only("volume_spike", [...pre, bar("2024-03-05", "09:30", { volume: 1e6 })]), []);
});

Deno.test("validateBars() flags a day missing more than 10% of its regular minutes, and not 10%", () => {
  const day = (present: number) => minutes("2024-03-05", "09:30", present);
  const found = only("missing_minutes", day(350));
  assert.equal(found.length, 1);
  assert.equal(found[0].ts, et("2024-03-05", "09:30"));
  assert.equal(found[0].detail, "350 of 390 regular-session minutes present (10.3% missing)");
  assert.deepEqual(only("missing_minutes", day(351)), []);
  // An early close has 210 regular minutes: 189 present is exactly 10% missing.
  assert.deepEqual(only("missing_minutes", minutes("2024-11-29", "09:30", 189)), []);
  assert.equal(only("missing_minutes", minutes("2024-11-29", "09:30", 188)).length, 1);
});

Deno.test("validateBars() reports every error of a bar but no warnings for it", () => {
  const bad = bar("2024-03-09", "10:00", { open: -1, volume: 0, vwap: 500 });
  assert.deepEqual(rules(validateBars([bad])), [
    "positive_prices",
    "ohlc_consistency",
    "non_trading_day",
  ]);
});

Deno.test("validateBars() checks each symbol on its own, in ts order", () => {
  const a = bar("2024-03-05", "10:00", { close: 100 });
  const b = { ...bar("2024-03-05", "10:01", { close: 200, high: 200 }), symbol: "MSFT" };
  const c = bar("2024-03-05", "10:02", { close: 100.1 });
  // Unsorted, interleaved: AAPL 100 -> 100.1 is calm; MSFT has a single bar.
  assert.deepEqual(only("extreme_move", [c, b, a]), []);
});

Deno.test("validateBars() skips disabled rules", () => {
  const bad = bar("2024-03-05", "10:00", { volume: 0 });
  assert.equal(only("zero_volume_move", [bad]).length, 1);
  assert.deepEqual(only("zero_volume_move", [bad], { zero_volume_move: { enabled: false } }), []);
});

Deno.test("validateBars() counts findings by rule and severity in the metrics", async () => {
  const metrics = createMetrics();
  validateBars(
    [bar("2024-03-05", "10:00", { volume: 0 }), bar("2024-03-05", "10:01", { low: -1 })],
    {
      metrics,
    },
  );
  const text = await metrics.registry.metrics();
  assert.match(text, /mp_validation_errors_total\{rule="zero_volume_move",severity="warn"\} 1/);
  assert.match(text, /mp_validation_errors_total\{rule="positive_prices",severity="error"\} 1/);
  assert.match(text, /mp_processing_time_seconds_count\{operation="validate"\} 1/);
});

Deno.test("createValidator() quarantines error bars under their first rule and keeps the rest", () => {
  const good = bar("2024-03-05", "10:00");
  const warned = bar("2024-03-05", "10:01", { vwap: 105 });
  const negative = bar("2024-03-05", "10:02", { open: -1 });
  const outside = bar("2024-03-05", "21:00", { session: "post" });
  const outcome = createValidator()([good, warned, negative, outside]);
  assert.deepEqual(outcome.keep, [good, warned]);
  assert.deepEqual(outcome.rejected.map((r) => [r.bar, r.rule]), [
    [negative, "positive_prices"],
    [outside, "outside_session"],
  ]);
  assert.match(outcome.rejected[1].detail, /starts at 21:00 New York, outside 04:00-20:00/);
  // Error rules count quarantined bars (one rule each), warnings and notes their findings: two
  // bars are far from a full regular session.
  assert.deepEqual(outcome.counts, {
    vwap_range: 1,
    positive_prices: 1,
    outside_session: 1,
    missing_minutes: 1,
  });
});

Deno.test("createValidator() with an error rule disabled keeps the bar", () => {
  const negative = bar("2024-03-05", "10:02", { low: -1 });
  const outcome = createValidator({ rules: { positive_prices: { enabled: false } } })([negative]);
  assert.deepEqual(outcome.keep, [negative]);
  assert.deepEqual(outcome.rejected, []);
});

Deno.test("parseValidationSettings() reads RULE.enabled and RULE.threshold lists", () => {
  assert.deepEqual(
    parseValidationSettings(
      "extreme_move.threshold=0.3, stale_price.enabled=false,extreme_move.enabled=true",
      "--validation",
    ),
    { extreme_move: { threshold: 0.3, enabled: true }, stale_price: { enabled: false } },
  );
  assert.deepEqual(parseValidationSettings("", "--validation"), {});
});

Deno.test("parseValidationSettings() rejects unknown rules, settings and bad values in one line", () => {
  const cases: [string, string][] = [
    [
      "extreme_moves.threshold=0.3",
      'Unknown validation rule "extreme_moves" in --validation (did you mean "extreme_move"?); see marketpipe validate --rules',
    ],
    [
      "extreme_move.treshold=0.3",
      'Invalid --validation "extreme_move.treshold=0.3": unknown setting "treshold" (did you mean "threshold"?), expected enabled or threshold',
    ],
    [
      "extreme_move.threshold=abc",
      'Invalid --validation "extreme_move.threshold=abc": expected a number from 0.001 to 100, got NaN',
    ],
    [
      "stale_price.threshold=2.5",
      'Invalid --validation "stale_price.threshold=2.5": expected a whole number from 2 to 100000, got 2.5',
    ],
    [
      "ohlc_consistency.threshold=1",
      'Invalid --validation "ohlc_consistency.threshold=1": rule "ohlc_consistency" has no threshold (ohlc_consistency.threshold)',
    ],
    [
      "stale_price.enabled=no",
      'Invalid --validation "stale_price.enabled=no": enabled must be true or false',
    ],
    [
      "stale_price",
      'Invalid --validation "stale_price": expected RULE.enabled=true|false or RULE.threshold=N, comma separated',
    ],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseValidationSettings(text, "--validation"), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.message, message);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("validationConfigText() turns the config mapping into --validation text", () => {
  assert.equal(
    validationConfigText(
      { rules: { extreme_move: { threshold: 0.3 }, "stale-price": { enabled: false } } },
      "mp.yaml",
    ),
    "extreme_move.threshold=0.3,stale_price.enabled=false",
  );
});

Deno.test("validationConfigText() names the full key of a bad config entry", () => {
  const cases: [unknown, string][] = [
    [
      { rule: {} },
      'Unknown key "validation.rule" in config file mp.yaml (did you mean "validation.rules"?)',
    ],
    [
      { rules: { extreme_moves: { threshold: 1 } } },
      'Unknown key "validation.rules.extreme_moves" in config file mp.yaml (did you mean "validation.rules.extreme_move"?)',
    ],
    [
      { rules: { extreme_move: { treshold: 1 } } },
      'Unknown key "validation.rules.extreme_move.treshold" in config file mp.yaml (did you mean "validation.rules.extreme_move.threshold"?)',
    ],
    [
      { rules: { extreme_move: { threshold: "high" } } },
      'Invalid value for "validation.rules.extreme_move.threshold" in config file mp.yaml: expected a number',
    ],
    [
      { rules: { extreme_move: { threshold: 0 } } },
      'Invalid value for "validation.rules.extreme_move.threshold" in config file mp.yaml: expected a number from 0.001 to 100, got 0',
    ],
    [
      { rules: { extreme_move: { enabled: "no" } } },
      'Invalid value for "validation.rules.extreme_move.enabled" in config file mp.yaml: expected true or false',
    ],
    [
      { rules: ["extreme_move"] },
      'Invalid value for "validation.rules" in config file mp.yaml: expected a mapping',
    ],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => validationConfigText(value, "mp.yaml"), { message });
  }
});

Deno.test("effectiveRules() applies settings and keeps the defaults of the rest", () => {
  const rules = effectiveRules({
    extreme_move: { threshold: 0.5 },
    stale_price: { enabled: false },
  });
  const byId = Object.fromEntries(rules.map((r) => [r.id, r]));
  assert.equal(byId.extreme_move.threshold, 0.5);
  assert.equal(byId.stale_price.enabled, false);
  assert.equal(byId.volume_spike.threshold, 20);
  assert.equal(byId.ohlc_consistency.threshold, undefined);
  assert.throws(() => effectiveRules({ nope: {} }), { name: "RangeError" });
});
