import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { UsageError } from "../core/errors.ts";
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { snapshot, symbolRecord } from "../tests/_reference.ts";
import { migrate } from "./meta.ts";
import { ReferenceStore } from "./reference.ts";

/** A migrated in-memory metadata database, as openDatabase sets it up (foreign keys on). */
function openDb(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  db.exec("PRAGMA foreign_keys = ON");
  migrate(db);
  return db;
}

/** Run `fn` with a ReferenceStore on a fresh database whose clock reads 2024-01-02. */
function withStore(fn: (store: ReferenceStore, db: DatabaseSync) => void): void {
  const db = openDb();
  try {
    fn(new ReferenceStore(db, { now: () => Date.parse("2024-01-02T15:00:00Z") }), db);
  } finally {
    db.close();
  }
}

/** An active XNAS stock with no list date, as `instrumentId`. */
function record(ticker: string, instrumentId: string, fields: Partial<SymbolRecord> = {}) {
  return symbolRecord(ticker, { instrumentId, ...fields });
}

const FB = "BBG000MM2P62";
const AAPL = record("AAPL", "BBG000B9XRY4", { listDate: "1980-12-12" });
const TWTR = record("TWTR", "BBG000H6HNW3", { exchange: "XNYS", listDate: "2013-11-07" });
const NEWCO = record("NEWC", "BBG0NEWCO001", { listDate: "2023-01-03" });

/** FB renamed META on 2022-06-09, TWTR gone from 2022-11-08, NEWC listed 2023-01-03. */
const HISTORY: ReferenceSnapshot[] = [
  snapshot("2022-01-03", [record("FB", FB, { listDate: "2012-05-18" }), AAPL, TWTR]),
  snapshot("2022-06-09", [
    record("META", FB, { name: "Meta Platforms", listDate: "2012-05-18" }),
    AAPL,
    TWTR,
  ]),
  snapshot("2022-11-08", [
    record("META", FB, { name: "Meta Platforms", listDate: "2012-05-18" }),
    AAPL,
  ]),
  snapshot("2023-01-03", [
    record("META", FB, { name: "Meta Platforms", listDate: "2012-05-18" }),
    AAPL,
    NEWCO,
  ]),
];

function count(db: DatabaseSync, table: string): number {
  return Number(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()!.n);
}

Deno.test("ReferenceStore.applySnapshots() counts each outcome and logs every snapshot", () => {
  withStore((store, db) => {
    const counts = store.applySnapshots(HISTORY);
    assert.deepEqual(counts, { inserted: 4, changed: 1, delisted: 1, unchanged: 6, skipped: 0 });
    assert.equal(count(db, "symbol_history"), 6);
    assert.equal(count(db, "reference_updates"), 4);
    assert.equal(store.latestAsOf("fake"), "2023-01-03");
    assert.equal(store.latestAsOf("polygon"), undefined);
  });
});

Deno.test("ReferenceStore.applySnapshots() twice with the same input changes nothing", () => {
  withStore((store, db) => {
    store.applySnapshots(HISTORY);
    const again = store.applySnapshots([HISTORY[3]]);
    assert.deepEqual(again, { inserted: 0, changed: 0, delisted: 0, unchanged: 3, skipped: 0 });
    assert.equal(count(db, "symbol_history"), 6);
  });
});

