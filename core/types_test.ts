import assert from "node:assert/strict";
import { isTimeframe, parseTimeframe, TIMEFRAMES } from "./types.ts";

Deno.test("isTimeframe() accepts exactly the TIMEFRAMES", () => {
  for (const timeframe of TIMEFRAMES) assert.equal(isTimeframe(timeframe), true, timeframe);
  for (const text of ["", "1M", "2m", "1w", " 1m", "1d "]) {
    assert.equal(isTimeframe(text), false, JSON.stringify(text));
  }
});

Deno.test("parseTimeframe() returns a stored timeframe and refuses anything else", () => {
  assert.equal(parseTimeframe("4h"), "4h");
  assert.throws(
    () => parseTimeframe("2h"),
    new TypeError('Invalid timeframe "2h": expected one of 1m 5m 15m 30m 1h 4h 1d'),
  );
  assert.throws(() => parseTimeframe(null), /Invalid timeframe null/);
});
