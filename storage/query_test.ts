import assert from "node:assert/strict";
import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";
import { storeBarFile } from "../tests/_bar_files.ts";
import { BAR_COLUMNS, createBarViews, openDuckDB, sqlString } from "./duckdb.ts";
import { newFileName, partitionDir } from "./layout.ts";
import { listFiles } from "./manifest.ts";
import { META_FILE, openReadOnlyDatabase } from "./meta.ts";
import { runQuery, writeQueryParquet } from "./query.ts";
import { openQueryEngine, QueryTimeoutError } from "./query_engine.ts";
import { QueryRejectedError, QuerySqlError } from "./query_guard.ts";

/**
 * Bars of one symbol: `count` one-minute (or one-day) bars from `start`, with the columns of a
 * stored file (layout 2: no symbol or timeframe, they come from the folders).
 */
function barsSql(start: string, count: number, timeframe: string): string {
  const step = timeframe === "1d" ? "INTERVAL 1 DAY" : "INTERVAL 1 MINUTE";
  return `SELECT TIMESTAMPTZ ${sqlString(start)} + i * ${step} AS ts,
      100.0 + i AS open, 101.0 + i AS high, 99.0 + i AS low, 100.5 + i AS close,
      1000.0 * (i + 1) AS volume, 100.25 + i AS vwap, (10 + i)::BIGINT AS trade_count,
      (TIMESTAMPTZ ${sqlString(start)} + i * ${step})::DATE AS trading_date,
      'regular'::VARCHAR AS session, 'fake'::VARCHAR AS provider, 'sip'::VARCHAR AS feed,
      'raw'::VARCHAR AS adjustment, 'job-1'::VARCHAR AS ingest_id,
      TIMESTAMPTZ '2024-03-05 00:00:00+00' AS ingested_at, 2::INTEGER AS schema_version
    FROM range(${count}) AS t(i)`;
}

/**
 * A data dir (layout 2) with 1m bars for AAPL (3) and MSFT (2) in March 2024 and one 1d AAPL
 * bar, each in one file that the manifest lists.
 */
