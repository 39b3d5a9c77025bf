import assert from "node:assert/strict";
import { join } from "node:path";
import { storeBarFile } from "../tests/_bar_files.ts";
import { createBarViews, openDuckDB, sqlString } from "./duckdb.ts";
import { listFiles } from "./manifest.ts";
import { META_FILE, openReadOnlyDatabase } from "./meta.ts";
import { runQuery } from "./query.ts";
import { openQueryEngine } from "./query_engine.ts";
import { filesInScope, statsQuery, type ViewFile, viewScopes } from "./query_narrow.ts";

const VIEWS = new Set(["bars_1m", "bars_1d", "bars"]);
const TABLES = new Set(["symbols", "universe_members"]);

/** DuckDB's syntax tree of `sql`, as the engine reads it. */
async function parse(sql: string): Promise<unknown> {
  const instance = await openDuckDB({ threads: 1 });
  try {
    const connection = await instance.connect();
    const result = await connection.runAndReadAll("SELECT json_serialize_sql($1::VARCHAR)", [sql]);
    connection.closeSync();
    return JSON.parse(String(result.getRows()[0][0]));
  } finally {
    instance.closeSync();
  }
}

function file(symbol: string, firstDate: string, lastDate: string, timeframe = "1m"): ViewFile {
  return {
    path: `${timeframe}/${symbol}/${firstDate}`,
    timeframe: timeframe as ViewFile["timeframe"],
    symbol,
    firstDate,
    lastDate,
    rows: 10,
    minTs: Date.parse(firstDate) * 1000,
    maxTs: Date.parse(lastDate) * 1000,
  };
}

const FILES = [
  file("AAPL", "2024-01-02", "2024-01-31"),
  file("AAPL", "2024-02-01", "2024-02-29"),
  file("MSFT", "2024-01-02", "2024-01-31"),
  file("MSFT", "2024-02-01", "2024-02-29"),
  file("IBM", "2024-02-01", "2024-02-29"),
];

/** The files of bars_1m that `sql` reads, or "all". */
async function kept(sql: string): Promise<string[] | "all" | "unsafe"> {
  const scopes = viewScopes(await parse(sql), VIEWS, TABLES);
  if (scopes === undefined) return "unsafe";
  const files = filesInScope(FILES, scopes.get("bars_1m"), scopes.get("bars"));
  return files === undefined ? "all" : files.map((f) => `${f.symbol} ${f.firstDate}`);
}

Deno.test("viewScopes() narrows a view by the symbol, timeframe and date conjuncts of its WHERE", async () => {
  assert.deepEqual(await kept("SELECT * FROM bars_1m WHERE symbol = 'AAPL'"), [
    "AAPL 2024-01-02",
    "AAPL 2024-02-01",
  ]);
  assert.deepEqual(
    await kept("FROM bars_1m b WHERE 'MSFT' = b.symbol AND trading_date = DATE '2024-02-05'"),
    ["MSFT 2024-02-01"],
  );
  assert.deepEqual(
    await kept(
      "SELECT * FROM bars_1m WHERE Symbol IN ('IBM', 'MSFT') AND trading_date < '2024-02-01'",
    ),
    ["MSFT 2024-01-02"],
  );
  assert.deepEqual(
    await kept("SELECT * FROM bars_1m WHERE trading_date BETWEEN '2024-01-20' AND '2024-01-31'"),
    ["AAPL 2024-01-02", "MSFT 2024-01-02"],
  );
  assert.deepEqual(await kept("SELECT * FROM bars_1m WHERE trading_date > '2024-01-31'"), [
    "AAPL 2024-02-01",
    "MSFT 2024-02-01",
    "IBM 2024-02-01",
  ]);
  // An OR narrows when each branch does; conjuncts it does not know only widen the read.
  assert.deepEqual(
    await kept(
      "SELECT * FROM bars_1m WHERE (symbol = 'IBM' OR (symbol = 'AAPL' AND " +
        "trading_date >= '2024-02-10')) AND volume > 5 AND close::INT % 2 = 0",
    ),
    ["AAPL 2024-02-01", "IBM 2024-02-01"],
  );
  // The union view carries its filter to every timeframe.
  assert.deepEqual(
    await kept("SELECT * FROM bars WHERE timeframe = '1m' AND symbol = 'IBM'"),
    ["IBM 2024-02-01"],
  );
  assert.deepEqual(await kept("SELECT * FROM bars WHERE timeframe = '1d'"), []);
  // Each reference counts: the union of what the references read.
  assert.deepEqual(
    await kept(
      "SELECT * FROM bars_1m WHERE symbol = 'IBM' UNION ALL " +
        "SELECT * FROM (SELECT * FROM bars_1m WHERE symbol = 'MSFT' AND trading_date = '2024-01-03')",
    ),
    ["MSFT 2024-01-02", "IBM 2024-02-01"],
  );
  assert.deepEqual(await kept("SELECT * FROM bars_1m WHERE '2024-01-31' < trading_date"), [
    "AAPL 2024-02-01",
    "MSFT 2024-02-01",
    "IBM 2024-02-01",
  ]);
  assert.deepEqual(
    await kept("SELECT * FROM bars_1m WHERE trading_date IN ('2024-01-15', DATE '2024-03-01')"),
    ["AAPL 2024-01-02", "MSFT 2024-01-02"],
  );
  assert.deepEqual(await kept("SELECT * FROM bars_1m WHERE symbol = 'NONE'"), []);
});

