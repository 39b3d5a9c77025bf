/**
 * End-to-end tests of data quality and timeframes: validation with quarantine and audit reports,
 * gap detection, aggregation and the cross-check, through the real CLI on temp data directories.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { aggregateBars } from "../core/aggregate.ts";
import { tradingDays } from "../core/calendar.ts";
import { VALIDATION_RULES } from "../core/validate.ts";
import { fakeDefects, generateFakeDay } from "../providers/fake.ts";
import { json, listTree, runCli } from "./_cli.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mp-quality-" });
}

const SEVERITY = Object.fromEntries(VALIDATION_RULES.map((r) => [r.id, r.severity]));

async function query<T = Record<string, unknown>>(dataDir: string, sql: string): Promise<T[]> {
  const result = await runCli(["query", sql, "--format", "json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json<T[]>(result);
}

function countBy(items: readonly { rule: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[item.rule] = (out[item.rule] ?? 0) + 1;
  return out;
}

/** Every report CSV row of a data directory's report, as `symbol ts rule` keys, sorted. */
async function reportKeys(dataDir: string, reportId: string): Promise<string[]> {
  const shown = await runCli(["validate", "--show", reportId, "--json", "--data-dir", dataDir]);
  assert.equal(shown.code, 0, shown.stderr);
  const report = json<{ rows: { symbol: string; ts: string; rule: string }[] }>(shown);
  return report.rows.map((r) => `${r.symbol} ${Date.parse(r.ts)} ${r.rule}`).sort();
}

