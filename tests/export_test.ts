/**
 * End-to-end tests of `marketpipe export` and of `query --output` writing every row: the real CLI
 * on a data directory of about 1M fake 1m bars, results read back with DuckDB.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openDuckDB } from "../storage/duckdb.ts";
import { BAR_COLUMNS } from "../storage/mod.ts";
import { json, listTree, runCli } from "./_cli.ts";

const SYMBOLS = ["AAPL", "MSFT", "SPY", "BRK.B"];
const START = "2024-01-02";
const END = "2024-12-31";
const RANGE_SQL = `FROM bars_1m WHERE symbol IN ('AAPL', 'MSFT', 'SPY', 'BRK.B')
  AND trading_date BETWEEN DATE '${START}' AND DATE '${END}' ORDER BY symbol, ts`;

let _store: Promise<string> | undefined;

/** One data directory for the suite: 4 symbols x 2024 of 1m bars (about 960k). */
function store(): Promise<string> {
  _store ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "mp-export-" });
    const ingest = await runCli([
      "ingest",
      "--symbols",
      SYMBOLS.join(","),
      "--start",
      START,
      "--end",
      END,
      "--data-dir",
      join(dir, "data"),
    ]);
    assert.equal(ingest.code, 0, ingest.stderr);
    return dir;
  })();
  return _store;
}

async function exportCli(dir: string, args: string[]) {
  return await runCli(["export", "--data-dir", join(dir, "data"), ...args], { cwd: dir });
}

