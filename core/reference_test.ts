import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import {
  checkSnapshot,
  type MergePlan,
  mergeSnapshot,
  type ReferenceSnapshot,
  SOURCE_PRIORITY,
  type SymbolRecord,
  type SymbolVersion,
} from "./reference.ts";
import { snapshot, symbolRecord } from "../tests/_reference.ts";

/** An active XNAS stock listed 2010-01-04, as `instrumentId`. */
function record(ticker: string, instrumentId: string, fields: Partial<SymbolRecord> = {}) {
  return symbolRecord(ticker, { instrumentId, listDate: "2010-01-04", ...fields });
}

/** The current rows after applying `plan` to `current`, as the store does. */
function apply(current: Map<string, SymbolVersion>, plan: MergePlan): Map<string, SymbolVersion> {
  const next = new Map(current);
  for (const id of plan.close) next.delete(id);
  for (const row of plan.open) next.set(row.instrumentId, row);
  return next;
}

/** Current rows after merging `snapshots` one by one from nothing. */
function merged(...snapshots: ReferenceSnapshot[]): Map<string, SymbolVersion> {
  let current = new Map<string, SymbolVersion>();
  for (const s of snapshots) current = apply(current, mergeSnapshot(current, s));
  return current;
}

const NONE = { inserted: 0, changed: 0, delisted: 0, unchanged: 0, skipped: 0 };

Deno.test("SOURCE_PRIORITY puts polygon first and lists every source once", () => {
  assert.deepEqual(SOURCE_PRIORITY, ["polygon", "alpaca", "nasdaq", "fake"]);
});

Deno.test("mergeSnapshot() inserts instruments seen for the first time", () => {
  const plan = mergeSnapshot(
    new Map(),
    snapshot("2024-01-02", [record("AAPL", "A"), record("MSFT", "M")], { skipped: 3 }),
  );
  assert.deepEqual(plan.close, []);
  assert.deepEqual(plan.counts, { ...NONE, inserted: 2, skipped: 3 });
  assert.deepEqual(plan.open[0], {
    ...record("AAPL", "A"),
    source: "fake",
    asOf: "2024-01-02",
    validFrom: "2024-01-02",
    validTo: null,
  });
});

Deno.test("mergeSnapshot() closes and reopens a changed instrument, and keeps equal ones", () => {
  const current = merged(snapshot("2024-01-02", [record("AAPL", "A"), record("MSFT", "M")]));
  const plan = mergeSnapshot(
    current,
    snapshot("2024-02-01", [record("AAPL", "A", { name: "Apple Inc." }), record("MSFT", "M")]),
  );
  assert.deepEqual(plan.close, ["A"]);
  assert.deepEqual(plan.open.map((r) => [r.ticker, r.name, r.validFrom]), [
    ["AAPL", "Apple Inc.", "2024-02-01"],
  ]);
  assert.deepEqual(plan.counts, { ...NONE, changed: 1, unchanged: 1 });
});

Deno.test("mergeSnapshot() follows a ticker change on the same instrument", () => {
  const current = merged(snapshot("2022-01-03", [record("FB", "FIGI-FB")]));
  const plan = mergeSnapshot(current, snapshot("2022-06-09", [record("META", "FIGI-FB")]));
  assert.deepEqual(plan.close, ["FIGI-FB"]);
  assert.deepEqual(plan.open.map((r) => [r.instrumentId, r.ticker]), [["FIGI-FB", "META"]]);
  assert.deepEqual(plan.counts, { ...NONE, changed: 1 });
});

Deno.test("mergeSnapshot() delists an instrument missing from a complete snapshot", () => {
  const current = merged(snapshot("2024-01-02", [record("AAPL", "A"), record("TWTR", "T")]));
  const plan = mergeSnapshot(current, snapshot("2024-03-01", [record("AAPL", "A")]));
  assert.deepEqual(plan.close, ["T"]);
  assert.deepEqual(plan.open, [{
    ...record("TWTR", "T", { status: "delisted", delistDate: "2024-03-01" }),
    source: "fake",
    asOf: "2024-03-01",
    validFrom: "2024-03-01",
    validTo: null,
  }]);
  assert.deepEqual(plan.counts, { ...NONE, delisted: 1, unchanged: 1 });
  // Still missing later: already delisted, nothing more happens.
  const later = mergeSnapshot(apply(current, plan), snapshot("2024-04-01", [record("AAPL", "A")]));
  assert.deepEqual(later.counts, { ...NONE, unchanged: 1 });
  assert.deepEqual(later.open, []);
});

Deno.test("mergeSnapshot() keeps a known delisting date of an instrument gone missing", () => {
  const current = merged(
    snapshot("2024-01-02", [record("TWTR", "T", { delistDate: "2024-02-15" })]),
  );
  const plan = mergeSnapshot(current, snapshot("2024-03-01", []));
  assert.equal(plan.open[0].delistDate, "2024-02-15");
  assert.equal(plan.open[0].status, "delisted");
});