Deno.test("ReferenceStore.applySnapshots() refuses an older snapshot that differs and writes nothing", () => {
  withStore((store, db) => {
    store.applySnapshots(HISTORY.slice(0, 2));
    const renamed = snapshot("2022-01-03", [
      record("FB", FB, { name: "Facebook", listDate: "2012-05-18" }),
      AAPL,
      TWTR,
    ]);
    assert.throws(
      () => store.applySnapshots([renamed]),
      (error: Error) =>
        error instanceof UsageError &&
        error.message ===
          `Cannot apply the fake snapshot of 2022-01-03: the snapshot of 2022-06-09 is already applied, and this one differs from the history on 2022-01-03 (instrument ${FB} "FB" differs in name); snapshots of a source apply oldest first`,
    );
    assert.throws(
      () => store.applySnapshots([snapshot("2022-01-03", [AAPL, TWTR])]),
      /differs from the history on 2022-01-03 \(instrument BBG000MM2P62 "FB" differs in status, delistDate\)/,
    );
    assert.throws(
      () => store.applySnapshots([snapshot("2022-01-03", [AAPL, NEWCO])]),
      /instrument BBG0NEWCO001 "NEWC" is new/,
    );
    assert.throws(
      () => store.applySnapshots([HISTORY[3], HISTORY[2]]),
      /snapshot of 2022-11-08: the snapshot of 2023-01-03 is before it in the input/,
    );
    assert.equal(count(db, "symbol_history"), 4);
    assert.equal(store.latestAsOf("fake"), "2022-06-09");
  });
});

Deno.test("ReferenceStore.applySnapshots() takes an older snapshot equal to the history as a replay", () => {
  withStore((store, db) => {
    // A source that returns its whole dated history sends the old snapshots on every run.
    store.applySnapshots(HISTORY);
    const again = store.applySnapshots(HISTORY);
    assert.deepEqual(again, { inserted: 0, changed: 0, delisted: 0, unchanged: 11, skipped: 0 });
    assert.equal(count(db, "symbol_history"), 6);
    assert.equal(count(db, "reference_updates"), 5, "only the latest is logged again");
  });
});

Deno.test("ReferenceStore.applySnapshots() writes nothing when a later snapshot is invalid", () => {
  withStore((store, db) => {
    const bad = snapshot("2022-06-09", [AAPL, record("AAPL", "OTHER")]);
    assert.throws(
      () => store.applySnapshots([HISTORY[0], bad]),
      /ticker "AAPL" is listed twice/,
    );
    assert.equal(count(db, "symbol_history"), 0);
    assert.equal(count(db, "reference_updates"), 0);
  });
});

Deno.test("ReferenceStore.applySnapshots() with dryRun counts the same and writes nothing", () => {
  withStore((store, db) => {
    store.applySnapshots(HISTORY.slice(0, 1));
    const dry = store.applySnapshots(HISTORY.slice(1), { dryRun: true });
    assert.deepEqual(dry, { inserted: 1, changed: 1, delisted: 1, unchanged: 6, skipped: 0 });
    assert.equal(count(db, "symbol_history"), 3);
    assert.equal(count(db, "reference_updates"), 1);
    assert.deepEqual(store.applySnapshots(HISTORY.slice(1)), dry);
  });
});

Deno.test("ReferenceStore.applySnapshots() of a corrected snapshot on the same date supersedes the first", () => {
  withStore((store, db) => {
    store.applySnapshots([snapshot("2024-01-02", [AAPL])]);
    const counts = store.applySnapshots([
      snapshot("2024-01-02", [record("AAPL", AAPL.instrumentId, { name: "Apple Inc." })]),
    ]);
    assert.deepEqual(counts, { inserted: 0, changed: 1, delisted: 0, unchanged: 0, skipped: 0 });
    assert.deepEqual(store.symbolsAsOf({ asOf: "2024-01-02" }).map((r) => r.name), ["Apple Inc."]);
    // The first row stays, closed the day it opened, so it is valid on no date.
    assert.deepEqual(store.history("AAPL").map((r) => [r.name, r.validFrom, r.validTo]), [
      ["AAPL Inc.", "2024-01-02", "2024-01-02"],
      ["Apple Inc.", "2024-01-02", null],
    ]);
    assert.deepEqual(store.tickerSegments("AAPL", "2024-01-01", "2024-01-05"), [
      { ticker: "AAPL", start: "2024-01-01", end: "2024-01-05" },
    ]);
    assert.equal(count(db, "reference_updates"), 2);
  });
});