Deno.test("ingest quarantines injected bad bars by rule, stores the good ones, and the report lists exactly the defects", async () => {
  const dir = await tempDir();
  const symbols = ["AAPL", "BRK.B"];
  const [start, end] = ["2024-03-04", "2024-03-08"];
  const options = { seed: 7, gapRate: 0, corruptRate: 0.03 };
  const ingest = await runCli([
    "ingest",
    "--symbols",
    symbols.join(","),
    "--start",
    start,
    "--end",
    end,
    "--fake-seed",
    "7",
    "--fake-gap-rate",
    "0",
    "--fake-corrupt-rate",
    "0.03",
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  const summary = json<{
    job: { id: string };
    status: string;
    barsWritten: number;
    barsQuarantined: number;
    quarantined: Record<string, number>;
    findings: Record<string, number>;
  }>(ingest);
  assert.equal(summary.status, "succeeded");

  const defects = symbols.flatMap((symbol) =>
    tradingDays(start, end).flatMap((date) => fakeDefects(symbol, date, options))
  );
  const errors = defects.filter((d) => SEVERITY[d.rule] === "error");
  const warnings = defects.filter((d) => SEVERITY[d.rule] !== "error");
  assert.ok(errors.length >= 10 && warnings.length >= 10, JSON.stringify(countBy(defects)));
  // Every kind of defect the fake provider makes shows up in this week.
  assert.equal(Object.keys(countBy(defects)).length, 9, JSON.stringify(countBy(defects)));

  // The summary counts the quarantined bars per rule and the warnings per rule.
  assert.deepEqual(summary.quarantined, countBy(errors));
  assert.equal(summary.barsQuarantined, errors.length);
  assert.deepEqual(summary.findings, countBy(warnings));

  // bars/ holds every generated bar except the quarantined ones; none of those is stored.
  const generated = symbols.reduce(
    (n, s) =>
      n + tradingDays(start, end).reduce((m, d) => m + generateFakeDay(s, d, options).length, 0),
    0,
  );
  assert.equal(summary.barsWritten, generated - errors.length);
  const [count] = await query<{ n: number }>(dir, "SELECT count(*) AS n FROM bars_1m");
  assert.equal(count.n, generated - errors.length);
  const quarantined = await query<{ symbol: string; ts: string; rule: string; ingest_id: string }>(
    dir,
    `SELECT symbol, ts, rule, ingest_id FROM read_parquet('${dir}/quarantine/**/*.parquet', hive_partitioning = true, hive_types_autocast = false) ORDER BY symbol, ts`,
  );
  assert.deepEqual(
    quarantined.map((q) => `${q.symbol} ${Date.parse(q.ts)} ${q.rule}`).sort(),
    errors.map((d) => `${d.symbol} ${d.ts} ${d.rule}`).sort(),
  );
  assert.ok(quarantined.every((q) => q.ingest_id === summary.job.id));
  const leaked = await query(
    dir,
    `SELECT b.symbol, b.ts FROM bars_1m b JOIN read_parquet('${dir}/quarantine/**/*.parquet', hive_partitioning = true, hive_types_autocast = false) q USING (symbol, ts)`,
  );
  assert.deepEqual(leaked, []);

  // The audit report of the job lists exactly the injected defects: the quarantined bars and
  // the warnings found in the stored ones.
  const validate = await runCli(["validate", summary.job.id, "--json", "--data-dir", dir]);
  assert.equal(validate.code, 0, validate.stderr);
  const report = json<
    { id: string; bars_checked: number; errors: number; warnings: number; path: string }
  >(validate);
  assert.equal(report.bars_checked, generated - errors.length);
  assert.equal(report.errors, errors.length);
  assert.deepEqual(
    await reportKeys(dir, report.id),
    defects.map((d) => `${d.symbol} ${d.ts} ${d.rule}`).sort(),
  );
  const csv = await Deno.readTextFile(`${report.path}/AAPL.csv`);
  assert.equal(csv.split("\n")[0], "symbol,ts,rule,severity,detail");

  // --fail-on turns findings into exit code 1 for CI; info alone never fails.
  const failError = await runCli([
    "validate",
    summary.job.id,
    "--fail-on",
    "error",
    "--data-dir",
    dir,
  ]);
  assert.equal(failError.code, 1, failError.stderr);
  assert.match(failError.stderr, /Failing \(--fail-on error\): \d+ error/);
  const warnOnly = await runCli([
    "validate",
    "--symbols",
    "AAPL",
    "--start",
    start,
    "--end",
    end,
    "--fail-on",
    "error",
    "--validation",
    "positive_prices.enabled=false,volume_non_negative.enabled=false,ohlc_consistency.enabled=false,ts_alignment.enabled=false,outside_session.enabled=false",
    "--data-dir",
    dir,
  ]);
  // Quarantined bars of rules switched off now are not findings of this run.
  assert.equal(warnOnly.code, 0, warnOnly.stdout + warnOnly.stderr);
  assert.match(warnOnly.stdout, / 0 error\(s\)/);

  // --list shows the reports newest first; --show prints the per-rule summary.
  const list = await runCli(["validate", "--list", "--data-dir", dir]);
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split("\n");
  assert.equal(lines.length, 2 + 3);
  assert.match(lines[2], /^v\S+ .* - +1m +AAPL /); // the newest: by symbols
  assert.match(list.stdout, new RegExp(summary.job.id));
  const show = await runCli(["validate", "--show", summary.job.id, "--data-dir", dir]);
  assert.equal(show.code, 0, show.stderr);
  // --show honours --fail-on: the job's report has errors.
  const showFail = await runCli([
    "validate",
    "--show",
    summary.job.id,
    "--fail-on",
    "error",
    "--data-dir",
    dir,
  ]);
  assert.equal(showFail.code, 1, showFail.stderr);
  assert.match(showFail.stderr, /Failing \(--fail-on error\): \d+ error\(s\) in report v\S+/);
  assert.match(
    show.stdout,
    new RegExp(`ohlc_consistency +error +${countBy(errors).ohlc_consistency}`),
  );
  assert.match(show.stdout, new RegExp(`extreme_move +warn +${countBy(warnings).extreme_move}`));
});

Deno.test("validate forgets quarantined bars a forced re-ingest fixed, refuses symbols without bars, and --show honours --fail-on", async () => {
  const dir = await tempDir();
  const day = ["--symbols", "AAPL", "--start", "2024-03-04"];
  const reports = async () => {
    const list = await runCli(["validate", "--list", "--json", "--data-dir", dir]);
    assert.equal(list.code, 0, list.stderr);
    return json<{ id: string; errors: number }[]>(list);
  };
  const corrupt = await runCli(["ingest", ...day, "--fake-corrupt-rate", "0.1", "--data-dir", dir]);
  assert.equal(corrupt.code, 0, corrupt.stderr);
  const before = await runCli(["validate", ...day, "--fail-on", "error", "--data-dir", dir]);
  assert.equal(before.code, 1, before.stdout);
  const fixed = await runCli(["ingest", ...day, "--force", "--data-dir", dir]);
  assert.equal(fixed.code, 0, fixed.stderr);
  const after = await runCli([
    "validate",
    ...day,
    "--fail-on",
    "error",
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.equal(after.code, 0, after.stdout + after.stderr);
  const clean = json<{ id: string; errors: number; quarantined: number; bars_checked: number }>(
    after,
  );
  assert.deepEqual([clean.errors, clean.quarantined], [0, 0]);
  assert.ok(clean.bars_checked > 900, `${clean.bars_checked} bars`);

  const [newest, oldest] = await reports();
  assert.equal(newest.id, clean.id);
  assert.ok(oldest.errors > 0);
  const showOld = await runCli([
    "validate",
    "--show",
    oldest.id,
    "--fail-on",
    "error",
    "--data-dir",
    dir,
  ]);
  assert.equal(showOld.code, 1, showOld.stderr);
  const showNew = await runCli([
    "validate",
    "--show",
    clean.id,
    "--fail-on",
    "error",
    "--data-dir",
    dir,
  ]);
  assert.equal(showNew.code, 0, showNew.stderr);

  // Usage errors: one line, exit 2, no report written.
  const cases: [string[], RegExp][] = [
    [
      ["validate", "--symbols", "AAPLL", "--start", "2024-03-04", "--end", "2024-03-05"],
      /^error: Nothing to validate: no stored 1m bars of AAPLL in 2024-03-04\.\.2024-03-05 /,
    ],
    [
      ["validate", "--symbols", "AAPL,MSFT", "--start", "2024-03-04"],
      /Nothing to validate: no stored 1m bars of MSFT on 2024-03-04 /,
    ],
    [
      ["validate", "--symbols", "AAPL", "--start", "2024-04-01", "--end", "2024-04-05"],
      /Nothing to validate: no stored 1m bars of AAPL in 2024-04-01\.\.2024-04-05 /,
    ],
    [["validate", "--list", "--fail-on", "error"], /Cannot combine --list with --fail-on/],
    [["validate", "--rules", "--fail-on", "warn"], /Cannot combine --rules with --fail-on/],
    [
      ["validate", "--show", "v"],
      new RegExp(`Ambiguous report "v": .*(${newest.id}, ${oldest.id})`),
    ],
  ];
  for (const [args, message] of cases) {
    const result = await runCli([...args, "--data-dir", dir]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  assert.deepEqual((await reports()).map((r) => r.id), [newest.id, oldest.id]);
});

Deno.test("validate finds nothing in clean data, writes header-only CSVs and exits 0 with --fail-on warn", async () => {
  const dir = await tempDir();
  const ingest = await runCli([
    "ingest",
    "--symbols",
    "SPY,QQQ",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-06",
    "--data-dir",
    dir,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  assert.doesNotMatch(ingest.stdout, /Quarantined/);
  const result = await runCli([
    "validate",
    "--symbols",
    "SPY,QQQ",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-06",
    "--fail-on",
    "warn",
    "--data-dir",
    dir,
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /No findings\./);
  assert.match(result.stdout, /0 error\(s\), 0 warning\(s\), 0 info/);
  const tree = await listTree(`${dir}/reports/validation`);
  assert.equal(tree.filter((f) => f.endsWith(".csv")).length, 2);
  const csv = tree.find((f) => f.endsWith("SPY.csv"))!;
  assert.equal(
    await Deno.readTextFile(`${dir}/reports/validation/${csv}`),
    "symbol,ts,rule,severity,detail\n",
  );
  assert.equal(await Deno.stat(`${dir}/quarantine`).catch(() => null), null);
});

Deno.test("rule settings from a config file and --validation change what ingest quarantines", async () => {
  const dir = await tempDir();
  const config = `${dir}/mp.yaml`;
  await Deno.writeTextFile(
    config,
    "validation:\n  rules:\n    positive_prices: { enabled: false }\n    ohlc_consistency:\n      enabled: false\n",
  );
  const args = [
    "ingest",
    "--symbols",
    "MSFT",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-05",
    "--fake-gap-rate",
    "0",
    "--fake-corrupt-rate",
    "0.05",
    "--json",
    "--data-dir",
    `${dir}/data`,
  ];
  const result = await runCli([...args, "--config", config]);
  assert.equal(result.code, 0, result.stderr);
  const summary = json<{ quarantined: Record<string, number> }>(result);
  const defects = ["2024-03-04", "2024-03-05"].flatMap((date) =>
    fakeDefects("MSFT", date, { gapRate: 0, corruptRate: 0.05 })
  );
  const expected = countBy(
    defects.filter((d) =>
      SEVERITY[d.rule] === "error" && d.rule !== "positive_prices" && d.rule !== "ohlc_consistency"
    ),
  );
  assert.ok(countBy(defects).positive_prices > 0 && countBy(defects).ohlc_consistency > 0);
  assert.deepEqual(summary.quarantined, expected);

  // Bad settings are refused with one line naming the key, exit 2, and nothing is written.
  await Deno.writeTextFile(
    config,
    "validation:\n  rules:\n    extreme_moves: { threshold: 0.3 }\n",
  );
  const badConfig = await runCli([...args.slice(0, -1), `${dir}/other`, "--config", config]);
  assert.equal(badConfig.code, 2);
  // Run with --json: the error is JSON on stdout (README: Exit codes).
  assert.equal(badConfig.stderr, "");
  assert.equal(
    JSON.parse(badConfig.stdout).error.message,
    `Unknown key "validation.rules.extreme_moves" in config file ${config} (did you mean "validation.rules.extreme_move"?)`,
  );
  const badFlag = await runCli([
    ...args.slice(0, -1),
    `${dir}/other`,
    "--validation",
    "stale_price.threshold=1",
  ]);
  assert.equal(badFlag.code, 2);
  assert.equal(badFlag.stderr, "");
  assert.equal(
    JSON.parse(badFlag.stdout).error.message,
    'Invalid --validation "stale_price.threshold=1": expected a whole number from 2 to 100000, got 1',
  );
  assert.equal(await Deno.stat(`${dir}/other`).catch(() => null), null);
});

Deno.test("validate --rules lists every rule; bad validate input exits 2 and creates nothing", async () => {
  const rules = await runCli([
    "validate",
    "--rules",
    "--json",
    "--validation",
    "extreme_move.threshold=0.4",
  ]);
  assert.equal(rules.code, 0, rules.stderr);
  const list = json<{ id: string; severity: string; threshold: number | null }[]>(rules);
  assert.deepEqual(list.map((r) => r.id), VALIDATION_RULES.map((r) => r.id));
  assert.equal(list.find((r) => r.id === "extreme_move")!.threshold, 0.4);

  const dir = await tempDir();
  const missing = `${dir}/nothing-here`;
  const cases: [string[], RegExp][] = [
    [["validate", "--symbols", "AAPL", "--start", "2024-03-04"], /holds no MarketPipe data/],
    [["validate", "--symbols", "AAPL"], /Missing --start/],
    [["validate", "--start", "2024-03-04"], /Missing --symbols/],
    [["validate", "--symbols", "AAPL", "--start", "2024-02-30"], /no such calendar date/],
    [
      ["validate", "--symbols", "AAPL", "--start", "2024-03-04", "--fail-on", "warning"],
      /Invalid --fail-on "warning": expected warn or error/,
    ],
    [
      ["validate", "--symbols", "AAPL", "--start", "2024-03-04", "--timeframe", "2m"],
      /Invalid --timeframe "2m"/,
    ],
    [["validate", "--list", "--rules"], /Use one of --list, --rules, not several/],
    [[
      "validate",
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-04",
      "--validation",
      "nope.enabled=false",
    ], /Unknown validation rule "nope"/],
    [["validate", "--show", "v123"], /No report "v123"/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli([...args, "--data-dir", missing]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  assert.equal(await Deno.stat(missing).catch(() => null), null);
});

Deno.test("gaps lists missing days, low regular-session coverage and known-empty days", async () => {
  const dir = await tempDir();
  for (
    const args of [
      ["--symbols", "AAPL", "--start", "2024-03-04", "--end", "2024-03-06"],
      ["--symbols", "AAPL", "--start", "2024-03-11", "--end", "2024-03-11"],
      [
        "--symbols",
        "MSFT",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-08",
        "--fake-gap-rate",
        "0.2",
      ],
    ]
  ) {
    const result = await runCli(["ingest", ...args, "--data-dir", dir]);
    assert.equal(result.code, 0, result.stderr);
  }
  // A provider that answered 2024-03-07 with no bars: ingest records such days with 0 bars.
  const db = new DatabaseSync(`${dir}/marketpipe.db`);
  db.prepare(
    "INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES ('other/sip/raw', '1m', 'AAPL', '2024-03-07', 0, 'job-x', 0)",
  ).run();
  db.close();
  const result = await runCli([
    "gaps",
    "--symbols",
    "AAPL,MSFT",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-12",
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const report = json<{
    symbols: {
      symbol: string;
      tradingDays: number;
      missing: string[];
      knownEmpty: string[];
      lowCoverage: { date: string; expected: number }[];
    }[];
  }>(result);
  const [aapl, msft] = report.symbols;
  assert.equal(aapl.tradingDays, 7);
  assert.deepEqual(aapl.missing, ["2024-03-08", "2024-03-12"]);
  assert.deepEqual(aapl.knownEmpty, ["2024-03-07"]);
  assert.deepEqual(aapl.lowCoverage, []);
  assert.deepEqual(msft.missing, ["2024-03-11", "2024-03-12"]);
  // 20% of minutes missing: every MSFT day is below 90% of its 390 regular minutes.
  assert.deepEqual(msft.lowCoverage.map((d) => [d.date, d.expected]), [
    ["2024-03-04", 390],
    ["2024-03-05", 390],
    ["2024-03-06", 390],
    ["2024-03-07", 390],
    ["2024-03-08", 390],
  ]);

  const text = await runCli([
    "gaps",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-12",
    "--min-coverage",
    "75%",
    "--data-dir",
    dir,
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /AAPL: 2024-03-08, 2024-03-12/);
  assert.match(text.stdout, /MSFT: 2024-03-11\.\.2024-03-12/);
  assert.match(text.stdout, /Known empty .*\n {2}AAPL: 2024-03-07/);
  assert.doesNotMatch(text.stdout, /covered below/); // 80% is above 75%

  const bad = await runCli([
    "gaps",
    "--start",
    "2024-03-04",
    "--min-coverage",
    "2",
    "--data-dir",
    dir,
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid --min-coverage "2": expected a number from 0 to 1/);
});

Deno.test("aggregate writes every timeframe, session-aligned, and rebuilds only what changed", async () => {
  const dir = await tempDir();
  const ingest = await runCli([
    "ingest",
    "--symbols",
    "AAPL",
    "--start",
    "2024-03-07",
    "--end",
    "2024-03-11",
    "--aggregate",
    "--data-dir",
    dir,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  assert.match(ingest.stdout, /Aggregated: 6 partition\(s\) rebuilt, 0 up to date\./);
  const minutes = tradingDays("2024-03-07", "2024-03-11").flatMap((d) =>
    generateFakeDay("AAPL", d, { gapRate: 0.01 })
  );
  for (const timeframe of ["5m", "15m", "30m", "1h", "4h", "1d"] as const) {
    const rows = await query<{ ts: string; open: number; close: number; volume: number }>(
      dir,
      `SELECT ts, open, close, volume FROM bars_${timeframe} ORDER BY ts`,
    );
    const expected = aggregateBars(minutes, timeframe);
    assert.deepEqual(
      rows.map((r) => [Date.parse(r.ts), r.open, r.close, r.volume]),
      expected.map((b) => [b.ts, b.open, b.close, b.volume]),
      timeframe,
    );
  }
  // Monday after the DST switch: the regular hours start 13:30 UTC, on Friday 14:30 UTC.
  const hours = await query<{ d: string; first: string }>(
    dir,
    "SELECT CAST(trading_date AS VARCHAR) AS d, strftime(min(ts), '%H:%M') AS first FROM bars_1h WHERE session = 'regular' GROUP BY 1 ORDER BY 1",
  );
  assert.deepEqual(hours, [
    { d: "2024-03-07", first: "14:30" },
    { d: "2024-03-08", first: "14:30" },
    { d: "2024-03-11", first: "13:30" },
  ]);

  const files = (await listTree(`${dir}/bars`)).filter((f) => f.endsWith(".parquet"));
  const mtimes = async () =>
    await Promise.all(
      files.map(async (f) => (await Deno.stat(`${dir}/bars/${f}`)).mtime?.getTime()),
    );
  const before = await mtimes();
  const again = await runCli(["aggregate", "--json", "--data-dir", dir]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(json<{ rebuilt: number; upToDate: number }>(again).rebuilt, 0);
  assert.deepEqual(await mtimes(), before);

  // A new day in April rebuilds the 2024 partition of each frame (partitions are years).
  const april = await runCli([
    "ingest",
    "--symbols",
    "AAPL",
    "--start",
    "2024-04-01",
    "--aggregate",
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.equal(april.code, 0, april.stderr);
  const aggregation = json<{ aggregation: { rebuilt: number; upToDate: number } }>(april)
    .aggregation;
  assert.deepEqual([aggregation.rebuilt, aggregation.upToDate], [6, 0]);
  const all = await runCli(["aggregate", "--timeframes", "1h,1d", "--json", "--data-dir", dir]);
  assert.deepEqual(
    json<{ rebuilt: number; upToDate: number }>(all).upToDate,
    2, // 1h 2024, 1d 2024
  );

  for (
    const [args, message] of [
      [
        ["--timeframes", "1m"],
        /Invalid --timeframes "1m": aggregation rolls 1m bars up to 5m,15m,30m,1h,4h,1d/,
      ],
      [["--timeframes", "2h"], /Invalid --timeframes "2h" \(did you mean "1h"\?\)/],
      [["--session", "ext"], /Invalid --session "ext"/],
      [["--start", "2024-13-01"], /Invalid --start "2024-13-01"/],
    ] as [string[], RegExp][]
  ) {
    const bad = await runCli(["aggregate", ...args, "--data-dir", dir]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, message);
  }
  const daily = await runCli([
    "ingest",
    "--symbols",
    "AAPL",
    "--start",
    "2024-03-04",
    "--timeframe",
    "1d",
    "--aggregate",
    "--data-dir",
    `${dir}/other`,
  ]);
  assert.equal(daily.code, 2);
  assert.match(daily.stderr, /Cannot --aggregate a 1d ingest: aggregation rolls up 1m bars/);
  assert.equal(await Deno.stat(`${dir}/other`).catch(() => null), null);
});

Deno.test("a provider's own daily bars stay stored and validate --cross-check compares them with the 1m bars", async () => {
  const dir = await tempDir();
  const ingest = (args: string[]) =>
    runCli([
      "ingest",
      "--symbols",
      "SPY",
      "--start",
      "2024-03-04",
      "--end",
      "2024-03-08",
      ...args,
      "--data-dir",
      dir,
    ]);
  assert.equal((await ingest([])).code, 0);
  const daily = await ingest(["--timeframe", "1d"]);
  assert.equal(daily.code, 0, daily.stderr);
  const check = async () => {
    const result = await runCli([
      "validate",
      "--symbols",
      "SPY",
      "--start",
      "2024-03-04",
      "--end",
      "2024-03-08",
      "--timeframe",
      "1d",
      "--cross-check",
      "--json",
      "--data-dir",
      dir,
    ]);
    assert.equal(result.code, 0, result.stderr);
    return json<
      { id: string; bars_checked: number; warnings: number; rules: Record<string, number> }
    >(result);
  };
  // The fake provider's daily bars are its 1m bars rolled up: they agree.
  const agree = await check();
  assert.deepEqual([agree.bars_checked, agree.warnings], [5, 0]);

  // Daily bars from a feed with 20% fewer minutes disagree on volume.
  const other = await ingest(["--timeframe", "1d", "--fake-gap-rate", "0.2", "--force"]);
  assert.equal(other.code, 0, other.stderr);
  const differ = await check();
  assert.deepEqual(differ.rules, { cross_check: 5 });
  const rows = await reportKeys(dir, differ.id);
  assert.equal(rows.length, 5);

  // Aggregation keeps the provider's daily bars for their days.
  const aggregate = await runCli(["aggregate", "--json", "--data-dir", dir]);
  assert.equal(aggregate.code, 0, aggregate.stderr);
  const dailyRows = await query<{ ingest_id: string }>(
    dir,
    "SELECT ingest_id FROM bars_1d ORDER BY ts",
  );
  assert.equal(dailyRows.length, 5);
  assert.ok(dailyRows.every((r) => !r.ingest_id.startsWith("agg-")));

  const oneMinute = await runCli([
    "validate",
    "--symbols",
    "SPY",
    "--start",
    "2024-03-04",
    "--cross-check",
    "--data-dir",
    dir,
  ]);
  assert.equal(oneMinute.code, 2);
  assert.match(oneMinute.stderr, /Cannot --cross-check 1m bars/);
});
