/**
 * Interop (issue 10): after a 1m ingest, `aggregate` and a `--timeframe 1d` ingest, `<data>/bars`
 * opens as ONE hive-partitioned dataset in DuckDB, pandas, pyarrow, polars and dask, through the
 * README's snippets as written, and each returns the rows and values of `marketpipe query`; the
 * demo's printed commands run as printed.
 *
 * The readers live in a Python venv: `MARKETPIPE_INTEROP_PYTHON` names its python (.ci/run sets it
 * up); when the variable is unset, the test runs tests/interop_setup.sh itself. A missing reader
 * fails the test, it never skips.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { json, MAIN, runCli, runCommand as run } from "./_cli.ts";

const SETUP = fileURLToPath(new URL("./interop_setup.sh", import.meta.url));
const READ = fileURLToPath(new URL("./interop_read.py", import.meta.url));
const README = fileURLToPath(new URL("../README.md", import.meta.url));
const READERS = ["dask", "duckdb", "pandas", "polars", "pyarrow"];
const TIMEFRAMES = ["15m", "1d", "1h", "1m", "30m", "4h", "5m"];

/** What tests/interop_read.py (and the SQL below) computes per timeframe. */
interface Digest {
  rows: number;
  keys: number;
  close_e4: number;
  volume: number;
  trade_count: number;
  vwap_count: number;
  regular: number;
  min_ts_us: number;
  max_ts_us: number;
  first_date: string;
  last_date: string;
  symbols: string[];
  years: number[];
  year_mismatches: number;
}

interface ReaderResult {
  columns: [string, string][];
  ts_utc: boolean;
  types: Record<string, string>;
  bars: Record<string, Digest>;
  daily: Record<string, Digest>;
}

/** The same numbers as tests/interop_read.py's digest(), in SQL over the `bars` view. */
function digestSql(where: string): string {
  return `SELECT timeframe, count(*) AS rows, count(DISTINCT (symbol, ts)) AS keys,
    sum(round(close * 1e4)::BIGINT)::BIGINT AS close_e4, sum(round(volume)::BIGINT)::BIGINT AS volume,
    coalesce(sum(trade_count), 0)::BIGINT AS trade_count, count(vwap) AS vwap_count,
    count(*) FILTER (WHERE session = 'regular') AS regular,
    epoch_us(min(ts)) AS min_ts_us, epoch_us(max(ts)) AS max_ts_us,
    strftime(min(trading_date), '%Y-%m-%d') AS first_date,
    strftime(max(trading_date), '%Y-%m-%d') AS last_date,
    list(DISTINCT symbol ORDER BY symbol) AS symbols,
    list(DISTINCT year(trading_date)::INTEGER ORDER BY year(trading_date)::INTEGER) AS years,
    0 AS year_mismatches
  FROM bars WHERE ${where} GROUP BY timeframe ORDER BY timeframe`;
}