Deno.test("ReferenceStore.applySnapshots() counts the skipped rows of every snapshot", () => {
  withStore((store) => {
    const counts = store.applySnapshots([
      snapshot("2024-01-02", [AAPL], { skipped: 4 }),
      snapshot("2024-01-02", [AAPL], { source: "nasdaq", complete: false, skipped: 2 }),
    ]);
    assert.deepEqual(counts, { inserted: 2, changed: 0, delisted: 0, unchanged: 0, skipped: 6 });
    assert.equal(store.lookup("AAPL")?.source, "nasdaq", "nasdaq comes before fake");
  });
});

Deno.test("ReferenceStore.symbolsAsOf() answers at the boundaries of each row", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    const tickers = (asOf?: string) => store.symbolsAsOf({ asOf }).map((r) => r.ticker);
    assert.deepEqual(tickers("2022-01-02"), []);
    assert.deepEqual(tickers("2022-01-03"), ["AAPL", "FB", "TWTR"]);
    assert.deepEqual(tickers("2022-06-08"), ["AAPL", "FB", "TWTR"]);
    assert.deepEqual(tickers("2022-06-09"), ["AAPL", "META", "TWTR"]);
    const twtr = store.symbolsAsOf({ asOf: "2022-11-08" }).find((r) => r.ticker === "TWTR")!;
    assert.equal(twtr.status, "delisted");
    assert.equal(twtr.delistDate, "2022-11-08");
    assert.equal(
      store.symbolsAsOf({ asOf: "2022-11-07" }).find((r) => r.ticker === "TWTR")!.status,
      "active",
    );
    assert.deepEqual(tickers(), ["AAPL", "META", "NEWC", "TWTR"]);
    assert.deepEqual(store.symbolsAsOf({ source: "polygon" }), []);
  });
});

Deno.test("ReferenceStore.history() of META includes the FB rows, oldest first", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    const rows = store.history("meta");
    assert.deepEqual(rows.map((r) => [r.ticker, r.validFrom, r.validTo]), [
      ["FB", "2022-01-03", "2022-06-09"],
      ["META", "2022-06-09", null],
    ]);
    assert.deepEqual(store.history("FB"), rows);
    assert.deepEqual(store.history("NOPE"), []);
  });
});

Deno.test("ReferenceStore.lookup() prefers polygon over fake and a listed instrument over a delisted one", () => {
  withStore((store) => {
    store.applySnapshots([
      snapshot("2024-01-02", [record("ABC", "F1", { name: "fake ABC" })]),
      snapshot("2024-01-02", [
        record("ABC", "P-OLD", { status: "delisted", delistDate: "2001-01-01" }),
        record("ABC", "P-NEW", { name: "polygon ABC" }),
      ], { source: "polygon" }),
    ]);
    assert.equal(store.lookup("abc")?.name, "polygon ABC");
    assert.equal(store.lookup("XYZ"), undefined);
  });
});

Deno.test("ReferenceStore.tickerSegments() splits a range at FB -> META", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    assert.deepEqual(store.tickerSegments("META", "2022-06-01", "2022-06-15"), [
      { ticker: "FB", start: "2022-06-01", end: "2022-06-08" },
      { ticker: "META", start: "2022-06-09", end: "2022-06-15" },
    ]);
    // Before the master's first row the first ticker holds.
    assert.deepEqual(store.tickerSegments("META", "2021-01-04", "2022-06-09"), [
      { ticker: "FB", start: "2021-01-04", end: "2022-06-08" },
      { ticker: "META", start: "2022-06-09", end: "2022-06-09" },
    ]);
    assert.deepEqual(store.tickerSegments("META", "2021-01-04", "2021-12-31"), [
      { ticker: "FB", start: "2021-01-04", end: "2021-12-31" },
    ]);
    assert.deepEqual(store.tickerSegments("META", "2023-01-03", "2023-02-01"), [
      { ticker: "META", start: "2023-01-03", end: "2023-02-01" },
    ]);
    assert.deepEqual(store.tickerSegments("AAPL", "2021-01-04", "2023-02-01"), [
      { ticker: "AAPL", start: "2021-01-04", end: "2023-02-01" },
    ]);
    // FB is no current ticker and ZZZ is unknown: stored and fetched under themselves.
    assert.deepEqual(store.tickerSegments("FB", "2022-06-01", "2022-06-15"), [
      { ticker: "FB", start: "2022-06-01", end: "2022-06-15" },
    ]);
    assert.deepEqual(store.tickerSegments("ZZZ", "2022-06-01", "2022-06-01"), [
      { ticker: "ZZZ", start: "2022-06-01", end: "2022-06-01" },
    ]);
  });
});

