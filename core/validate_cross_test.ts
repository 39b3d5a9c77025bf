import assert from "node:assert/strict";
import type { Bar } from "./types.ts";
import { crossCheckBars } from "./validate_cross.ts";

function daily(date: string, fields: Partial<Bar> = {}): Bar {
  return {
    symbol: "SPY",
    timeframe: "1d",
    ts: Date.parse(`${date}T05:00:00Z`),
    open: 500,
    high: 505,
    low: 495,
    close: 502,
    volume: 1_000_000,
    vwap: 501,
    tradeCount: 10_000,
    tradingDate: date,
    session: "regular",
    provider: "alpaca",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

Deno.test("crossCheckBars() finds nothing when the provider agrees within the tolerance", () => {
  const result = crossCheckBars([daily("2024-03-04")], [daily("2024-03-04", { close: 502.5 })]);
  assert.deepEqual(result.findings, []);
  assert.equal(result.compared, 1);
});

Deno.test("crossCheckBars() reports each field beyond the tolerance in one finding", () => {
  const result = crossCheckBars(
    [daily("2024-03-04")],
    [daily("2024-03-04", { close: 505, volume: 900_000 })],
  );
  assert.equal(result.findings.length, 1);
  const [finding] = result.findings;
  assert.equal(finding.rule, "cross_check");
  assert.equal(finding.severity, "warn");
  assert.equal(
    finding.detail,
    "close 502 vs 505 from 1m (0.59%); volume 1000000 vs 900000 from 1m (10.00%)",
  );
  assert.deepEqual(
    crossCheckBars([daily("2024-03-04")], [daily("2024-03-04", { close: 505 })], {
      tolerance: 0.01,
    }).findings,
    [],
  );
});

Deno.test("crossCheckBars() reports a provider bar with no bucket of ours, unless its day has no 1m bars", () => {
  const provided = [daily("2024-03-04"), daily("2024-03-05")];
  const result = crossCheckBars(provided, [daily("2024-03-04")], {
    minuteDays: new Set(["2024-03-04"]),
  });
  assert.deepEqual(result.findings, []);
  assert.equal(result.skipped, 1);
  const misaligned = crossCheckBars(provided, [daily("2024-03-04")], {
    minuteDays: new Set(["2024-03-04", "2024-03-05"]),
  });
  assert.equal(misaligned.findings.length, 1);
  assert.match(misaligned.findings[0].detail, /no 1d bucket of the 1m bars starts here/);
});
