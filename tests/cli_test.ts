/**
 * End-to-end tests: spawn the real `marketpipe` CLI on temporary data directories.
 */
import assert from "node:assert/strict";
import { generateFakeDay } from "../providers/fake.ts";
import { tradingDays } from "../core/calendar.ts";
import { finish, json, listTree, metaQuery, runCli, spawnCli, waitFor } from "./_cli.ts";

const FINGERPRINT = `SELECT count(*) AS rows, count(DISTINCT (symbol, timeframe, ts)) AS keys,
  bit_xor(hash(symbol, timeframe, ts, open, high, low, close, volume, vwap, trade_count, session, trading_date)) AS digest
  FROM bars`;

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mp-e2e-" });
}

function expectedBars(
  symbols: string[],
  start: string,
  end: string,
  gapRate: number,
  seed = 0,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const symbol of symbols) {
    let n = 0;
    for (const day of tradingDays(start, end)) {
      n += generateFakeDay(symbol, day, { seed, gapRate }).length;
    }
    out.set(symbol, n);
  }
  return out;
}

async function countsBySymbol(dataDir: string): Promise<Map<string, number>> {
  const result = await runCli([
    "query",
    "SELECT symbol, count(*) AS n FROM bars_1m GROUP BY symbol ORDER BY symbol",
    "--format",
    "json",
    "--data-dir",
    dataDir,
  ]);
  assert.equal(result.code, 0, result.stderr);
  return new Map(json<{ symbol: string; n: number }[]>(result).map((r) => [r.symbol, r.n]));
}