/** Runs one statement on a fresh DuckDB (UTC) and returns its rows. */
async function duck(sql: string): Promise<unknown[][]> {
  const instance = await openDuckDB({ threads: 1 });
  try {
    const connection = await instance.connect();
    try {
      return (await connection.runAndReadAll(sql)).getRows();
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

const CSV_TYPES = `{${BAR_COLUMNS.map((c) => `'${c.name}': '${c.type}'`).join(", ")}}`;

/** Rows in `a` missing from `b` plus rows in `b` missing from `a` (multisets), and both counts. */
async function difference(a: string, b: string): Promise<{ diff: number; rows: number[] }> {
  const [[left, right, diff]] = await duck(`WITH a AS (${a}), b AS (${b})
    SELECT (SELECT count(*) FROM a)::INTEGER, (SELECT count(*) FROM b)::INTEGER,
      (SELECT count(*) FROM (FROM a EXCEPT ALL FROM b))::INTEGER +
      (SELECT count(*) FROM (FROM b EXCEPT ALL FROM a))::INTEGER`);
  return { diff: diff as number, rows: [left as number, right as number] };
}

Deno.test("export writes ~1M bars equal to query value for value in Parquet and CSV", async () => {
  const dir = await store();
  const query = await runCli(
    ["query", `SELECT * ${RANGE_SQL}`, "--format", "parquet", "--output", "query.parquet"],
    { cwd: dir, env: { MARKETPIPE_DATA_DIR: join(dir, "data") } },
  );
  assert.equal(query.code, 0, query.stderr);
  const rows = Number(/Wrote ([\d,]+) row/.exec(query.stderr)![1].replaceAll(",", ""));
  assert.ok(rows > 900_000, `expected about 1M bars, got ${rows}`);
  const range = ["--symbols", SYMBOLS.join(","), "--start", START, "--end", END];
  const queried = `FROM read_parquet('${dir}/query.parquet')`;
  for (const format of ["parquet", "csv"]) {
    const out = `bars.${format}`;
    const result = await exportCli(dir, [...range, "--format", format, "--out", out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`Exported ${rows.toLocaleString("en-US")} bar\\(s\\)`));
    const exported = format === "parquet"
      ? `FROM read_parquet('${dir}/${out}')`
      : `FROM read_csv('${dir}/${out}', header = true, columns = ${CSV_TYPES})`;
    assert.deepEqual(await difference(exported, queried), { diff: 0, rows: [rows, rows] });
    // Ordered by symbol, then ts, like the query.
    const [[ordered]] = await duck(`SELECT bool_and(k = rn)
      FROM (SELECT row_number() OVER () AS k, row_number() OVER (ORDER BY symbol, ts) AS rn ${exported})`);
    assert.equal(ordered, true, `${format} export is not ordered by symbol, ts`);
  }
  const csv = await Deno.readTextFile(join(dir, "bars.csv"));
  assert.equal(csv.slice(0, csv.indexOf("\n")), BAR_COLUMNS.map((c) => c.name).join(","));
  const second = csv.indexOf("\n") + 1;
  assert.match(csv.slice(second, second + 100), /^AAPL,2024-01-02T09:00:00\.000Z,/);
  // Nothing but the outputs: no temp file or staging folder is left beside them.
  assert.deepEqual(
    (await listTree(dir)).filter((name) => !name.startsWith("data")),
    ["bars.csv", "bars.parquet", "query.parquet"],
  );
});

Deno.test("export --per-symbol --tz --columns writes one CSV per symbol in New York time", async () => {
  const dir = await store();
  const result = await exportCli(dir, [
    "--symbols",
    "AAPL,BRK.B",
    "--start",
    "2024-03-08",
    "--end",
    "2024-03-11", // the DST switch is on Sunday 2024-03-10
    "--format",
    "csv",
    "--per-symbol",
    "--tz",
    "America/New_York",
    "--columns",
    "ts,close,session",
    "--out",
    "per/",
    "--json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const summary = json<{ rows: number; files: { path: string; rows: number }[] }>(result);
  assert.deepEqual(summary.files.map((f) => f.path), [
    join(dir, "per", "AAPL.csv"),
    join(dir, "per", "BRK.B.csv"),
  ]);
  assert.deepEqual(await listTree(join(dir, "per")), ["AAPL.csv", "BRK.B.csv"]);
  const lines = (await Deno.readTextFile(join(dir, "per", "AAPL.csv"))).trimEnd().split("\n");
  assert.equal(lines[0], "ts_America/New_York,close,session");
  assert.equal(lines.length - 1, summary.files[0].rows);
  // 04:00 New York is 09:00 UTC before the switch (EST) and 08:00 UTC after it (EDT).
  assert.match(lines[1], /^2024-03-08T04:00:00\.000-05:00,[\d.]+,pre$/);
  const monday = lines.find((line) => line.startsWith("2024-03-11T"));
  assert.match(monday!, /^2024-03-11T04:00:00\.000-04:00,[\d.]+,pre$/);
  // The local times are the same instants as the stored ts.
  const [[same]] = await duck(`SELECT count(*) = 0 FROM (
      SELECT "ts_America/New_York"::TIMESTAMPTZ AS ts, close
        FROM read_csv('${dir}/per/AAPL.csv', header = true, all_varchar = true)
      EXCEPT ALL SELECT ts, close::VARCHAR FROM read_parquet('${dir}/data/bars/timeframe=1m/symbol=AAPL/**/*.parquet')
        WHERE trading_date BETWEEN DATE '2024-03-08' AND DATE '2024-03-11')`);
  assert.equal(same, true);
});

Deno.test("export --format arrow writes an Arrow IPC file with UTC instants", async () => {
  const dir = await store();
  const result = await exportCli(dir, [
    "--symbols",
    "SPY",
    "--start",
    "2024-07-01",
    "--end",
    "2024-07-03",
    "--format",
    "arrow",
    "--columns",
    "symbol,ts,vwap,trade_count,trading_date",
    "--out",
    "spy.arrow",
    "--json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const { rows } = json<{ rows: number }>(result);
  const { tableFromIPC } = await import("apache-arrow");
  const table = tableFromIPC(await Deno.readFile(join(dir, "spy.arrow")));
  assert.equal(table.numRows, rows);
  assert.deepEqual(table.schema.fields.map((f) => `${f.name}:${f.type}`), [
    "symbol:Utf8",
    "ts:Timestamp<MICROSECOND, UTC>",
    "vwap:Float64",
    "trade_count:Int64",
    "trading_date:Date32<DAY>",
  ]);
  const first = table.get(0)!.toJSON();
  const [[ts, vwap, count]] = await duck(`SELECT epoch_ms(ts), vwap, trade_count
    FROM read_parquet('${dir}/data/bars/timeframe=1m/symbol=SPY/**/*.parquet')
    WHERE trading_date = DATE '2024-07-01' ORDER BY ts LIMIT 1`);
  assert.equal(first.symbol, "SPY");
  assert.equal(Number(first.ts), Number(ts)); // apache-arrow reads timestamps as epoch ms
  assert.equal(first.vwap, vwap);
  assert.equal(first.trade_count, count);
  assert.equal(first.trading_date, Date.UTC(2024, 6, 1));
});

Deno.test("export refuses bad input with exit 2 and writes nothing", async () => {
  const dir = await store();
  await Deno.mkdir(join(dir, "bad"), { recursive: true });
  const base = ["--symbols", "AAPL", "--start", "2024-03-04", "--format", "csv"];
  const cases: [string, string[], RegExp][] = [
    [
      "unknown column",
      [...base, "--columns", "ts,clsoe", "--out", "bad/a.csv"],
      /unknown column "clsoe"/,
    ],
    ["bad format", [
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-04",
      "--format",
      "xlsx",
      "--out",
      "bad/a",
    ], /Invalid --format "xlsx"/],
    ["out in data dir", [...base, "--out", "data/bars/a.csv"], /inside the data directory/],
    [
      "start after end",
      [...base, "--end", "2024-03-01", "--out", "bad/a.csv"],
      /--start 2024-03-04 is after --end 2024-03-01/,
    ],
    ["unknown symbol", [
      "--symbols",
      "AAPL,ZZZZ",
      "--start",
      "2024-03-04",
      "--format",
      "csv",
      "--out",
      "bad/a.csv",
    ], /No stored 1m bars of ZZZZ/],
    ["tz on parquet", [
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-04",
      "--format",
      "parquet",
      "--tz",
      "America/New_York",
      "--out",
      "bad/a",
    ], /--tz applies to csv/],
    [
      "bad tz",
      [...base, "--tz", "Mars/Olympus", "--out", "bad/a.csv"],
      /Invalid --tz "Mars\/Olympus"/,
    ],
    ["per-symbol into a file", [...base, "--per-symbol", "--out", "bad/file"], /it is a file/],
  ];
  await Deno.writeTextFile(join(dir, "bad", "file"), "keep\n");
  const before = await listTree(join(dir, "data"));
  for (const [name, args, message] of cases) {
    const result = await exportCli(dir, args);
    assert.equal(result.code, 2, `${name}: ${result.stderr}`);
    assert.match(result.stderr, message, name);
    assert.equal(result.stderr.trim().split("\n").length, 1, `${name}: one line`);
  }
  assert.deepEqual(await listTree(join(dir, "bad")), ["file"]);
  assert.deepEqual(await listTree(join(dir, "data")), before);
});

Deno.test("query --output writes every row; an explicit --limit that cuts exits 3", async () => {
  const dir = await store();
  const env = { MARKETPIPE_DATA_DIR: join(dir, "data") };
  const sql = "SELECT symbol, ts, close FROM bars_1m WHERE symbol = 'MSFT' AND ts < '2024-02-01'";
  const [[count]] = await duck(`SELECT count(*)::INTEGER
    FROM read_parquet('${dir}/data/bars/timeframe=1m/symbol=MSFT/**/*.parquet')
    WHERE ts < '2024-02-01'`);
  const expected = count as number;
  assert.ok(expected > 10_000);
  for (const format of ["csv", "json", "parquet"]) {
    const out = join(dir, `all.${format}`);
    const result = await runCli(["query", sql, "--format", format, "--output", out], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`Wrote ${expected.toLocaleString("en-US")} row`));
    const reader = format === "csv"
      ? `read_csv('${out}')`
      : format === "json"
      ? `read_json('${out}')`
      : `read_parquet('${out}')`;
    assert.deepEqual(await duck(`SELECT count(*)::INTEGER FROM ${reader}`), [[expected]], format);
  }
  for (const format of ["csv", "parquet"]) {
    const out = join(dir, `cut.${format}`);
    const cut = await runCli(
      ["query", sql, "--format", format, "--output", out, "--limit", "100"],
      { env },
    );
    assert.equal(cut.code, 3, cut.stderr);
    assert.equal(
      cut.stderr.trim(),
      `Wrote 100 of ${expected.toLocaleString("en-US")} rows to ${out}: --limit 100 cut the ` +
        "result; leave --limit out to write every row",
    );
    const reader = format === "csv" ? `read_csv('${out}')` : `read_parquet('${out}')`;
    assert.deepEqual(await duck(`SELECT count(*)::INTEGER FROM ${reader}`), [[100]]);
  }
  // A --limit that cuts nothing is no cut; the terminal keeps its default limit.
  const whole = await runCli(
    ["query", sql, "--format", "csv", "--output", join(dir, "whole.csv"), "--limit", "100000"],
    { env },
  );
  assert.equal(whole.code, 0, whole.stderr);
  const shown = await runCli(["query", sql, "--format", "csv"], { env });
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(shown.stdout.trimEnd().split("\n").length, 10_001);
  assert.match(shown.stderr, /Showing the first 10,000 rows/);
});