Deno.test("ReferenceStore.storedTicker() and members({stored}) name members by their ticker now", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    assert.equal(store.storedTicker("FB", "2022-06-08"), "META");
    assert.equal(store.storedTicker("fb", "2022-01-03"), "META");
    // FB is nobody's ticker after the change, TWTR is delisted (its last ticker), ZZZ unknown.
    assert.equal(store.storedTicker("FB", "2022-06-09"), "FB");
    assert.equal(store.storedTicker("TWTR", "2022-06-01"), "TWTR");
    assert.equal(store.storedTicker("ZZZ", "2022-06-01"), "ZZZ");
    store.createUniverse("nasdaq", {
      filter: "exchange = 'xnas' and status = 'active'",
      asOf: "2024-01-02",
    });
    const today = "2024-01-02";
    assert.deepEqual(store.members("nasdaq", { asOf: "2022-06-08", today }), ["AAPL", "FB"]);
    assert.deepEqual(store.members("nasdaq", { asOf: "2022-06-08", today, stored: true }), [
      "AAPL",
      "META",
    ]);
    assert.deepEqual(
      store.members("nasdaq", { start: "2022-01-01", end: "2022-12-31", today, stored: true }),
      ["AAPL", "META"],
    );
  });
});

Deno.test("ReferenceStore.listingWindows() gives listing and delisting dates of known symbols only", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    assert.deepEqual(
      store.listingWindows(["AAPL", "twtr", "NEWC", "ZZZZ"]),
      new Map([
        ["AAPL", { start: "1980-12-12", end: null }],
        ["TWTR", { start: "2013-11-07", end: "2022-11-08" }],
        ["NEWC", { start: "2023-01-03", end: null }],
      ]),
    );
    assert.deepEqual(store.listingWindows([]), new Map());
  });
});

