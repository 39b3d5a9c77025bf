import assert from "node:assert/strict";
import { judgeFreshness } from "./freshness.ts";

const at = (iso: string) => Date.parse(iso);

Deno.test("judgeFreshness() counts sessions missed since the last stored one, skipping the holiday", () => {
  // Friday 2024-07-05 17:00 ET: the 1d session closed at 16:00, the intraday one is still open.
  const now = at("2024-07-05T21:00:00Z");
  const judged = judgeFreshness([
    { symbol: "AAPL", timeframe: "1d", last: "2024-07-02" },
    { symbol: "AAPL", timeframe: "1m", last: "2024-07-03" },
    { symbol: "MSFT", timeframe: "1d", last: "2024-07-05" },
  ], now);
  assert.deepEqual(
    judged.map((s) => [s.symbol, s.timeframe, s.expected, s.stale, s.missedSessions]),
    [
      ["AAPL", "1d", "2024-07-05", true, 2], // 07-03 (early close) and 07-05; 07-04 is a holiday
      ["AAPL", "1m", "2024-07-03", false, 0], // 07-05 after-hours end at 20:00 ET
      ["MSFT", "1d", "2024-07-05", false, 0],
    ],
  );
  // Stale since the 13:00 ET early close of July 3.
  assert.equal(judged[0].staleSince, at("2024-07-03T17:00:00Z"));
  assert.equal(judged[1].staleSince, null);
});

Deno.test("judgeFreshness() waits out the grace before calling a series stale", () => {
  const series = [{ symbol: "SPY", timeframe: "1d" as const, last: "2024-07-02" }];
  const justAfterClose = at("2024-07-03T17:30:00Z"); // 13:30 ET, 30 min after the early close
  assert.equal(judgeFreshness(series, justAfterClose)[0].stale, true);
  assert.equal(judgeFreshness(series, justAfterClose, { graceMs: 3_600_000 })[0].stale, false);
});

Deno.test("judgeFreshness() judges several sources of a series by the newest", () => {
  const judged = judgeFreshness([
    { symbol: "SPY", timeframe: "1d", last: "2024-01-05", source: "fake/sip/raw" },
    { symbol: "SPY", timeframe: "1d", last: "2024-07-05", source: "alpaca/iex/raw" },
  ], at("2024-07-05T21:00:00Z"));
  assert.equal(judged.length, 1);
  assert.deepEqual([judged[0].source, judged[0].stale], ["alpaca/iex/raw", false]);
});