async function fingerprint(dataDir: string): Promise<Record<string, unknown>> {
  const result = await runCli(["query", FINGERPRINT, "--json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json<Record<string, unknown>[]>(result)[0];
}

Deno.test("ingest then query returns exactly the bars the fake provider generates", async () => {
  const dir = await tempDir();
  const symbols = ["AAPL", "MSFT", "SPY"];
  const ingest = await runCli([
    "ingest",
    "--provider",
    "fake",
    "--symbols",
    symbols.join(","),
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-15",
    "--data-dir",
    dir,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  assert.match(ingest.stdout, /Job \S+ succeeded/);
  const expected = expectedBars(symbols, "2024-03-04", "2024-03-15", 0.01);
  assert.deepEqual(await countsBySymbol(dir), expected);

  const exact = await tempDir();
  const full = await runCli([
    "ingest",
    "--symbols",
    "AAPL",
    "--start",
    "2024-11-29",
    "--end",
    "2024-12-03",
    "--fake-gap-rate",
    "0",
    "--data-dir",
    exact,
  ]);
  assert.equal(full.code, 0, full.stderr);
  // 2024-11-29 closes early (780 bars with extended hours), then two full days of 960.
  assert.deepEqual(await countsBySymbol(exact), new Map([["AAPL", 780 + 960 + 960]]));
  const fp = await fingerprint(exact);
  assert.equal(fp.rows, fp.keys);
});

Deno.test("re-running the same ingest writes nothing and says so", async () => {
  const dir = await tempDir();
  const args = [
    "ingest",
    "--symbols",
    "AAPL,MSFT",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-08",
    "--data-dir",
    dir,
  ];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const before = await fingerprint(dir);
  const files = await listTree(`${dir}/bars`);
  const mtimes = await Promise.all(
    files.filter((f) => f.endsWith(".parquet")).map(async (f) =>
      (await Deno.stat(`${dir}/bars/${f}`)).mtime?.getTime()
    ),
  );
  const second = await runCli(args);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /Nothing to do/);
  assert.deepEqual(await fingerprint(dir), before);
  assert.deepEqual(await listTree(`${dir}/bars`), files);
  const after = await Promise.all(
    files.filter((f) => f.endsWith(".parquet")).map(async (f) =>
      (await Deno.stat(`${dir}/bars/${f}`)).mtime?.getTime()
    ),
  );
  assert.deepEqual(after, mtimes);
  const jobs = json<unknown[]>(await runCli(["jobs", "list", "--json", "--data-dir", dir]));
  assert.equal(jobs.length, 1);
});

Deno.test("an overlapping range adds only the new days' bars", async () => {
  const dir = await tempDir();
  const first = await runCli([
    "ingest",
    "--symbols",
    "SPY",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-08",
    "--data-dir",
    dir,
    "--json",
  ]);
  assert.equal(first.code, 0, first.stderr);
  const second = await runCli([
    "ingest",
    "--symbols",
    "SPY",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-15",
    "--data-dir",
    dir,
    "--json",
  ]);
  assert.equal(second.code, 0, second.stderr);
  const summary = json<
    {
      barsWritten: number;
      barsReplaced: number;
      symbols: { daysSkipped: number; daysFetched: number }[];
    }
  >(
    second,
  );
  const newDays = expectedBars(["SPY"], "2024-03-11", "2024-03-15", 0.01).get("SPY");
  assert.equal(summary.barsWritten, newDays);
  assert.equal(summary.barsReplaced, 0);
  assert.equal(summary.symbols[0].daysSkipped, 5);
  assert.equal(summary.symbols[0].daysFetched, 5);
  assert.deepEqual(
    await countsBySymbol(dir),
    expectedBars(["SPY"], "2024-03-04", "2024-03-15", 0.01),
  );
  const fp = await fingerprint(dir);
  assert.equal(fp.rows, fp.keys);

  const forced = await runCli([
    "ingest",
    "--symbols",
    "SPY",
    "--start",
    "2024-03-07",
    "--end",
    "2024-03-08",
    "--force",
    "--data-dir",
    dir,
    "--json",
  ]);
  assert.equal(forced.code, 0, forced.stderr);
  const forcedSummary = json<{ barsWritten: number; barsReplaced: number }>(forced);
  assert.equal(forcedSummary.barsWritten, 0);
  assert.equal(
    forcedSummary.barsReplaced,
    expectedBars(["SPY"], "2024-03-07", "2024-03-08", 0.01).get("SPY"),
  );
  assert.deepEqual(await fingerprint(dir), fp);
});

const KILL_SYMBOLS = Array.from({ length: 16 }, (_, i) => `SYM${String.fromCharCode(65 + i)}`).join(
  ",",
);
const KILL_ARGS = [
  "ingest",
  "--symbols",
  KILL_SYMBOLS,
  "--start",
  "2024-01-02",
  "--end",
  "2024-03-28",
  "--workers",
  "2",
];

Deno.test("an ingest killed with SIGKILL and run again ends identical to a clean run", async () => {
  const clean = await tempDir();
  const killed = await tempDir();
  const reference = await runCli([...KILL_ARGS, "--data-dir", clean]);
  assert.equal(reference.code, 0, reference.stderr);

  const child = spawnCli([...KILL_ARGS, "--data-dir", killed]);
  await waitFor(
    () => {
      try {
        const done = Number(
          metaQuery(killed, "SELECT count(*) AS n FROM tasks WHERE status = 'done'")[0].n,
        );
        return done >= 3;
      } catch {
        return false;
      }
    },
    60_000,
    "three finished tasks",
  );
  child.kill("SIGKILL");
  const dead = await finish(child);
  assert.notEqual(dead.code, 0);
  const left = Number(
    metaQuery(killed, "SELECT count(*) AS n FROM tasks WHERE status <> 'done'")[0].n,
  );
  assert.ok(left > 0, "the kill should land before the job finished");

  const listed = json<{ id: string; status: string; error: string }[]>(
    await runCli(["jobs", "list", "--json", "--data-dir", killed]),
  );
  assert.equal(listed.length, 1);
  assert.equal(listed[0].status, "failed", "a job whose process died must not stay running");
  assert.match(listed[0].error, /interrupted/);

  const rerun = await runCli([...KILL_ARGS, "--data-dir", killed]);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stderr, new RegExp(`Resuming job ${listed[0].id}: .* ${left} of 48 task`));
  assert.deepEqual(await fingerprint(killed), await fingerprint(clean));
  const final = json<{ status: string }[]>(
    await runCli(["jobs", "list", "--json", "--data-dir", killed]),
  );
  assert.deepEqual(final.map((j) => j.status), ["succeeded"]);
  const again = await runCli([...KILL_ARGS, "--data-dir", killed]);
  assert.match(again.stdout, /Nothing to do/);
});

Deno.test("Ctrl-C stops an ingest cleanly and --resume finishes it", async () => {
  const dir = await tempDir();
  const child = spawnCli([...KILL_ARGS, "--data-dir", dir]);
  await waitFor(
    () => {
      try {
        return Number(
          metaQuery(dir, "SELECT count(*) AS n FROM tasks WHERE status = 'done'")[0].n,
        ) >= 2;
      } catch {
        return false;
      }
    },
    60_000,
    "two finished tasks",
  );
  child.kill("SIGINT");
  const stopped = await finish(child);
  assert.equal(stopped.code, 130, stopped.stderr);
  const [job] = json<{ id: string; status: string }[]>(
    await runCli(["jobs", "list", "--json", "--data-dir", dir]),
  );
  assert.equal(job.status, "cancelled");
  assert.match(stopped.stdout, new RegExp(`marketpipe ingest --resume ${job.id}`));
  assert.match(stopped.stdout, /not finished: \d+ task\(s\) left/);
  const resumed = await runCli(["ingest", "--resume", job.id, "--data-dir", dir]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const clean = await tempDir();
  assert.equal((await runCli([...KILL_ARGS, "--data-dir", clean])).code, 0);
  assert.deepEqual(await fingerprint(dir), await fingerprint(clean));
});

Deno.test("two concurrent ingests into one directory end consistent", async () => {
  const dir = await tempDir();
  const a = spawnCli([
    "ingest",
    "--symbols",
    "AAPL,MSFT,NVDA",
    "--start",
    "2024-03-01",
    "--end",
    "2024-03-28",
    "--data-dir",
    dir,
  ]);
  const b = spawnCli([
    "ingest",
    "--symbols",
    "NVDA,MSFT,AMZN",
    "--start",
    "2024-03-11",
    "--end",
    "2024-04-05",
    "--force",
    "--data-dir",
    dir,
  ]);
  const [ra, rb] = await Promise.all([finish(a), finish(b)]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  const fp = await fingerprint(dir);
  assert.equal(fp.rows, fp.keys, "no duplicate keys");
  const expected = new Map([
    ...expectedBars(["AAPL"], "2024-03-01", "2024-03-28", 0.01),
    ...expectedBars(["AMZN"], "2024-03-11", "2024-04-05", 0.01),
    ...expectedBars(["MSFT", "NVDA"], "2024-03-01", "2024-04-05", 0.01),
  ].sort());
  assert.deepEqual(await countsBySymbol(dir), expected);
  const clean = await tempDir();
  assert.equal(
    (await runCli([
      "ingest",
      "--symbols",
      "AAPL,MSFT,NVDA",
      "--start",
      "2024-03-01",
      "--end",
      "2024-03-28",
      "--data-dir",
      clean,
    ])).code,
    0,
  );
  assert.equal(
    (await runCli([
      "ingest",
      "--symbols",
      "NVDA,MSFT,AMZN",
      "--start",
      "2024-03-11",
      "--end",
      "2024-04-05",
      "--data-dir",
      clean,
    ])).code,
    0,
  );
  assert.deepEqual(await fingerprint(dir), await fingerprint(clean));
  assert.deepEqual(await listTree(dir).then((t) => t.filter((f) => f.includes(".tmp-"))), []);
});

Deno.test("--help and --version create no files", async () => {
  const cwd = await tempDir();
  const commands = [
    ["--help"],
    ["--version"],
    ["ingest", "--help"],
    ["query", "--help"],
    ["jobs", "--help"],
    ["jobs", "list", "--help"],
    ["jobs", "show", "--help"],
    ["jobs", "cleanup", "--help"],
    ["providers", "--help"],
    ["migrate", "--help"],
    ["demo", "--help"],
    ["help", "ingest"],
  ];
  for (const args of commands) {
    const result = await runCli(args, { cwd, env: { MARKETPIPE_CONFIG: `${cwd}/missing.yaml` } });
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    assert.ok(result.stdout.length > 0);
  }
  const help = await runCli(["ingest", "--help"], { cwd });
  for (
    const flag of [
      "--provider",
      "--symbols",
      "--symbols-file",
      "--start",
      "--end",
      "--timeframe",
      "--workers",
      "--batch-size",
      "--feed",
      "--force",
      "--resume",
      "--fake-seed",
      "--fake-gap-rate",
      "--data-dir",
      "--config",
      "--json",
      "--verbose",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), `ingest --help lists ${flag}`);
  }
  assert.match((await runCli(["--version"], { cwd })).stdout, /^marketpipe \d+\.\d+\.\d+/);
  assert.deepEqual(await listTree(cwd), []);
});

Deno.test("bad input exits 2 with a one-line message and writes nothing", async (t) => {
  const cwd = await tempDir();
  await Deno.writeTextFile(`${cwd}/unknown-key.yaml`, "symbols: AAPL\nwokers: 4\n");
  await Deno.writeTextFile(`${cwd}/broken.yaml`, "symbols: [AAPL\n");
  const snapshot = await listTree(cwd);
  const base = ["--start", "2024-03-04", "--end", "2024-03-08"];
  const cases: [string, string[], RegExp][] = [
    [
      "unknown provider",
      ["ingest", "--provider", "alpacca", "--symbols", "AAPL", ...base],
      /Unknown provider "alpacca"/,
    ],
    ["empty symbols", ["ingest", "--symbols", "", ...base], /--symbols/],
    ["only commas", ["ingest", "--symbols", ",,", ...base], /at least one symbol/],
    [
      "malformed symbol",
      ["ingest", "--symbols", "AAPL;DROP", ...base],
      /Invalid symbol "AAPL;DROP"/,
    ],
    ["start after end", [
      "ingest",
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-08",
      "--end",
      "2024-03-04",
    ], /after --end/],
    ["impossible date", [
      "ingest",
      "--symbols",
      "AAPL",
      "--start",
      "2024-02-30",
      "--end",
      "2024-03-04",
    ], /Invalid --start "2024-02-30"/],
    [
      "malformed date",
      ["ingest", "--symbols", "AAPL", "--start", "03/04/2024"],
      /expected YYYY-MM-DD/,
    ],
    ["no trading days", [
      "ingest",
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-09",
      "--end",
      "2024-03-09",
    ], /No trading days.*Saturday/],
    [
      "holiday",
      ["ingest", "--symbols", "AAPL", "--start", "2024-12-25"],
      /No trading days.*holiday/,
    ],
    [
      "unknown timeframe",
      ["ingest", "--symbols", "AAPL", ...base, "--timeframe", "2m"],
      /Invalid --timeframe "2m"/,
    ],
    [
      "workers 0",
      ["ingest", "--symbols", "AAPL", ...base, "--workers", "0"],
      /Invalid --workers "0"/,
    ],
    [
      "workers 10000",
      ["ingest", "--symbols", "AAPL", ...base, "--workers", "10000"],
      /Invalid --workers "10000"/,
    ],
    [
      "unknown feed",
      ["ingest", "--symbols", "AAPL", ...base, "--feed", "otc"],
      /Invalid --feed "otc"/,
    ],
    [
      "gap rate 1",
      ["ingest", "--symbols", "AAPL", ...base, "--fake-gap-rate", "1"],
      /--fake-gap-rate/,
    ],
    [
      "unknown flag",
      ["ingest", "--symbol", "AAPL", ...base],
      /Unknown option "--symbol".*did you mean "--symbols"/,
    ],
    ["unknown command", ["ingset"], /Unknown command "ingset".*did you mean "ingest"/],
    [
      "missing config",
      ["ingest", "--config", `${cwd}/nope.yaml`, ...base],
      /Cannot read config file/,
    ],
    ["unreadable config", ["ingest", "--config", cwd, ...base], /Cannot read config file/],
    [
      "broken config",
      ["ingest", "--config", `${cwd}/broken.yaml`, ...base],
      /Cannot parse config file/,
    ],
    [
      "unknown config key",
      ["ingest", "--config", `${cwd}/unknown-key.yaml`, ...base],
      /Unknown key "wokers".*did you mean "workers"/,
    ],
    ["write statement", ["query", "CREATE TABLE x AS SELECT 1"], /read-only/i],
    ["delete statement", ["query", "DELETE FROM bars"], /read-only|Only/i],
    [
      "file-reading function",
      ["query", "SELECT * FROM read_csv('/etc/passwd')"],
      /outside the data directory|not allowed/i,
    ],
    ["copy", ["query", "COPY (SELECT 1) TO '/tmp/mp-e2e-copy.csv'"], /read-only|not allowed/i],
    ["attach", ["query", "ATTACH '/tmp/mp-e2e.db'"], /read-only|not allowed/i],
    ["sql syntax", ["query", "SELEC 1"], /syntax error/i],
    ["bad jobs status", ["jobs", "list", "--status", "done"], /Invalid --status "done"/],
    ["resume unknown job", ["ingest", "--resume", "nope"], /Cannot resume job "nope"/],
    [
      "empty symbol item",
      ["ingest", "--symbols", "AAPL,,MSFT", ...base],
      /empty item between commas/,
    ],
    ["output and data-dir", [
      "ingest",
      "--symbols",
      "AAPL",
      ...base,
      "--output",
      "a",
      "--data-dir",
      "b",
    ], /Conflicting --output/],
    ["bad duration", ["jobs", "cleanup", "--older-than", "30"], /Invalid --older-than "30"/],
  ];
  for (const [name, args, pattern] of cases) {
    await t.step(name, async () => {
      const result = await runCli([...args], { cwd });
      assert.equal(
        result.code,
        2,
        `${name}: exit ${result.code}\n${result.stdout}\n${result.stderr}`,
      );
      const lines = result.stderr.trimEnd().split("\n");
      if (name !== "sql syntax") {
        assert.equal(lines.length, 1, `${name}: one line, got:\n${result.stderr}`);
      }
      assert.match(lines[0], /^error: /);
      assert.match(result.stderr, pattern);
      assert.equal(result.stdout, "");
      assert.deepEqual(await listTree(cwd), snapshot, `${name} wrote files`);
    });
  }
  assert.equal(await Deno.stat("/tmp/mp-e2e-copy.csv").then(() => true, () => false), false);
});

Deno.test("config file values apply below flags and env", async () => {
  const dir = await tempDir();
  const config = `${dir}/mp.yaml`;
  await Deno.writeTextFile(
    config,
    `symbols: [AAPL, MSFT]\nstart: 2024-03-04\nend: "2024-03-05"\nfake_gap_rate: 0\ndata-dir: ${dir}/from-config\n`,
  );
  const fromFile = await runCli(["ingest", "--config", config, "--json"]);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.equal(json<{ barsWritten: number }>(fromFile).barsWritten, 2 * 2 * 960);
  const fromEnv = await runCli(["ingest", "--config", config, "--symbols", "SPY", "--json"], {
    env: { MARKETPIPE_DATA_DIR: `${dir}/from-env` },
  });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.equal(json<{ dataDir: string; barsWritten: number }>(fromEnv).dataDir, `${dir}/from-env`);
  assert.equal(json<{ barsWritten: number }>(fromEnv).barsWritten, 2 * 960);
  const fromFlag = await runCli([
    "ingest",
    "--config",
    config,
    "--output",
    `${dir}/from-flag`,
    "--json",
  ], {
    env: { MARKETPIPE_DATA_DIR: `${dir}/from-env` },
  });
  assert.equal(json<{ dataDir: string }>(fromFlag).dataDir, `${dir}/from-flag`);
});

Deno.test("jobs show, providers, migrate and query formats report what is stored", async () => {
  const dir = await tempDir();
  const ingest = await runCli([
    "ingest",
    "--symbols",
    "BRK.B",
    "--start",
    "2024-03-04",
    "--timeframe",
    "1h",
    "--data-dir",
    dir,
    "--json",
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  const jobId = json<{ job: { id: string } }>(ingest).job.id;
  const shown = await runCli(["jobs", "show", jobId.slice(0, 12), "--data-dir", dir]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`Job ${jobId}: succeeded`));
  assert.match(shown.stdout, /BRK\.B\s+2024-03-04\.\.2024-03-04\s+1\s+done/);
  const detail = json<{ tasks: { status: string; bars_written: number }[] }>(
    await runCli(["jobs", "show", jobId, "--json", "--data-dir", dir]),
  );
  assert.deepEqual(detail.tasks.map((t) => t.status), ["done"]);
  // 1h buckets anchored at 09:30: 04:00, 04:30..08:30 (6 pre), 09:30..15:30 (7 regular), 16:00..19:30 (5 post).
  assert.equal(detail.tasks[0].bars_written, 18);
  const missing = await runCli(["jobs", "show", "nope", "--data-dir", dir]);
  assert.equal(missing.code, 2);

  const csv = await runCli([
    "query",
    "SELECT symbol, ts, session FROM bars_1h ORDER BY ts LIMIT 2",
    "--format",
    "csv",
    "--data-dir",
    dir,
  ]);
  assert.equal(csv.code, 0, csv.stderr);
  assert.equal(
    csv.stdout,
    "symbol,ts,session\nBRK.B,2024-03-04T09:00:00.000Z,pre\nBRK.B,2024-03-04T09:30:00.000Z,pre\n",
  );
  // Output goes outside the data directory (or under its exports/), never among its files.
  await Deno.mkdir(`${dir}/exports`);
  const out = `${dir}/exports/out.parquet`;
  const parquet = await runCli([
    "query",
    "SELECT * FROM bars_1h",
    "--format",
    "parquet",
    "--output",
    out,
    "--data-dir",
    dir,
  ]);
  assert.equal(parquet.code, 0, parquet.stderr);
  const reread = await runCli([
    "query",
    `SELECT count(*) AS n FROM bars WHERE timeframe = '1h'`,
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.deepEqual(json(reread), [{ n: 18 }]);
  assert.ok((await Deno.stat(out)).size > 0);
  const noView = await runCli(["query", "SELECT * FROM bars_5m", "--data-dir", dir]);
  assert.equal(noView.code, 2);
  assert.match(noView.stderr, /bars_1h/);

  const providers = await runCli(["providers", "--json"]);
  assert.equal(providers.code, 0);
  const fake = json<{ name: string; timeframes: string[]; ready: boolean }[]>(providers).find((p) =>
    p.name === "fake"
  );
  assert.ok(fake?.ready);
  assert.deepEqual(fake?.timeframes, ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]);

  const fresh = await tempDir();
  const status = await runCli(["migrate", "--status", "--data-dir", `${fresh}/d`]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /pending/);
  assert.deepEqual(await listTree(fresh), []);
  const applied = await runCli(["migrate", "--data-dir", `${fresh}/d`]);
  assert.match(applied.stdout, /Applied migration 1/);
  const again = await runCli(["migrate", "--data-dir", `${fresh}/d`]);
  assert.match(again.stdout, /up to date/);
});