Deno.test("ReferenceStore list universes keep add and remove history by date", () => {
  withStore((store) => {
    const created = store.createUniverse("Tech", {
      symbols: ["aapl", "MSFT", "AAPL"],
      description: "big tech",
      asOf: "2022-01-03",
    });
    assert.deepEqual(
      { ...created, createdAt: 0, updatedAt: 0 },
      {
        name: "tech",
        kind: "list",
        filter: null,
        description: "big tech",
        createdAt: 0,
        updatedAt: 0,
        members: 2,
      },
    );
    assert.deepEqual(store.addMembers("tech", ["NVDA", "AAPL"], "2022-06-01"), {
      added: ["NVDA"],
      already: ["AAPL"],
    });
    assert.deepEqual(store.removeMembers("TECH", ["MSFT", "IBM"], "2022-09-01"), {
      removed: ["MSFT"],
      notMembers: ["IBM"],
    });
    const today = "2024-01-02";
    assert.deepEqual(store.members("tech", { asOf: "2022-01-02", today }), []);
    assert.deepEqual(store.members("tech", { asOf: "2022-05-31", today }), ["AAPL", "MSFT"]);
    assert.deepEqual(store.members("tech", { asOf: "2022-06-01", today }), [
      "AAPL",
      "MSFT",
      "NVDA",
    ]);
    assert.deepEqual(store.members("tech", { asOf: "2022-09-01", today }), ["AAPL", "NVDA"]);
    assert.deepEqual(store.members("tech", { today }), ["AAPL", "NVDA"]);
    assert.deepEqual(store.members("tech", { start: "2022-09-01", end: "2022-12-31", today }), [
      "AAPL",
      "NVDA",
    ]);
    assert.deepEqual(store.members("tech", { start: "2022-08-01", end: "2022-12-31", today }), [
      "AAPL",
      "MSFT",
      "NVDA",
    ]);
    assert.deepEqual(store.members("tech", { start: "2021-01-01", end: "2022-05-31", today }), [
      "AAPL",
      "MSFT",
    ]);
    // Re-adding MSFT on the date it left joins the two intervals again.
    assert.deepEqual(store.addMembers("tech", ["MSFT"], "2022-09-01").added, ["MSFT"]);
    assert.deepEqual(store.memberIntervals("tech"), [
      { symbol: "AAPL", validFrom: "2022-01-03", validTo: null },
      { symbol: "MSFT", validFrom: "2022-01-03", validTo: null },
      { symbol: "NVDA", validFrom: "2022-06-01", validTo: null },
    ]);
    store.removeMembers("tech", ["MSFT"], "2023-01-03");
    store.addMembers("tech", ["MSFT"], "2023-06-01");
    assert.deepEqual(store.memberIntervals("tech").filter((i) => i.symbol === "MSFT"), [
      { symbol: "MSFT", validFrom: "2022-01-03", validTo: "2023-01-03" },
      { symbol: "MSFT", validFrom: "2023-06-01", validTo: null },
    ]);
    assert.deepEqual(store.members("tech", { asOf: "2023-03-01", today }), ["AAPL", "NVDA"]);
    assert.deepEqual(store.listUniverses({ asOf: "2023-03-01" }).map((u) => u.members), [2]);
    assert.equal(store.getUniverse("TECH")?.members, 3);
  });
});

Deno.test("ReferenceStore filter universes are evaluated point in time over the history", () => {
  withStore((store) => {
    store.applySnapshots(HISTORY);
    store.createUniverse("nasdaq", {
      filter: "exchange = 'xnas' and status = 'active'",
      asOf: "2024-01-02",
    });
    store.createUniverse("listed", { filter: "status <> 'delisted'", asOf: "2024-01-02" });
    const today = "2024-01-02";
    assert.deepEqual(store.members("nasdaq", { asOf: "2022-06-08", today }), ["AAPL", "FB"]);
    assert.deepEqual(store.members("nasdaq", { asOf: "2022-06-09", today }), ["AAPL", "META"]);
    assert.deepEqual(store.members("nasdaq", { today }), ["AAPL", "META", "NEWC"]);
    assert.deepEqual(store.members("listed", { asOf: "2022-11-07", today }), [
      "AAPL",
      "META",
      "TWTR",
    ]);
    assert.deepEqual(store.members("listed", { asOf: "2022-11-08", today }), ["AAPL", "META"]);
    assert.deepEqual(store.members("listed", { start: "2022-01-01", end: "2022-12-31", today }), [
      "AAPL",
      "FB",
      "META",
      "TWTR",
    ]);
    // AAPL's rows are one merged interval; TWTR's ends at its delisting.
    assert.deepEqual(store.memberIntervals("listed"), [
      { symbol: "AAPL", validFrom: "2022-01-03", validTo: null },
      { symbol: "FB", validFrom: "2022-01-03", validTo: "2022-06-09" },
      { symbol: "META", validFrom: "2022-06-09", validTo: null },
      { symbol: "NEWC", validFrom: "2023-01-03", validTo: null },
      { symbol: "TWTR", validFrom: "2022-01-03", validTo: "2022-11-08" },
    ]);
    assert.deepEqual(
      store.listUniverses({ asOf: "2022-11-07" }).map((u) => [u.name, u.kind, u.members]),
      [["listed", "filter", 3], ["nasdaq", "filter", 2]],
    );
    assert.throws(() => store.addMembers("nasdaq", ["IBM"], today), /it is a filter universe/);
    // A change the filter does not look at keeps one interval.
    store.applySnapshots([snapshot("2023-06-01", [
      record("META", FB, { name: "Meta Platforms, Inc.", listDate: "2012-05-18" }),
      AAPL,
      NEWCO,
    ])]);
    assert.deepEqual(store.memberIntervals("nasdaq").filter((i) => i.symbol === "META"), [
      { symbol: "META", validFrom: "2022-06-09", validTo: null },
    ]);
  });
});

