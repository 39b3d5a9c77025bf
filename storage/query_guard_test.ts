import assert from "node:assert/strict";
import type { DuckDBConnection } from "@duckdb/node-api";
import { createBarViews, openDuckDB } from "./duckdb.ts";
import {
  checkNotEmpty,
  prepareReadOnly,
  QueryRejectedError,
  QuerySqlError,
  toQueryError,
} from "./query_guard.ts";

/** The guard's needs of an engine: a 1m view, faked over the empty `bars` view. */
const VIEWS = { timeframes: ["1m"] } as const;

/** Runs `fn` on a plain in-memory DuckDB holding the empty `bars` view and a `bars_1m` over it. */
async function withViews(fn: (connection: DuckDBConnection) => Promise<void>): Promise<void> {
  const instance = await openDuckDB({ threads: 1 });
  const connection = await instance.connect();
  try {
    await createBarViews(connection, []);
    await connection.run("CREATE VIEW bars_1m AS FROM bars");
    await fn(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** The statement type DuckDB prepared `sql` as, or the guard's refusal message. */
async function verdict(
  connection: DuckDBConnection,
  sql: string,
  allowExplain = true,
): Promise<string> {
  try {
    const prepared = await prepareReadOnly(connection, VIEWS, sql, { allowExplain });
    prepared.destroySync();
    return "accepted";
  } catch (error) {
    if (!(error instanceof QueryRejectedError)) throw error;
    return error.message;
  }
}

Deno.test("checkNotEmpty() refuses SQL without a statement or with a NUL", () => {
  for (
    const sql of ["", "  \n", "-- nothing\n;", ";;", "/* a /* nested */ comment */", "/* open"]
  ) {
    assert.throws(() => checkNotEmpty(sql), {
      name: "QueryRejectedError",
      message: "Cannot run an empty query",
    });
  }
  assert.throws(() => checkNotEmpty("SELECT 1\0; DROP VIEW bars"), {
    name: "QueryRejectedError",
    message: "Cannot run a query that contains a NUL character (\\0)",
  });
  checkNotEmpty("-- a comment first\nSELECT 1");
  checkNotEmpty("/* */ ; FROM bars");
});

Deno.test("prepareReadOnly() accepts read-only statements only", async () => {
  await withViews(async (connection) => {
    for (
      const sql of ["SELECT 1", "FROM bars_1m", "WITH t AS (SELECT 1) FROM t", "DESCRIBE bars"]
    ) {
      assert.equal(await verdict(connection, sql), "accepted", sql);
    }
    assert.equal(
      await verdict(connection, "EXPLAIN ANALYZE SELECT count(*) FROM bars"),
      "accepted",
    );
    const refused: [string, string][] = [
      ["DROP VIEW bars_1m", "Only read-only statements are allowed: got DROP"],
      ["INSERT INTO bars_1m FROM bars", "Only read-only statements are allowed: got INSERT"],
      ["CREATE TABLE t AS SELECT 1", "Only read-only statements are allowed: got CREATE"],
      ["/* hidden */ SET threads = 1", "Only read-only statements are allowed: got SET"],
      ["PRAGMA version", "Only read-only statements are allowed: got PRAGMA"],
      ["CALL pragma_version()", "Only read-only statements are allowed: got CALL"],
      [
        "EXPLAIN ANALYZE DROP VIEW bars_1m",
        "Only read-only statements are allowed: got EXPLAIN DROP",
      ],
      ["SELECT 1; SELECT 2", "Cannot run 2 statements: expected one statement"],
      [
        "SELECT $1",
        "Query parameters ($1, $name, ?) are not supported: write the values into the SQL",
      ],
    ];
    for (const [sql, message] of refused) {
      assert.equal(await verdict(connection, sql), message, sql);
    }
    assert.equal(
      await verdict(connection, "EXPLAIN SELECT 1", false),
      "Only a SELECT statement can be written to a file: got EXPLAIN",
    );
  });
});

Deno.test("toQueryError() adds a caret line at the end of input and a missing-view hint", async () => {
  await withViews(async (connection) => {
    await assert.rejects(
      prepareReadOnly(connection, VIEWS, "SELECT 1,\n  2 +", { allowExplain: true }),
      {
        name: "QuerySqlError",
        message: "Parser Error: syntax error at end of input\n\nLINE 2:   2 +\n             ^",
      },
    );
    await assert.rejects(
      prepareReadOnly(connection, VIEWS, "FROM bars_5m", { allowExplain: true }),
      (error) => {
        assert.ok(error instanceof QuerySqlError);
        assert.match(
          error.message,
          /\nHint: no 5m bars are stored; views available: bars_1m, bars; reference tables: symbols, symbols_history, universes, universe_members$/,
        );
        return true;
      },
    );
    const hint = await toQueryError(
      connection,
      VIEWS,
      "FROM bars_2m",
      new Error("Catalog Error: Table with name bars_2m does not exist!"),
    );
    assert.ok(hint instanceof QuerySqlError);
    assert.match(
      hint.message,
      /\nHint: "2m" is not a timeframe \(1m, 5m, 15m, 30m, 1h, 4h, 1d\); /,
    );
    const denied = await toQueryError(
      connection,
      VIEWS,
      "FROM read_csv('/etc/passwd')",
      new Error('Permission Error: Cannot access file "/etc/passwd"\nmore detail'),
    );
    assert.ok(denied instanceof QueryRejectedError);
    assert.equal(
      denied.message,
      'Reading files outside the data directory is not allowed: Cannot access file "/etc/passwd"',
    );
    const other = await toQueryError(
      connection,
      VIEWS,
      "SELECT 1",
      new Error("Out of Memory Error: x"),
    );
    assert.ok(!(other instanceof QuerySqlError) && !(other instanceof QueryRejectedError));
    assert.equal(other.message, "Cannot run query: Out of Memory Error: x");
  });
});