Deno.test("viewScopes() reads everything where a reference is not filtered by its own WHERE", async () => {
  for (
    const sql of [
      "SELECT * FROM bars_1m",
      "SELECT * FROM bars_1m WHERE symbol = 'AAPL' OR volume > 1",
      "SELECT * FROM bars_1m WHERE NOT symbol = 'AAPL'",
      "SELECT * FROM bars_1m WHERE symbol <> 'AAPL'",
      "SELECT * FROM bars_1m WHERE symbol = 'AAPL' UNION ALL SELECT * FROM bars_1m",
      // A join's WHERE is not the view's own: both references read all.
      "SELECT * FROM bars_1m a JOIN bars_1m b USING (ts) WHERE a.symbol = 'AAPL'",
      // A qualifier that is not the table's, a column of another table.
      "SELECT * FROM bars_1m b WHERE x.symbol = 'AAPL'",
      "SELECT * FROM bars_1m WHERE symbol = (SELECT 'AAPL')",
      "SELECT * FROM bars_1m WHERE lower(symbol) = 'aapl'",
      "SELECT * FROM bars_1m WHERE trading_date = '2024-1-5'",
      // The CTE body reads bars_1m whole, whatever the outer query filters.
      "WITH bars_1m AS (SELECT * FROM bars_1m) SELECT * FROM bars_1m WHERE symbol = 'AAPL'",
      "SELECT * FROM bars_1m WHERE symbol IN (SELECT symbol FROM universe_members)",
      // Renamed columns: `symbol` may be another column, or bind to an outer query.
      "SELECT * FROM bars_1m t(a, b, c, d, e, f, g, h, i, j, k, symbol) WHERE symbol = 'AAPL'",
      "SELECT (SELECT count(*) FROM bars_1m AS m(s) WHERE symbol = 'AAPL') FROM symbols",
      // Impossible dates are DuckDB's to refuse.
      "SELECT * FROM bars_1m WHERE trading_date = '2024-02-30'",
    ]
  ) {
    assert.equal(await kept(sql), "all", sql);
  }
});

Deno.test("viewScopes() leaves statements it cannot judge whole", async () => {
  for (
    const sql of [
      // Table functions can read a view by name, out of sight of the syntax tree.
      "SELECT * FROM query_table('bars_1m') WHERE symbol = 'AAPL'",
      "SELECT * FROM bars_1m WHERE symbol = 'AAPL' UNION ALL FROM query('FROM bars_1m')",
      // A sample over fewer files would pick other rows.
      "SELECT * FROM bars_1m USING SAMPLE 10 ROWS (reservoir, 42) WHERE symbol = 'AAPL'",
      // Catalog tables would show the connection's temporary views.
      "SELECT * FROM bars_1m WHERE symbol = 'AAPL' UNION ALL " +
      "SELECT NULL, NULL, table_name FROM information_schema.tables",
      "SELECT * FROM bars_1m, duckdb_views WHERE symbol = 'AAPL'",
      // A CTE's name counts in its own scope only, not for a catalog view outside it.
      "SELECT view_name FROM duckdb_views WHERE EXISTS (WITH duckdb_views AS (SELECT 1) " +
      "SELECT 1 FROM bars_1m WHERE symbol = 'AAPL')",
      // temp.bars_1m exists only as the narrowed view.
      "SELECT * FROM temp.bars_1m WHERE symbol = 'AAPL'",
      "SELECT * FROM temp.main.bars_1m WHERE symbol = 'AAPL'",
      "DESCRIBE bars_1m",
      "EXPLAIN SELECT * FROM bars_1m WHERE symbol = 'AAPL'",
      "SELEC * FROM bars_1m",
    ]
  ) {
    assert.equal(await kept(sql), "unsafe", sql);
  }
});