async function query<T>(dataDir: string, sql: string): Promise<T[]> {
  const result = await runCli(["query", sql, "--format", "json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json<T[]>(result);
}

async function queryDigests(dataDir: string, where: string): Promise<Record<string, Digest>> {
  const rows = await query<Digest & { timeframe: string }>(dataDir, digestSql(where));
  return Object.fromEntries(rows.map(({ timeframe, ...digest }) => [timeframe, digest]));
}

/** The interop venv's python: from MARKETPIPE_INTEROP_PYTHON, else set up now. */
async function interopPython(): Promise<string> {
  const given = Deno.env.get("MARKETPIPE_INTEROP_PYTHON");
  if (given === "") {
    throw new Error(
      "MARKETPIPE_INTEROP_PYTHON is empty: the Python readers could not be set up (run bash tests/interop_setup.sh to see why)",
    );
  }
  if (given !== undefined) return given;
  const output = await new Deno.Command("bash", {
    args: [SETUP],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(output.code, 0, `bash ${SETUP} failed: ${decoder.decode(output.stderr)}`);
  return decoder.decode(output.stdout).trim();
}

/** Run `marketpipe <words> --data-dir <dataDir>`; `words` holds no quoted arguments. */
async function cli(words: string, dataDir: string) {
  const result = await runCli([...words.split(" "), "--data-dir", dataDir]);
  assert.equal(result.code, 0, `marketpipe ${words}:\n${result.stdout}\n${result.stderr}`);
}

Deno.test("README snippets open <data>/bars as one dataset in every reader, with the rows and values of marketpipe query", async () => {
  const python = await interopPython();
  const dir = await Deno.makeTempDir({ prefix: "mp-interop-" });
  const dataDir = `${dir}/data`;
  try {
    const symbols = "AAPL,MSFT,BRK.B";
    // 1m over a month boundary (and Good Friday), rolled up; 1d from the provider over two years.
    await cli(`ingest --symbols ${symbols} --start 2024-03-25 --end 2024-04-05`, dataDir);
    await cli("aggregate", dataDir);
    await cli(
      `ingest --symbols ${symbols} --timeframe 1d --start 2023-11-01 --end 2024-05-31`,
      dataDir,
    );

    const expected = await queryDigests(dataDir, "true");
    const expectedDaily = await queryDigests(dataDir, "timeframe = '1d' AND symbol = 'AAPL'");
    // The fixture is what the test is about: every frame, three symbols, two years of daily bars.
    assert.deepEqual(Object.keys(expected).sort(), TIMEFRAMES);
    assert.deepEqual(expected["1m"].symbols, ["AAPL", "BRK.B", "MSFT"]);
    assert.deepEqual([expected["1m"].first_date, expected["1m"].last_date], [
      "2024-03-25",
      "2024-04-05",
    ]);
    assert.deepEqual(expected["1d"].years, [2023, 2024]);
    assert.ok(expectedDaily["1d"].rows > 100, JSON.stringify(expectedDaily));
    const described = await query<{ column_name: string }>(dataDir, "DESCRIBE bars");
    const columns = [...new Set([...described.map((row) => row.column_name), "year"])].sort();

    // The README's relative `data/bars` resolves from the folder holding data/. A zone other than
    // UTC shows that no reader turns ts into local time.
    const result = await run(python, [READ, README], { cwd: dir, env: { TZ: "America/New_York" } });
    assert.equal(result.code, 0, `${python} ${READ} failed:\n${result.stderr}`);
    const { readers } = JSON.parse(result.stdout) as { readers: Record<string, ReaderResult> };
    assert.deepEqual(Object.keys(readers).sort(), READERS, "one README snippet per reader");

    for (const [reader, got] of Object.entries(readers)) {
      const schema = JSON.stringify(got.columns);
      assert.deepEqual(
        got.columns.map(([name]) => name).sort(),
        columns,
        `${reader} columns: ${schema}`,
      );
      assert.ok(got.ts_utc, `${reader}: ts is not timezone-aware UTC: ${schema}`);
      assert.equal(got.types.ts, "timestamp[us, tz=UTC]", `${reader} ts: ${schema}`);
      assert.equal(got.types.timeframe, "string", `${reader} timeframe: ${schema}`);
      assert.equal(got.types.symbol, "string", `${reader} symbol: ${schema}`);
      assert.match(got.types.year, /^u?int(8|16|32|64)$/, `${reader} year: ${schema}`);
      assert.deepEqual(
        got.bars,
        expected,
        `${reader}: the whole tree differs from marketpipe query`,
      );
      assert.deepEqual(
        got.daily,
        expectedDaily,
        `${reader}: AAPL's daily bars differ from marketpipe query`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("demo prints commands and Python one-liners that run as printed", async () => {
  const python = await interopPython();
  const dir = await Deno.makeTempDir({ prefix: "mp-interop-demo-" });
  const dataDir = `${dir}/data`;
  try {
    const demoArgs = "demo --symbols AAPL --start 2024-03-25 --end 2024-03-26".split(" ");
    const demo = await runCli([...demoArgs, "--data-dir", dataDir]);
    assert.equal(demo.code, 0, demo.stderr);
    const lines = demo.stdout.split("\n");
    const tryAt = lines.findIndex((line) => line.startsWith("Try"));
    assert.ok(tryAt >= 0, demo.stdout);
    const commands = lines.slice(tryAt + 1).filter((line) => line.startsWith("  ")).map((line) =>
      line.trim()
    );
    assert.ok(commands.some((c) => c.startsWith("marketpipe query ")), demo.stdout);
    assert.ok(
      commands.some((c) => c.startsWith("python3 -c ") && c.includes("pandas")),
      demo.stdout,
    );
    assert.ok(
      commands.some((c) => c.startsWith("python3 -c ") && c.includes("polars")),
      demo.stdout,
    );

    // `marketpipe` is the release binary's name and `python3` one with the readers installed.
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    await Deno.writeTextFile(
      `${bin}/marketpipe`,
      `#!/bin/sh\nexec ${quote(Deno.execPath())} run -A --quiet ${quote(MAIN)} "$@"\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${bin}/python3`, `#!/bin/sh\nexec ${quote(python)} "$@"\n`, {
      mode: 0o755,
    });
    const path = `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
    for (const command of commands) {
      const result = await run("bash", ["-c", command], { cwd: dir, env: { PATH: path } });
      assert.equal(result.code, 0, `${command}\n${result.stdout}\n${result.stderr}`);
      assert.notEqual(result.stdout.trim(), "", command);
      if (command.startsWith("python3")) {
        assert.match(result.stdout, /AAPL/, `${command}\n${result.stdout}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