async function makeDataDir(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-query-test-" });
  const partitions = [
    ["AAPL", "1m", "2024-03-04 14:30:00+00", 3],
    ["MSFT", "1m", "2024-03-04 14:30:00+00", 2],
    ["AAPL", "1d", "2024-03-04 05:00:00+00", 1],
  ] as const;
  const instance = await openDuckDB({ threads: 1 });
  try {
    const connection = await instance.connect();
    try {
      for (const [symbol, timeframe, start, count] of partitions) {
        await storeBarFile(dataDir, connection, {
          timeframe,
          symbol,
          select: barsSql(start, count, timeframe),
        });
      }
      // A file renamed into place but never committed (a killed writer's orphan): not live.
      await connection.run(
        `COPY (${barsSql("2024-03-04 14:33:00+00", 4, "1m")}) TO ${
          sqlString(
            join(
              dataDir,
              partitionDir("1m", "AAPL", "2024-03-04"),
              newFileName("2024-03-04", "2024-03-04"),
            ),
          )
        } (FORMAT parquet, COMPRESSION zstd)`,
      );
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
  // A writer's temp file and a timeframe holding nothing but one: neither may be read.
  const aaplDir = join(dataDir, partitionDir("1m", "AAPL", "2024-03-04"));
  await Deno.writeTextFile(join(aaplDir, ".tmp-123-data"), "not parquet");
  const fiveMinuteDir = join(dataDir, partitionDir("5m", "AAPL", "2024-03-04"));
  await Deno.mkdir(fiveMinuteDir, { recursive: true });
  await Deno.writeTextFile(join(fiveMinuteDir, ".tmp-456-data"), "not parquet");
  return dataDir;
}

/** The live bar files of `dataDir` as {@link createBarViews} takes them. */
function manifestFiles(dataDir: string): { timeframe: Timeframe; path: string }[] {
  const db = openReadOnlyDatabase(join(dataDir, META_FILE));
  try {
    return listFiles(db, { tree: "bars" }).map((file) => ({
      timeframe: file.timeframe,
      path: join(dataDir, file.path),
    }));
  } finally {
    db.close();
  }
}

Deno.test("createBarViews() creates views only for timeframes with Parquet files", async () => {
  const dataDir = await makeDataDir();
  try {
    const instance = await openDuckDB({ threads: 1 });
    const connection = await instance.connect();
    try {
      assert.deepEqual(await createBarViews(connection, manifestFiles(dataDir)), ["1m", "1d"]);
      const views = await connection.runAndReadAll(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name",
      );
      assert.deepEqual(views.getRows().flat(), ["bars", "bars_1d", "bars_1m"]);
      const counts = await connection.runAndReadAll(
        "SELECT (FROM bars_1m SELECT count(*)), (FROM bars_1d SELECT count(*)), " +
          "(FROM bars SELECT count(*))",
      );
      assert.deepEqual(counts.getRows(), [[5n, 1n, 6n]]);
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("createBarViews() makes an empty, typed bars view when there is no data", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-query-test-" });
  const instance = await openDuckDB({ threads: 1 });
  const connection = await instance.connect();
  try {
    assert.deepEqual(await createBarViews(connection, []), []);
    const described = await connection.runAndReadAll("DESCRIBE bars");
    assert.deepEqual(
      described.getRows().map(([name, type]) => [name, type]),
      BAR_COLUMNS.map((column) => [
        column.name,
        column.type === "TIMESTAMPTZ" ? "TIMESTAMP WITH TIME ZONE" : column.type,
      ]),
    );
    const count = await connection.runAndReadAll("SELECT count(*) FROM bars");
    assert.deepEqual(count.getRows(), [[0n]]);
  } finally {
    connection.closeSync();
    instance.closeSync();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("runQuery() answers SQL over the bar views", async (t) => {
  const dataDir = await makeDataDir();
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  try {
    await t.step("reports the timeframes that have views", () => {
      assert.deepEqual(engine.timeframes, ["1m", "1d"]);
    });

    await t.step("counts rows exactly", async () => {
      const result = await runQuery(engine, "SELECT count(*) AS n FROM bars_1m");
      assert.deepEqual(result, {
        columns: [{ name: "n", type: "BIGINT" }],
        rows: [[5]],
        rowCount: 1,
        truncated: false,
      });
      const bySymbol = await runQuery(
        engine,
        "SELECT symbol, count(*) AS n FROM bars WHERE timeframe = '1m' GROUP BY ALL ORDER BY 1",
      );
      assert.deepEqual(bySymbol.rows, [["AAPL", 3], ["MSFT", 2]]);
    });

    await t.step("SELECT * has the bar columns without the path-only year", async () => {
      const result = await runQuery(engine, "SELECT * FROM bars_1m LIMIT 1");
      assert.deepEqual(
        result.columns.map((column) => column.name),
        BAR_COLUMNS.map((column) => column.name),
      );
      assert.equal(result.columns[1].type, "TIMESTAMP WITH TIME ZONE");
      const daily = await runQuery(engine, "SELECT * FROM bars_1d");
      assert.deepEqual(daily.columns, result.columns);
    });

    await t.step("converts timestamps, dates and integers to JSON-safe values", async () => {
      const bars = await runQuery(
        engine,
        "SELECT ts, trading_date, trade_count, ingested_at FROM bars_1m " +
          "WHERE symbol = 'AAPL' ORDER BY ts",
      );
      assert.deepEqual(bars.rows, [
        ["2024-03-04T14:30:00.000Z", "2024-03-04", 10, "2024-03-05T00:00:00.000Z"],
        ["2024-03-04T14:31:00.000Z", "2024-03-04", 11, "2024-03-05T00:00:00.000Z"],
        ["2024-03-04T14:32:00.000Z", "2024-03-04", 12, "2024-03-05T00:00:00.000Z"],
      ]);
      const values = await runQuery(
        engine,
        "SELECT 9007199254740993::BIGINT AS big, 12.34::DECIMAL(6, 2) AS price, " +
          "[1, 2]::BIGINT[] AS list, {'day': DATE '2024-01-02', 'n': 3::HUGEINT} AS struct, " +
          "NULL AS nothing, TIMESTAMPTZ '2024-03-04 09:30:00.123456-05' AS micros",
      );
      assert.deepEqual(values.rows, [[
        "9007199254740993",
        12.34,
        [1, 2],
        { day: "2024-01-02", n: 3 },
        null,
        "2024-03-04T14:30:00.123Z",
      ]]);
      assert.equal(
        JSON.stringify(values.rows),
        '[["9007199254740993",12.34,[1,2],{"day":"2024-01-02","n":3},null,"2024-03-04T14:30:00.123Z"]]',
      );
    });

    await t.step("allows DESCRIBE, SHOW, SUMMARIZE and EXPLAIN, refuses PRAGMA", async () => {
      const described = await runQuery(engine, "DESCRIBE bars_1m");
      assert.equal(described.rowCount, BAR_COLUMNS.length);
      const tables = await runQuery(engine, "SHOW TABLES");
      assert.deepEqual(tables.rows, [
        ["bars"],
        ["bars_1d"],
        ["bars_1m"],
        ["symbols"],
        ["symbols_history"],
        ["universe_members"],
        ["universes"],
      ]);
      const summary = await runQuery(engine, "SUMMARIZE bars_1m");
      assert.equal(summary.rowCount, BAR_COLUMNS.length);
      await assert.rejects(
        runQuery(engine, "PRAGMA show_tables"),
        (error: unknown) =>
          error instanceof QueryRejectedError &&
          error.message === "Only read-only statements are allowed: got PRAGMA",
      );
      const plan = await runQuery(engine, "EXPLAIN SELECT * FROM bars_1m WHERE symbol = 'AAPL'");
      assert.equal(plan.rowCount, 1);
      const analyzed = await runQuery(
        engine,
        "/* why so slow? */ EXPLAIN ANALYZE WITH x AS (SELECT 1) FROM x; -- done",
      );
      assert.match(String(analyzed.rows[0][1]), /Total Time/);
    });

    await t.step("stops at the limit and says more rows exist", async () => {
      const truncated = await runQuery(engine, "SELECT * FROM range(5000)", { limit: 3000 });
      assert.equal(truncated.rowCount, 3000);
      assert.equal(truncated.rows.length, 3000);
      assert.deepEqual(truncated.rows[2999], [2999]);
      assert.equal(truncated.truncated, true);
      const exact = await runQuery(engine, "SELECT * FROM range(5000)", { limit: 5000 });
      assert.equal(exact.rowCount, 5000);
      assert.equal(exact.truncated, false);
      const none = await runQuery(engine, "SELECT * FROM bars_1m", { limit: 0 });
      assert.deepEqual([none.rows, none.truncated], [[], true]);
      const defaultLimit = await runQuery(engine, "SELECT * FROM range(10001)");
      assert.deepEqual([defaultLimit.rowCount, defaultLimit.truncated], [10000, true]);
    });
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("runQuery() refuses anything but one read-only statement", async (t) => {
  const dataDir = await makeDataDir();
  const outside = await Deno.makeTempDir({ prefix: "marketpipe-query-outside-" });
  // The one path the sandbox lets DuckDB write: the runner alone must keep statements off it.
  const allowed = sqlString(join(outside, "allowed.parquet"));
  const engine = await openQueryEngine(dataDir, {
    outputFile: join(outside, "allowed.parquet"),
    threads: 1,
  });
  try {
    const rejected: [string, RegExp][] = [
      ["INSERT INTO bars_1m SELECT * FROM bars_1m", /read-only statements.*got INSERT/],
      ["CREATE TABLE t AS SELECT 1 AS a", /got CREATE/],
      ["DROP VIEW bars_1m", /got DROP/],
      ["ALTER VIEW bars_1m RENAME TO gone", /got ALTER/],
      [`COPY (SELECT 1) TO ${sqlString(join(outside, "x.csv"))}`, /got COPY/],
      [`COPY (SELECT 1) TO ${allowed} (FORMAT parquet)`, /got COPY/],
      [`EXPLAIN ANALYZE COPY (SELECT 1) TO ${allowed} (FORMAT parquet)`, /got EXPLAIN COPY/],
      [`EXPLAIN (ANALYZE) COPY (SELECT 1) TO ${allowed} (FORMAT parquet)`, /no options/],
      [`ATTACH ${sqlString(join(outside, "a.db"))} AS a`, /got ATTACH/],
      ["ATTACH ':memory:' AS m", /got ATTACH/],
      ["INSTALL httpfs", /got INSTALL/],
      ["LOAD httpfs", /got LOAD/],
      ["SET threads = 1", /got SET/],
      ["RESET threads", /got RESET/],
      ["PRAGMA threads = 1", /got PRAGMA/],
      ["PRAGMA enable_profiling", /got PRAGMA/],
      ["SET VARIABLE x = 1", /got SET/],
      ["USE memory", /got USE/],
      ["CHECKPOINT", /got CHECKPOINT/],
      ["BEGIN TRANSACTION", /got BEGIN/],
      [`EXPORT DATABASE ${sqlString(join(outside, "export"))}`, /got EXPORT/],
      [`IMPORT DATABASE ${sqlString(outside)}`, /outside the data directory/],
      ["CALL pragma_version()", /got CALL/],
      ["EXPLAIN ANALYZE DROP VIEW bars_1m", /got EXPLAIN DROP/],
      ["EXPLAIN (ANALYZE) DROP VIEW bars_1m", /EXPLAIN ANALYZE followed by a SELECT/],
      [
        `EXPLAIN ANALYZE COPY (SELECT 1) TO ${sqlString(join(outside, "e.csv"))}`,
        /got EXPLAIN COPY/,
      ],
      ["SELECT * FROM read_csv('/etc/passwd')", /^Reading files outside the data directory/],
      [
        `SELECT * FROM read_parquet(${sqlString(join(dataDir, "bars/../../etc/x.parquet"))})`,
        /^Reading files outside the data directory.*etc\/x\.parquet/,
      ],
      [`SELECT * FROM read_text(${sqlString(join(dataDir, "marketpipe.db"))})`, /outside/],
      ["SELECT * FROM glob('/etc/*')", /^Reading files outside the data directory/],
      ["SELECT 1; SELECT 2", /^Cannot run 2 statements: expected one statement/],
      ["SELECT 1; DROP VIEW bars_1m", /expected one statement/],
    ];
    for (const [sql, message] of rejected) {
      await t.step(sql, async () => {
        await assert.rejects(runQuery(engine, sql), (error) => {
          assert.ok(error instanceof QueryRejectedError, `${error}`);
          assert.match(error.message, message);
          return true;
        });
      });
    }

    await t.step("empty queries are rejected", async () => {
      const empty = [
        "",
        "  \n",
        "-- nothing\n;",
        "/* a /* nested */ comment */",
        "/* unterminated",
      ];
      for (const sql of empty) {
        await assert.rejects(runQuery(engine, sql), {
          name: "QueryRejectedError",
          message: "Cannot run an empty query",
        });
      }
      // DuckDB would drop what follows a NUL: refused rather than half run.
      await assert.rejects(runQuery(engine, "\0SELECT 1"), { name: "QueryRejectedError" });
    });

    await t.step("nothing was written or dropped", async () => {
      assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
      const count = await runQuery(engine, "SELECT count(*) FROM bars_1m");
      assert.deepEqual(count.rows, [[5]]);
      // Only the reference tables the engine made itself, still empty.
      const tables = await runQuery(
        engine,
        "SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY 1",
      );
      assert.deepEqual(tables.rows, [
        ["symbols", 0],
        ["symbols_history", 0],
        ["universe_members", 0],
        ["universes", 0],
      ]);
    });
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("runQuery() reports SQL errors with DuckDB's position and a view hint", async () => {
  const dataDir = await makeDataDir();
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  try {
    await assert.rejects(runQuery(engine, "SELECT * FRM bars_1m"), (error) => {
      assert.ok(error instanceof QuerySqlError);
      assert.equal(
        error.message,
        'Parser Error: syntax error at or near "bars_1m"\n\n' +
          "LINE 1: SELECT * FRM bars_1m\n                     ^",
      );
      return true;
    });
    // DuckDB leaves out the position at the end of input; the runner adds it in the same format.
    await assert.rejects(runQuery(engine, "SELECT 1,\n  2 +"), (error) => {
      assert.ok(error instanceof QuerySqlError);
      assert.equal(
        error.message,
        "Parser Error: syntax error at end of input\n\nLINE 2:   2 +\n             ^",
      );
      return true;
    });
    await assert.rejects(runQuery(engine, "SELECT nope FROM bars_1m"), (error) => {
      assert.ok(error instanceof QuerySqlError);
      assert.match(error.message, /^Binder Error: .*"nope"[^]*LINE 1: SELECT nope/);
      return true;
    });
    await assert.rejects(runQuery(engine, "SELECT * FROM bars_5m"), (error) => {
      assert.ok(error instanceof QuerySqlError);
      assert.match(error.message, /^Catalog Error: Table with name bars_5m does not exist!/);
      assert.match(
        error.message,
        /\nHint: no 5m bars are stored; views available: bars_1m, bars_1d, bars; reference tables: symbols, symbols_history, universes, universe_members$/,
      );
      return true;
    });
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("runQuery() interrupts a slow query at the timeout or on abort", async () => {
  const dataDir = await makeDataDir();
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  const slow = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b";
  try {
    await assert.rejects(runQuery(engine, slow, { timeoutMs: 200 }), (error) => {
      assert.ok(error instanceof QueryTimeoutError);
      assert.equal(error.message, "Query timed out after 200 ms");
      return true;
    });

    const controller = new AbortController();
    const reason = new Error("user pressed Ctrl-C");
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(runQuery(engine, slow, { signal: controller.signal }), reason);
    await assert.rejects(runQuery(engine, "SELECT 1", { signal: controller.signal }), reason);

    // The engine keeps working afterwards.
    assert.deepEqual((await runQuery(engine, "SELECT 42")).rows, [[42]]);
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("writeQueryParquet() writes the result atomically and refuses writes", async () => {
  const dataDir = await makeDataDir();
  const outDir = await Deno.makeTempDir({ prefix: "marketpipe-query-out-" });
  const outputFile = join(outDir, "aapl.parquet");
  const engine = await openQueryEngine(dataDir, { outputFile, threads: 1 });
  try {
    const written = await writeQueryParquet(
      engine,
      "SELECT ts, close FROM bars_1m WHERE symbol = 'AAPL' ORDER BY ts DESC -- newest first",
      outputFile,
    );
    assert.equal(written, 3);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(outDir))).map((entry) => entry.name),
      ["aapl.parquet"],
    );
    // The file is plain Parquet any reader can open (and the engine itself may read it back).
    const back = await runQuery(engine, `SELECT * FROM ${sqlString(outputFile)}`);
    assert.deepEqual(back.rows, [
      ["2024-03-04T14:32:00.000Z", 102.5],
      ["2024-03-04T14:31:00.000Z", 101.5],
      ["2024-03-04T14:30:00.000Z", 100.5],
    ]);

    for (const sql of ["DELETE FROM bars_1m", "DROP VIEW bars_1m", "EXPLAIN SELECT 1"]) {
      await assert.rejects(writeQueryParquet(engine, sql, outputFile), QueryRejectedError);
    }
    await assert.rejects(
      writeQueryParquet(engine, "SELECT * FROM read_csv('/etc/passwd')", outputFile),
      QueryRejectedError,
    );
    await assert.rejects(writeQueryParquet(engine, "SELECT * FRM x", outputFile), QuerySqlError);
    await assert.rejects(
      writeQueryParquet(engine, "SELECT 1", join(outDir, "other.parquet")),
      TypeError,
    );
    // A failed export leaves the previous file untouched and no temp file behind.
    await assert.rejects(
      writeQueryParquet(
        engine,
        "SELECT CAST(CASE WHEN range > 3000 THEN 'x' ELSE '1' END AS INTEGER) FROM range(5000)",
        outputFile,
      ),
      QuerySqlError,
    );
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(outDir))).map((entry) => entry.name),
      ["aapl.parquet"],
    );
    assert.equal(
      (await runQuery(engine, `SELECT count(*) FROM ${sqlString(outputFile)}`))
        .rows[0][0],
      3,
    );
  } finally {
    engine.close();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("openQueryEngine() refuses an output file inside the data directory", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-query-test-" });
  try {
    await Deno.mkdir(join(dataDir, "bars"));
    for (const file of [join(dataDir, "bars", "x.parquet"), join(dataDir, "marketpipe.db")]) {
      await assert.rejects(
        openQueryEngine(dataDir, { outputFile: file }),
        /^UsageError: Cannot write --output ".*": it is inside the data directory/,
      );
    }
    using engine = await openQueryEngine(dataDir, { threads: 1 });
    assert.deepEqual(engine.timeframes, []);
    assert.deepEqual((await runQuery(engine, "SELECT count(*) FROM bars")).rows, [[0]]);
    await assert.rejects(
      runQuery(engine, "SELECT * FROM bars_1m"),
      /Hint: no 1m bars are stored; views available: bars; reference tables: symbols, symbols_history, universes, universe_members$/,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