Deno.test("statsQuery() accepts only aggregates the manifest answers exactly", async () => {
  assert.deepEqual(
    (await statsQuery(await parse("SELECT count(*), min(ts), max(b.ts) FROM bars_1m b"), VIEWS))
      ?.items,
    ["count", "min", "max"],
  );
  const filtered = statsQuery(
    await parse("SELECT count() AS n FROM bars_1m WHERE symbol IN ('AAPL', 'IBM')"),
    VIEWS,
  );
  assert.deepEqual(
    FILES.filter((f) => filtered!.predicates.every((p) => p(f))).map((f) => f.symbol),
    ["AAPL", "AAPL", "IBM"],
  );
  for (
    const sql of [
      "SELECT count(*) FROM bars_1m WHERE trading_date = '2024-01-05'",
      "SELECT count(*) FROM bars_1m WHERE symbol = 'AAPL' OR symbol = 'IBM'",
      "SELECT count(*) FROM bars_1m WHERE volume > 0",
      "SELECT count(*) FROM bars",
      "SELECT count(*) FROM bars_1m GROUP BY symbol",
      "SELECT count(DISTINCT ts) FROM bars_1m",
      "SELECT count(ts) FROM bars_1m",
      "SELECT min(close) FROM bars_1m",
      "SELECT count(*) FILTER (WHERE close > 1) FROM bars_1m",
      "SELECT count(*) FROM bars_1m LIMIT 0",
      "SELECT count(*) + 1 FROM bars_1m",
      "SELECT count(*) FROM bars_1m USING SAMPLE 1 ROWS",
      "WITH x AS (SELECT 1) SELECT count(*) FROM bars_1m",
      "SELECT count(*) FROM main.bars_1m",
      "SELECT max(ts) FROM bars_1m t(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, ts)",
    ]
  ) {
    assert.equal(statsQuery(await parse(sql), VIEWS), undefined, sql);
  }
});

/**
 * A data dir with one file per symbol and trading day: 4 symbols x 25 days of 1m bars (100 files,
 * enough for the engine to narrow) and one 1d file per symbol.
 */
