import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { storeBarFile } from "../tests/_bar_files.ts";
import { snapshot, symbolRecord } from "../tests/_reference.ts";
import { openDuckDB, sqlString } from "./duckdb.ts";
import { META_FILE, migrate, openDatabase, openMigrated } from "./meta.ts";
import { MIGRATIONS } from "./migrations.ts";
import { runQuery } from "./query.ts";
import { openQueryEngine } from "./query_engine.ts";
import { QueryRejectedError } from "./query_guard.ts";
import { REFERENCE_TABLES, referenceVersion } from "./query_reference.ts";
import { ReferenceStore } from "./reference.ts";

const RECORDED_AT = Date.parse("2024-03-01T12:00:00Z");

/** An active XNAS stock listed 2000-01-03. */
function record(ticker: string, fields: Partial<SymbolRecord> = {}): SymbolRecord {
  return symbolRecord(ticker, { listDate: "2000-01-03", ...fields });
}

/** 2020: AAPL, FB and OLDCO (XNYS); 2022-06-09: FB is META (same instrument), OLDCO is gone. */
const SNAPSHOTS: ReferenceSnapshot[] = [
  snapshot("2020-01-02", [
    record("AAPL"),
    record("FB", { instrumentId: "BBG000MM2P62", figi: "BBG000MM2P62", name: "Meta" }),
    record("OLDCO", { exchange: "XNYS", listDate: null }),
  ]),
  snapshot("2022-06-09", [
    record("AAPL"),
    record("META", { instrumentId: "BBG000MM2P62", figi: "BBG000MM2P62", name: "Meta" }),
  ]),
];

function barsSql(start: string, count: number): string {
  return `SELECT TIMESTAMPTZ ${sqlString(start)} + i * INTERVAL 1 MINUTE AS ts,
      100.0 AS open, 101.0 AS high, 99.0 AS low, 100.5 AS close, 1000.0 AS volume,
      100.25 AS vwap, 10::BIGINT AS trade_count,
      (TIMESTAMPTZ ${sqlString(start)} + i * INTERVAL 1 MINUTE)::DATE AS trading_date,
      'regular'::VARCHAR AS session, 'fake'::VARCHAR AS provider, 'sip'::VARCHAR AS feed,
      'raw'::VARCHAR AS adjustment, 'job-1'::VARCHAR AS ingest_id,
      TIMESTAMPTZ '2024-03-05 00:00:00+00' AS ingested_at, 2::INTEGER AS schema_version
    FROM range(${count}) AS t(i)`;
}

