import assert from "node:assert/strict";
import { HttpError } from "./errors.ts";
import {
  checkKnownParams,
  encodeCursor,
  parseCursor,
  parseDate,
  parseInteger,
  parseSymbol,
  parseTimeframe,
} from "./params.ts";

function badRequest(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HttpError);
    assert.equal(error.status, 400);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("parseCursor() reads back every encodeCursor() and refuses anything else", () => {
  // Epoch microseconds, sub-millisecond ones included, up to the last instant before 2200.
  for (const ts of [0n, 1709542800000000n, 1709542800123457n, 7258118399999999n]) {
    assert.equal(parseCursor(encodeCursor(ts)), ts);
  }
  // Cursors of earlier versions carried epoch ms.
  assert.equal(parseCursor(btoa("t:1709542800000").replace(/=+$/, "")), 1709542800000000n);
  assert.equal(parseCursor(undefined), undefined);
  const invalid = ["abc", "dDo", btoa("t:1.5"), btoa("t:1 OR 1=1"), "x".repeat(41), "a+b/"];
  // A bar time is never before 1970 nor from 2200 on: such a cursor is forged.
  invalid.push(encodeCursor(-86400000000n), btoa("t:-1").replace(/=+$/, ""));
  invalid.push(encodeCursor(7258118400000000n), btoa("u:1.5"), btoa("u:12345678901234567"));
  for (const text of invalid) {
    badRequest(() => parseCursor(text), /Invalid cursor/);
  }
});

Deno.test("parameter parsers name the parameter and bound the value shown", () => {
  assert.equal(parseSymbol("brk.b"), "BRK.B");
  badRequest(() => parseSymbol(undefined), /Missing symbol/);
  badRequest(() => parseSymbol("A".repeat(100)), /Invalid symbol "A{40}\.\.\."/);
  assert.equal(parseDate("2024-02-29", "start"), "2024-02-29");
  badRequest(() => parseDate("2023-02-29", "start"), /Invalid start "2023-02-29": no such/);
  badRequest(() => parseDate("1989-12-29", "end"), /Invalid end .*from 1990 to 2100/);
  assert.equal(parseTimeframe(undefined, "1m"), "1m");
  badRequest(
    () => parseTimeframe("5min", "1m"),
    /Invalid timeframe "5min" \(did you mean "5m"\?\)/,
  );
  assert.equal(parseInteger("25", "limit", { min: 1, max: 100, fallback: 10 }), 25);
  assert.equal(parseInteger(undefined, "limit", { min: 1, max: 100, fallback: 10 }), 10);
  for (const text of ["0", "101", "-1", "1.5", " 5", "0x10"]) {
    badRequest(() => parseInteger(text, "limit", { min: 1, max: 100, fallback: 10 }), /limit/);
  }
  checkKnownParams({ symbol: "A" }, ["symbol", "start"]);
  badRequest(() => checkKnownParams({ strat: "x" }, ["symbol", "start"]), /did you mean "start"/);
});