async function manyFilesDataDir(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-narrow-test-" });
  const instance = await openDuckDB({ threads: 1 });
  const connection = await instance.connect();
  try {
    for (const [index, symbol] of ["AAPL", "IBM", "MSFT", "ZZZ"].entries()) {
      for (let day = 0; day < 25; day++) {
        const date = new Date(Date.UTC(2024, 0, 2 + day)).toISOString().slice(0, 10);
        await storeBarFile(dataDir, connection, {
          timeframe: "1m",
          symbol,
          select: fileSql(`${date} 14:30:00+00`, 3 + ((day + index) % 3), "MINUTE", index),
        });
      }
      await storeBarFile(dataDir, connection, {
        timeframe: "1d",
        symbol,
        select: fileSql("2024-01-02 05:00:00+00", 25, "DAY", index),
      });
    }
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
  return dataDir;
}

function fileSql(start: string, count: number, step: string, seed: number): string {
  const ts = `TIMESTAMPTZ ${sqlString(start)} + i * INTERVAL 1 ${step}`;
  return `SELECT ${ts} AS ts, 100.0 + i + ${seed} AS open, 101.0 + i AS high, 99.0 + i AS low,
      100.5 + i AS close, 1000.0 * (i + 1) AS volume, 100.25 + i AS vwap,
      (10 + i)::BIGINT AS trade_count, (${ts})::DATE AS trading_date,
      'regular'::VARCHAR AS session, 'fake'::VARCHAR AS provider, 'sip'::VARCHAR AS feed,
      'raw'::VARCHAR AS adjustment, 'job-1'::VARCHAR AS ingest_id,
      TIMESTAMPTZ '2024-03-05 00:00:00+00' AS ingested_at, 2::INTEGER AS schema_version
    FROM range(${count}) AS t(i)`;
}

Deno.test("runQuery() answers alike with and without narrowing, on a store of 104 files", async () => {
  const dataDir = await manyFilesDataDir();
  // The oracle: plain views over every live file, in a DuckDB that never narrows.
  const oracle = await openDuckDB({ threads: 1 });
  const plain = await oracle.connect();
  const db = openReadOnlyDatabase(join(dataDir, META_FILE));
  const live = listFiles(db, { tree: "bars" });
  db.close();
  await createBarViews(
    plain,
    live.map((f) => ({ timeframe: f.timeframe, path: join(dataDir, f.path) })),
  );
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  try {
    assert.equal(live.length, 104);
    const sqls = [
      "SELECT * FROM bars_1m WHERE symbol = 'IBM' AND trading_date = '2024-01-10' ORDER BY ts",
      "SELECT symbol, count(*), sum(volume) FROM bars_1m WHERE symbol IN ('AAPL', 'ZZZ') " +
      "AND trading_date BETWEEN DATE '2024-01-05' AND '2024-01-08' GROUP BY ALL ORDER BY 1",
      "SELECT count(*) FROM bars_1m WHERE trading_date > '2024-01-20' OR symbol = 'MSFT'",
      // Each bound on a file's first and last day.
      "SELECT count(*), sum(volume) FROM bars_1m WHERE symbol = 'AAPL' " +
      "AND trading_date >= '2024-01-20' AND trading_date <= '2024-01-22'",
      "SELECT count(*), sum(volume) FROM bars_1m WHERE '2024-01-04' > trading_date",
      "SELECT count(*), sum(volume) FROM bars_1m WHERE trading_date IN ('2024-01-03', '2024-01-26')",
      "SELECT * FROM bars WHERE timeframe = '1d' AND symbol = 'AAPL' ORDER BY ts",
      "SELECT timeframe, count(*) FROM bars WHERE symbol = 'MSFT' GROUP BY 1 ORDER BY 1",
      "SELECT * FROM bars_1m WHERE symbol = 'NONE'",
      "SELECT * FROM bars_1m WHERE symbol = 'AAPL' AND trading_date = '2023-06-01'",
      "SELECT a.ts, a.close - b.close FROM (SELECT * FROM bars_1m WHERE symbol = 'AAPL') a " +
      "JOIN (SELECT * FROM bars_1m WHERE symbol = 'IBM') b USING (ts) ORDER BY 1",
      "WITH m AS (SELECT * FROM bars_1m WHERE symbol = 'MSFT') SELECT count(*), max(close) FROM m",
      "SELECT count(*) FROM bars_1m",
      "SELECT count(*) AS n, min(ts), max(ts) AS last FROM bars_1m WHERE symbol = 'ZZZ'",
      "SELECT max(ts), count(*) FROM bars_1d b WHERE b.symbol IN ('IBM', 'MSFT')",
      "SELECT count(*), min(ts), max(ts) FROM bars_1m WHERE symbol = 'NONE'",
      "SELECT count(*), count(*) FROM bars_1m WHERE timeframe = '1m'",
      "DESCRIBE SELECT * FROM bars_1m WHERE symbol = 'IBM'",
      "SELECT * FROM bars_1m WHERE symbol = 'IBM' AND ts < TIMESTAMPTZ '2024-01-03 14:31:00+00'",
    ];
    for (const sql of sqls) {
      const ours = await runQuery(engine, sql, { limit: 10_000 });
      const wrapped = `FROM query(${sqlString(sql)})`;
      const theirs = await plain.runAndReadAll(wrapped);
      assert.deepEqual(
        ours.columns.map((c) => [c.name, c.type]),
        theirs.deduplicatedColumnNames().map((
          name,
          i,
        ) => [name, theirs.columnTypes()[i].toString()]),
        sql,
      );
      assert.equal(ours.rowCount, theirs.currentRowCount, sql);
      assert.deepEqual(
        JSON.stringify(ours.rows),
        JSON.stringify((await runQuery(engine, `${wrapped} LIMIT 10000`)).rows),
        sql,
      );
    }
    // Errors stay DuckDB's: an impossible date, a name only the narrowed view would answer to.
    await assert.rejects(
      runQuery(
        engine,
        "SELECT * FROM bars_1m WHERE symbol = 'IBM' AND trading_date = '2024-02-30'",
      ),
      /out of range/,
    );
    await assert.rejects(
      runQuery(engine, "SELECT count(*) FROM temp.bars_1m WHERE symbol = 'IBM'"),
      /bars_1m does not exist/,
    );
    // The narrowed view lives on the query's own connection: the next query sees every file.
    assert.deepEqual((await runQuery(engine, "SELECT count(DISTINCT symbol) FROM bars_1m")).rows, [
      [4],
    ]);
  } finally {
    engine.close();
    plain.closeSync();
    oracle.closeSync();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("runQuery() plans a point query over the files that can hold it, and count(*) over none", async () => {
  const dataDir = await manyFilesDataDir();
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  try {
    // Damage IBM's file of 2024-01-20 behind the engine's back: only a read of it can notice.
    const db = openReadOnlyDatabase(join(dataDir, META_FILE));
    const damaged = listFiles(db, { timeframe: "1m", symbol: "IBM", start: "2024-01-20" })[0];
    db.close();
    assert.equal(damaged.firstDate, "2024-01-20");
    await Deno.writeTextFile(join(dataDir, damaged.path), "not parquet any more");
    const point = await runQuery(
      engine,
      "SELECT count(*), sum(volume) FROM bars_1m WHERE symbol = 'IBM' AND trading_date = '2024-01-10'",
    );
    assert.equal(point.rows[0][0], 3 + ((8 + 1) % 3));
    const all = await runQuery(engine, "SELECT count(*) AS n FROM bars_1m");
    assert.deepEqual(all.columns, [{ name: "n", type: "BIGINT" }]);
    assert.equal(all.rows[0][0] as number > 300, true);
    // Without a date the damaged file is in the plan, and its read fails.
    await assert.rejects(
      runQuery(engine, "SELECT sum(volume) FROM bars_1m WHERE symbol = 'IBM'"),
      /not parquet|Parquet|magic/i,
    );
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
