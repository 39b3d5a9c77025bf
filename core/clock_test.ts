import assert from "node:assert/strict";
import {
  clockFromEnv,
  fixedClock,
  includesExtendedHours,
  isSessionClosed,
  lastCompletedSession,
  systemClock,
} from "./clock.ts";
import { UsageError } from "./errors.ts";

const at = (text: string) => Date.parse(text);
const extended = { extendedHours: true };

Deno.test("lastCompletedSession() on a Saturday is the Friday before, for both closes", () => {
  // 2024-03-09 is a Saturday; 12:00 ET.
  assert.equal(lastCompletedSession(at("2024-03-09T17:00:00Z")), "2024-03-08");
  assert.equal(lastCompletedSession(at("2024-03-09T17:00:00Z"), extended), "2024-03-08");
});

Deno.test("lastCompletedSession() at 11:00 ET on a trading day is the previous session", () => {
  // 2024-03-05 (Tuesday, EST): 11:00 ET is 16:00Z.
  assert.equal(lastCompletedSession(at("2024-03-05T16:00:00Z")), "2024-03-04");
  assert.equal(lastCompletedSession(at("2024-03-05T16:00:00Z"), extended), "2024-03-04");
  // Monday 2024-03-04 at 11:00 ET: the Friday before.
  assert.equal(lastCompletedSession(at("2024-03-04T16:00:00Z")), "2024-03-01");
});

Deno.test("lastCompletedSession() at 13:30 ET on early-close days counts the 13:00 close", () => {
  // 2024-11-29, the day after Thanksgiving (2024-11-28, closed): 13:30 ET is 18:30Z.
  assert.equal(lastCompletedSession(at("2024-11-29T18:30:00Z")), "2024-11-29");
  assert.equal(lastCompletedSession(at("2024-11-29T18:30:00Z"), extended), "2024-11-27");
  // After-hours end at 17:00 ET on early closes.
  assert.equal(lastCompletedSession(at("2024-11-29T21:59:00Z"), extended), "2024-11-27");
  assert.equal(lastCompletedSession(at("2024-11-29T22:00:00Z"), extended), "2024-11-29");
  // Christmas Eve 2024 closes at 13:00; 12:59 ET is still open.
  assert.equal(lastCompletedSession(at("2024-12-24T17:59:00Z")), "2024-12-23");
  assert.equal(lastCompletedSession(at("2024-12-24T18:30:00Z")), "2024-12-24");
  assert.equal(lastCompletedSession(at("2024-12-24T18:30:00Z"), extended), "2024-12-23");
  // Christmas Day (closed) at noon.
  assert.equal(lastCompletedSession(at("2024-12-25T17:00:00Z"), extended), "2024-12-24");
});

Deno.test("lastCompletedSession() follows the close across DST switches", () => {
  // 2024-03-11, the first session after the spring switch: 16:00 EDT is 20:00Z (21:00Z in EST).
  assert.equal(lastCompletedSession(at("2024-03-11T19:59:59.999Z")), "2024-03-08");
  assert.equal(lastCompletedSession(at("2024-03-11T20:00:00Z")), "2024-03-11");
  // 2024-11-04, the first session after the autumn switch: 16:00 EST is 21:00Z.
  assert.equal(lastCompletedSession(at("2024-11-04T20:30:00Z")), "2024-11-01");
  assert.equal(lastCompletedSession(at("2024-11-04T21:00:00Z")), "2024-11-04");
  assert.equal(lastCompletedSession(at("2024-11-05T00:59:00Z"), extended), "2024-11-01");
  assert.equal(lastCompletedSession(at("2024-11-05T01:00:00Z"), extended), "2024-11-04");
});

Deno.test("lastCompletedSession() with extended hours turns at 20:00 ET, not 19:59", () => {
  // 2024-03-05 (EST): 19:59 ET is 00:59Z of the next UTC day, still 2024-03-05 in New York.
  assert.equal(lastCompletedSession(at("2024-03-06T00:59:00Z"), extended), "2024-03-04");
  assert.equal(lastCompletedSession(at("2024-03-06T01:00:00Z"), extended), "2024-03-05");
  // The regular close had passed long before.
  assert.equal(lastCompletedSession(at("2024-03-06T00:59:00Z")), "2024-03-05");
  // 01:00 ET the next morning, before any session opens.
  assert.equal(lastCompletedSession(at("2024-03-06T06:00:00Z"), extended), "2024-03-05");
});

Deno.test("lastCompletedSession() outside the calendar's years", () => {
  assert.equal(lastCompletedSession(at("1989-06-01T12:00:00Z")), undefined);
  assert.equal(lastCompletedSession(at("1990-01-02T16:00:00Z")), undefined);
  assert.equal(lastCompletedSession(at("1990-01-02T21:00:00Z")), "1990-01-02");
  assert.equal(lastCompletedSession(at("2150-01-01T00:00:00Z")), "2100-12-31");
  assert.throws(() => lastCompletedSession(NaN), TypeError);
});

Deno.test("isSessionClosed() is true from the close on, false on closed days", () => {
  const close = at("2024-03-05T21:00:00Z");
  assert.equal(isSessionClosed("2024-03-05", close - 1), false);
  assert.equal(isSessionClosed("2024-03-05", close), true);
  assert.equal(isSessionClosed("2024-03-05", close, extended), false);
  assert.equal(isSessionClosed("2024-03-05", at("2024-03-06T01:00:00Z"), extended), true);
  assert.equal(isSessionClosed("2024-03-09", at("2030-01-01T00:00:00Z")), false);
  assert.equal(isSessionClosed("2024-12-25", at("2030-01-01T00:00:00Z")), false);
});

Deno.test("includesExtendedHours() is true for intraday timeframes only", () => {
  for (const tf of ["1m", "5m", "15m", "30m", "1h", "4h"] as const) {
    assert.equal(includesExtendedHours(tf), true, tf);
  }
  assert.equal(includesExtendedHours("1d"), false);
});

Deno.test("fixedClock() reads ISO instants with a zone and epoch milliseconds", () => {
  assert.equal(fixedClock("2026-12-01T16:00:00Z")(), at("2026-12-01T16:00:00Z"));
  assert.equal(fixedClock("2026-12-01T11:00-05:00")(), at("2026-12-01T16:00:00Z"));
  assert.equal(fixedClock("2026-12-01T16:00:00.250Z")(), at("2026-12-01T16:00:00.250Z"));
  assert.equal(fixedClock("1764604800000")(), 1764604800000);
});

Deno.test("fixedClock() refuses anything else with a UsageError naming the value", () => {
  for (
    const text of ["", "now", "2026-12-01", "2026-12-01T16:00:00", "2026-13-01T00:00:00Z", "-5"]
  ) {
    assert.throws(
      () => fixedClock(text),
      (error: Error) =>
        error instanceof UsageError &&
        error.message.startsWith(`Invalid MARKETPIPE_NOW "${text}": expected an ISO 8601 instant`),
      text,
    );
  }
});

Deno.test("clockFromEnv() fixes the clock from MARKETPIPE_NOW, else uses the system clock", () => {
  assert.equal(
    clockFromEnv({ MARKETPIPE_NOW: "2024-03-05T16:00:00Z" })(),
    at("2024-03-05T16:00:00Z"),
  );
  assert.equal(clockFromEnv({}), systemClock);
  assert.equal(clockFromEnv({ MARKETPIPE_NOW: "" }), systemClock);
  assert.throws(() => clockFromEnv({ MARKETPIPE_NOW: "tomorrow" }), UsageError);
  const before = Date.now();
  const now = systemClock();
  assert.ok(now >= before && now <= Date.now());
});