Deno.test("mergeSnapshot() never delists by absence from a partial snapshot", () => {
  const current = merged(snapshot("2024-01-02", [record("AAPL", "A"), record("TWTR", "T")]));
  const plan = mergeSnapshot(
    current,
    snapshot("2024-03-01", [record("AAPL", "A")], { complete: false }),
  );
  assert.deepEqual(plan.close, []);
  assert.deepEqual(plan.open, []);
  assert.deepEqual(plan.counts, { ...NONE, unchanged: 1 });
});

Deno.test("mergeSnapshot() counts a record that says delisted as delisted, and twice as unchanged", () => {
  const current = merged(snapshot("2024-01-02", [record("TWTR", "T")]));
  const delisting = snapshot("2024-03-01", [record("TWTR", "T", { status: "delisted" })]);
  const plan = mergeSnapshot(current, delisting);
  assert.deepEqual(plan.counts, { ...NONE, delisted: 1 });
  // No date given: the snapshot's date stands in, and the same input again changes nothing.
  assert.equal(plan.open[0].delistDate, "2024-03-01");
  const again = mergeSnapshot(apply(current, plan), delisting);
  assert.deepEqual(again.counts, { ...NONE, unchanged: 1 });
  const later = mergeSnapshot(apply(current, plan), { ...delisting, asOf: "2024-04-01" });
  assert.deepEqual(later.counts, { ...NONE, unchanged: 1 });
});

Deno.test("mergeSnapshot() counts a relisting as changed", () => {
  const current = merged(
    snapshot("2024-01-02", [record("GME", "G")]),
    snapshot("2024-02-01", []),
  );
  assert.equal(current.get("G")!.status, "delisted");
  const plan = mergeSnapshot(current, snapshot("2024-03-01", [record("GME", "G")]));
  assert.deepEqual(plan.close, ["G"]);
  assert.deepEqual(plan.open.map((r) => [r.status, r.delistDate]), [["active", null]]);
  assert.deepEqual(plan.counts, { ...NONE, changed: 1 });
});

Deno.test("mergeSnapshot() of the same input twice leaves everything unchanged", () => {
  const input = snapshot("2024-01-02", [
    record("AAPL", "A"),
    record("OLD", "O", { status: "delisted", delistDate: null }),
    record("SPY", "S", { assetClass: "etf", exchange: "ARCX" }),
  ]);
  const current = merged(input);
  const plan = mergeSnapshot(current, input);
  assert.deepEqual(plan, { close: [], open: [], counts: { ...NONE, unchanged: 3 } });
});

Deno.test("mergeSnapshot() refuses a snapshot older than a current row", () => {
  const current = merged(snapshot("2024-03-01", [record("AAPL", "A")]));
  assert.throws(
    () => mergeSnapshot(current, snapshot("2024-01-02", [record("AAPL", "A")])),
    (error: Error) =>
      error instanceof UsageError &&
      /snapshot of 2024-01-02: instrument A \("AAPL"\) already has a row from 2024-03-01/.test(
        error.message,
      ),
  );
  assert.throws(
    () => mergeSnapshot(current, snapshot("2024-01-02", [])),
    /already has a row from 2024-03-01/,
  );
});

Deno.test("checkSnapshot() refuses duplicate ids and duplicate listed tickers, naming them", () => {
  assert.throws(
    () => checkSnapshot(snapshot("2024-01-02", [record("AAPL", "A"), record("AAPX", "A")])),
    /instrument id "A" appears twice \(ticker "AAPX"\)/,
  );
  assert.throws(
    () => checkSnapshot(snapshot("2024-01-02", [record("AAPL", "A"), record("AAPL", "B")])),
    /ticker "AAPL" is listed twice \(instruments A and B\)/,
  );
  // A ticker reused after a delisting is fine.
  checkSnapshot(snapshot("2024-01-02", [
    record("META", "OLD", { status: "delisted", delistDate: "2001-05-01" }),
    record("META", "NEW"),
  ]));
});

Deno.test("checkSnapshot() refuses bad dates, tickers, classes and statuses", () => {
  const bad = (fields: Partial<SymbolRecord>, pattern: RegExp, asOf = "2024-01-02") =>
    assert.throws(
      () => checkSnapshot(snapshot(asOf, [record("AAPL", "A", fields)])),
      (error: Error) => error instanceof UsageError && pattern.test(error.message),
    );
  bad({}, /Invalid as-of date "2024-02-30" of the fake snapshot/, "2024-02-30");
  bad({ ticker: "aapl" }, /Invalid ticker "aapl" in the fake snapshot of 2024-01-02/);
  bad({ ticker: "" }, /Invalid ticker ""/);
  bad(
    { assetClass: "bond" as SymbolRecord["assetClass"] },
    /Invalid asset class "bond" of record "AAPL" \(instrument A\)/,
  );
  bad({ status: "gone" as SymbolRecord["status"] }, /Invalid status "gone"/);
  bad({ listDate: "12/12/1980" }, /Invalid listDate "12\/12\/1980"/);
  bad({ instrumentId: "" }, /empty instrument id/);
  assert.throws(
    () => checkSnapshot({ ...snapshot("2024-01-02", []), source: "bloomberg" as "fake" }),
    /Invalid reference source "bloomberg"/,
  );
});