Deno.test("ReferenceStore.createUniverse() refuses bad names, taken names, bad specs and symbols", () => {
  withStore((store) => {
    const asOf = "2024-01-02";
    store.createUniverse("tech", { symbols: ["AAPL"], asOf });
    const refuses = (fn: () => unknown, pattern: RegExp) =>
      assert.throws(fn, (e: Error) => e instanceof UsageError && pattern.test(e.message));
    refuses(
      () => store.createUniverse("1tech", { symbols: ["AAPL"], asOf }),
      /Invalid universe name "1tech"/,
    );
    refuses(
      () => store.createUniverse("a b", { symbols: ["AAPL"], asOf }),
      /Invalid universe name "a b"/,
    );
    refuses(() => store.createUniverse("TECH", { symbols: ["MSFT"], asOf }), /already exists/);
    refuses(() => store.createUniverse("x", { asOf }), /expected either symbols or a filter$/);
    refuses(
      () => store.createUniverse("x", { symbols: ["A"], filter: "status = 'active'", asOf }),
      /not both/,
    );
    refuses(
      () => store.createUniverse("x", { filter: "status = 'active'; DROP TABLE universes", asOf }),
      /unexpected ";" at column 18/,
    );
    refuses(
      () => store.createUniverse("x", { symbols: ["AAPL", "no way"], asOf }),
      /Invalid symbol "no way" for universe "x"/,
    );
    refuses(
      () => store.createUniverse("x", { symbols: ["AAPL"], asOf: "2024-13-01" }),
      /Invalid as-of date "2024-13-01"/,
    );
    assert.deepEqual(store.listUniverses().map((u) => u.name), ["tech"]);
  });
});

Deno.test("ReferenceStore.deleteUniverse() removes the universe and its members", () => {
  withStore((store, db) => {
    store.createUniverse("tech", { symbols: ["AAPL", "MSFT"], asOf: "2024-01-02" });
    store.createUniverse("other", { symbols: ["IBM"], asOf: "2024-01-02" });
    assert.equal(store.deleteUniverse("TECH"), true);
    assert.equal(store.deleteUniverse("tech"), false);
    assert.equal(store.getUniverse("tech"), undefined);
    assert.equal(count(db, "universe_members"), 1);
    assert.throws(
      () => store.members("tech", { today: "2024-01-02" }),
      /Unknown universe "tech"/,
    );
    assert.throws(
      () => store.members("othr", { today: "2024-01-02" }),
      /Unknown universe "othr" \(did you mean "other"\?\)/,
    );
  });
});

Deno.test("ReferenceStore reads a read-only database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-reference-" });
  try {
    const path = `${dir}/meta.db`;
    const db = new DatabaseSync(path);
    migrate(db);
    new ReferenceStore(db).applySnapshots(HISTORY);
    db.close();
    const readOnly = new DatabaseSync(path, { readOnly: true });
    try {
      const store = new ReferenceStore(readOnly);
      assert.equal(store.lookup("META")?.name, "Meta Platforms");
      assert.deepEqual(store.listUniverses({ asOf: "2024-01-02" }), []);
      assert.throws(() => store.applySnapshots([HISTORY[3]]));
    } finally {
      readOnly.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