/** A data directory with the snapshots, two universes and 1m bars of AAPL (3) and META (2). */
async function referenceDataDir(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-query-reference-" });
  const instance = await openDuckDB({ threads: 1 });
  try {
    const connection = await instance.connect();
    try {
      for (const [symbol, count] of [["AAPL", 3], ["META", 2]] as const) {
        await storeBarFile(dataDir, connection, {
          timeframe: "1m",
          symbol,
          select: barsSql("2024-03-04 14:30:00+00", count),
        });
      }
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
  const { db } = openMigrated(join(dataDir, META_FILE));
  try {
    const store = new ReferenceStore(db, { now: () => RECORDED_AT });
    store.applySnapshots(SNAPSHOTS);
    store.createUniverse("tech", {
      symbols: ["AAPL", "FB"],
      description: "two names",
      asOf: "2021-01-04",
    });
    store.removeMembers("tech", ["FB"], "2022-06-09");
    store.addMembers("tech", ["META"], "2022-06-09");
    store.createUniverse("nyse", {
      filter: "exchange = 'XNYS' and status = 'active'",
      asOf: "2020-01-02",
    });
  } finally {
    db.close();
  }
  return dataDir;
}

Deno.test("query engine: reference tables hold the symbol master and universes", async (t) => {
  const dataDir = await referenceDataDir();
  try {
    using engine = await openQueryEngine(dataDir, { threads: 1, today: "2024-03-04" });
    const rows = async (sql: string) => (await runQuery(engine, sql)).rows;

    await t.step("symbols: one current row per instrument, delisted ones too", async () => {
      assert.deepEqual(
        await rows(
          "SELECT ticker, status, delist_date, valid_from, valid_to FROM symbols ORDER BY 1",
        ),
        [
          ["AAPL", "active", null, "2020-01-02", null],
          ["META", "active", null, "2022-06-09", null],
          ["OLDCO", "delisted", "2022-06-09", "2022-06-09", null],
        ],
      );
    });

    await t.step("symbols_history: every row, point in time by valid_from/valid_to", async () => {
      assert.deepEqual(
        await rows(
          "SELECT ticker, valid_from, valid_to FROM symbols_history WHERE instrument_id = 'BBG000MM2P62' ORDER BY valid_from",
        ),
        [["FB", "2020-01-02", "2022-06-09"], ["META", "2022-06-09", null]],
      );
      assert.deepEqual(
        await rows(`SELECT ticker FROM symbols_history
          WHERE valid_from <= DATE '2021-06-30' AND (valid_to IS NULL OR valid_to > DATE '2021-06-30')
          ORDER BY 1`),
        [["AAPL"], ["FB"], ["OLDCO"]],
      );
      assert.deepEqual(await rows("SELECT count(*) FROM symbols_history"), [[5]]);
    });

    await t.step("columns are snake_case with DATE and TIMESTAMPTZ types", async () => {
      const types = Object.fromEntries(
        (await rows("DESCRIBE symbols")).map((row) => [row[0], row[1]]),
      );
      assert.equal(types.list_date, "DATE");
      assert.equal(types.valid_to, "DATE");
      assert.equal(types.asset_class, "VARCHAR");
      assert.equal(types.recorded_at, "TIMESTAMP WITH TIME ZONE");
      assert.deepEqual(
        await rows("SELECT DISTINCT recorded_at FROM symbols_history"),
        [["2024-03-01T12:00:00.000Z"]],
      );
    });

    await t.step("bars join with symbols on the ticker", async () => {
      assert.deepEqual(
        await rows(`SELECT b.symbol, s.name, s.exchange, count(*) AS bars
          FROM bars_1m b JOIN symbols s ON b.symbol = s.ticker GROUP BY ALL ORDER BY 1`),
        [["AAPL", "AAPL Inc.", "XNAS", 3], ["META", "Meta", "XNAS", 2]],
      );
    });

    await t.step("universes with members today, universe_members as intervals", async () => {
      assert.deepEqual(
        await rows(
          "SELECT name, kind, filter, description, members, created_at FROM universes ORDER BY 1",
        ),
        [
          [
            "nyse",
            "filter",
            "exchange = 'XNYS' and status = 'active'",
            null,
            0,
            "2024-03-01T12:00:00.000Z",
          ],
          ["tech", "list", null, "two names", 2, "2024-03-01T12:00:00.000Z"],
        ],
      );
      assert.deepEqual(
        await rows(
          "SELECT universe, symbol, valid_from, valid_to FROM universe_members ORDER BY 1, 2, 3",
        ),
        [
          // The filter universe's member intervals come from the history rows it matches.
          ["nyse", "OLDCO", "2020-01-02", "2022-06-09"],
          ["tech", "AAPL", "2021-01-04", null],
          ["tech", "FB", "2021-01-04", "2022-06-09"],
          ["tech", "META", "2022-06-09", null],
        ],
      );
      // Members of tech on 2021-06-30, with the bars stored under the current ticker.
      assert.deepEqual(
        await rows(`SELECT m.symbol, now.ticker FROM universe_members m
          JOIN symbols_history h ON h.ticker = m.symbol
            AND h.valid_from <= DATE '2021-06-30' AND (h.valid_to IS NULL OR h.valid_to > DATE '2021-06-30')
          JOIN symbols now ON now.source = h.source AND now.instrument_id = h.instrument_id
          WHERE m.universe = 'tech' AND m.valid_from <= DATE '2021-06-30'
            AND (m.valid_to IS NULL OR m.valid_to > DATE '2021-06-30')
          ORDER BY 1`),
        [["AAPL", "AAPL"], ["FB", "META"]],
      );
    });

    await t.step("statements that would change them are refused", async () => {
      for (
        const sql of [
          "INSERT INTO symbols (ticker) VALUES ('EVIL')",
          "UPDATE symbols SET status = 'delisted'",
          "DELETE FROM universe_members",
          "DROP TABLE symbols_history",
          "CREATE OR REPLACE TABLE universes AS SELECT 1 AS x",
          "ALTER TABLE symbols RENAME TO s2",
          "TRUNCATE universes",
          "EXPLAIN ANALYZE DELETE FROM symbols",
          "WITH x AS (SELECT 1) DELETE FROM symbols",
        ]
      ) {
        await assert.rejects(
          runQuery(engine, sql),
          (error) => error instanceof QueryRejectedError && /read-only/.test(error.message),
          sql,
        );
      }
      assert.deepEqual(
        await rows(`SELECT (SELECT count(*) FROM symbols), (SELECT count(*) FROM symbols_history),
          (SELECT count(*) FROM universes), (SELECT count(*) FROM universe_members)`),
        [[3, 5, 2, 4]],
      );
    });

    await t.step("a missing table's hint lists the reference tables", async () => {
      await assert.rejects(
        runQuery(engine, "SELECT * FROM symbol"),
        /Hint: views available: bars_1m, bars; reference tables: symbols, symbols_history, universes, universe_members$/,
      );
    });

    await t.step("they are loaded once per engine open", async () => {
      const { db } = openMigrated(join(dataDir, META_FILE));
      try {
        new ReferenceStore(db).createUniverse("later", { symbols: ["AAPL"], asOf: "2024-01-02" });
      } finally {
        db.close();
      }
      assert.deepEqual(await rows("SELECT count(*) FROM universes"), [[2]]);
      using fresh = await openQueryEngine(dataDir, { threads: 1, today: "2024-03-04" });
      assert.deepEqual(
        (await runQuery(fresh, "SELECT name, members FROM universes ORDER BY 1")).rows,
        [["later", 1], ["nyse", 0], ["tech", 2]],
      );
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("query engine: reference tables are empty and typed without reference data", async () => {
  const empty = await Deno.makeTempDir({ prefix: "marketpipe-query-reference-" });
  const old = await Deno.makeTempDir({ prefix: "marketpipe-query-reference-" });
  try {
    // A metadata database from before the symbol master (migration 8 not applied).
    const db = openDatabase(join(old, META_FILE));
    try {
      migrate(db, MIGRATIONS.filter((m) => m.version < 8));
    } finally {
      db.close();
    }
    for (const dataDir of [empty, old]) {
      using engine = await openQueryEngine(dataDir, { threads: 1 });
      for (const table of REFERENCE_TABLES) {
        assert.deepEqual(
          (await runQuery(engine, `SELECT count(*) FROM ${table}`)).rows,
          [[0]],
          `${dataDir} ${table}`,
        );
      }
      const described = await runQuery(engine, "DESCRIBE universe_members");
      assert.deepEqual(described.rows.map((row) => [row[0], row[1]]), [
        ["universe", "VARCHAR"],
        ["symbol", "VARCHAR"],
        ["valid_from", "DATE"],
        ["valid_to", "DATE"],
      ]);
    }
  } finally {
    await Deno.remove(empty, { recursive: true });
    await Deno.remove(old, { recursive: true });
  }
});

Deno.test("referenceVersion() changes with every change the reference tables would show", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-query-reference-" });
  const { db } = openMigrated(join(dataDir, META_FILE));
  try {
    const store = new ReferenceStore(db, { now: () => RECORDED_AT });
    const seen = new Set<string>();
    const changed = (what: string) => {
      const version = referenceVersion(db);
      assert.ok(!seen.has(version), `${what}: ${version} seen before`);
      seen.add(version);
    };
    changed("empty");
    store.applySnapshots([SNAPSHOTS[0]]);
    changed("first snapshot");
    store.applySnapshots([SNAPSHOTS[0]]);
    assert.ok(seen.has(referenceVersion(db)), "the same snapshot again changes nothing");
    store.applySnapshots([SNAPSHOTS[1]]);
    changed("ticker change and delisting");
    store.createUniverse("tech", { symbols: ["AAPL", "FB"], asOf: "2021-01-04" });
    changed("universe created");
    store.removeMembers("tech", ["FB"], "2022-06-09");
    changed("member removed");
    store.addMembers("tech", ["META"], "2022-06-09");
    changed("member added");
    const before = referenceVersion(db);
    store.deleteUniverse("tech");
    // Back to what the tables held before it was created, which is not what they hold now.
    assert.notEqual(referenceVersion(db), before, "universe deleted");
  } finally {
    db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
  const old = await Deno.makeTempDir({ prefix: "marketpipe-query-reference-" });
  const db7 = openDatabase(join(old, META_FILE));
  try {
    migrate(db7, MIGRATIONS.filter((m) => m.version < 8));
    assert.equal(referenceVersion(db7), "none");
  } finally {
    db7.close();
    await Deno.remove(old, { recursive: true });
  }
});
