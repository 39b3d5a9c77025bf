/**
 * End-to-end tests of `update`, `backfill` and `gaps --fill/--fail-on`: the real CLI with the
 * fake provider and a fixed clock (MARKETPIPE_NOW), bars counted from the calendar.
 */
import assert from "node:assert/strict";
import { nextTradingDay, tradingDays, tradingSession } from "../core/calendar.ts";
import { generateFakeDay } from "../providers/fake.ts";
import { finish, json, listTree, metaQuery, runCli, spawnCli, waitFor } from "./_cli.ts";

const FINGERPRINT = `SELECT count(*) AS rows, count(DISTINCT (symbol, timeframe, ts)) AS keys,
  bit_xor(hash(symbol, timeframe, ts, open, high, low, close, volume, vwap, trade_count, session, trading_date)) AS digest
  FROM bars`;

/** The clock one minute after `date`'s after-hours close: every timeframe has closed. */
function after(date: string): Record<string, string> {
  return { MARKETPIPE_NOW: new Date(tradingSession(date)!.postClose + 60_000).toISOString() };
}

/** The trading date `n` sessions after `date`. */
function sessionsAfter(date: string, n: number): string {
  let day = date;
  for (let i = 0; i < n; i++) day = nextTradingDay(day);
  return day;
}

/** 1m bars the fake provider gives `symbols` over [start, end] (default gap rate). */
function fakeBars(symbols: string[], start: string, end: string): number {
  let n = 0;
  for (const symbol of symbols) {
    for (const day of tradingDays(start, end)) {
      n += generateFakeDay(symbol, day, { seed: 0, gapRate: 0.01 }).length;
    }
  }
  return n;
}

async function cli(dir: string, args: string[], env: Record<string, string> = {}) {
  return await runCli([...args, "--data-dir", dir], { env });
}

async function count(dir: string, sql: string): Promise<number> {
  const result = await cli(dir, ["query", sql, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return Number(Object.values(json<Record<string, unknown>[]>(result)[0])[0]);
}

async function fingerprint(dir: string): Promise<Record<string, unknown>> {
  const result = await cli(dir, ["query", FINGERPRINT, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return json<Record<string, unknown>[]>(result)[0];
}

async function ok(dir: string, args: string[], env: Record<string, string> = {}) {
  const result = await cli(dir, args, env);
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return result;
}

/** `ingest` of `symbols` (comma-separated) from `start` to `end` into `dir`, which must succeed. */
async function ingest(
  dir: string,
  symbols: string,
  start: string,
  end: string,
  extra: string[] = [],
) {
  return await ok(dir, ["ingest", "--symbols", symbols, "--start", start, "--end", end, ...extra]);
}

/**
 * SIGKILL `child`, a run on `dir`, once `dir` holds `done` finished tasks matching `where`;
 * asserts that some of its tasks were left unfinished and returns how many.
 */
async function killAfterTasks(
  child: ReturnType<typeof spawnCli>,
  dir: string,
  tasks: { where: string; done: number; what: string; command: string },
): Promise<number> {
  await waitFor(
    () => {
      try {
        return Number(
          metaQuery(
            dir,
            `SELECT count(*) AS n FROM tasks WHERE status = 'done' AND ${tasks.where}`,
          )[0].n,
        ) >= tasks.done;
      } catch {
        return false;
      }
    },
    60_000,
    tasks.what,
  );
  child.kill("SIGKILL");
  await finish(child);
  const left = Number(
    metaQuery(dir, "SELECT count(*) AS n FROM tasks WHERE status <> 'done'")[0].n,
  );
  assert.ok(left > 0, `the kill should land before the ${tasks.command} finished`);
  return left;
}

Deno.test("update after one, five and thirty sessions adds exactly the calendar's bars", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-update-" });
  const symbols = ["AAPL", "MSFT"];
  const base = "2024-10-31";
  await ingest(dir, "AAPL,MSFT", "2024-10-28", base);
  await ingest(dir, "SPY", "2024-10-01", base, ["--timeframe", "1d"]);
  let last = base;
  // +5 crosses the DST switch of 2024-11-03; +30 the early close of 2024-11-29 and Thanksgiving.
  for (const elapsed of [1, 5, 30]) {
    const target = sessionsAfter(last, elapsed);
    const before1m = await count(dir, "SELECT count(*) FROM bars_1m");
    const before1d = await count(dir, "SELECT count(*) FROM bars_1d");
    const result = await ok(dir, ["update"], after(target));
    assert.match(result.stderr, /Updating 3 of 3 series in 2 job\(s\)/);
    const days = tradingDays(nextTradingDay(last), target);
    assert.equal(days.length, elapsed);
    assert.equal(
      await count(dir, "SELECT count(*) FROM bars_1m") - before1m,
      fakeBars(symbols, days[0], target),
      `1m bars after ${elapsed} session(s)`,
    );
    assert.equal(await count(dir, "SELECT count(*) FROM bars_1d") - before1d, elapsed);
    assert.equal(
      await count(dir, `SELECT count(*) FROM bars WHERE trading_date > DATE '${target}'`),
      0,
    );
    last = target;
  }
  assert.ok(last > "2024-11-29", last);
  // The early close: 13:00 ET regular close, after-hours to 17:00, so 210 regular minutes at most.
  assert.equal(
    await count(
      dir,
      "SELECT count(*) FROM bars_1m WHERE symbol = 'AAPL' AND trading_date = DATE '2024-11-29' AND session = 'regular'",
    ),
    generateFakeDay("AAPL", "2024-11-29", { seed: 0, gapRate: 0.01 }).filter((b) =>
      b.session === "regular"
    ).length,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("update run twice writes nothing the second time and says up to date", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-update-" });
  await ingest(dir, "AAPL", "2024-03-04", "2024-03-08");
  const clock = after("2024-03-13");
  const first = await ok(dir, ["update", "--aggregate"], clock);
  assert.match(first.stdout, /Aggregated: /);
  // --aggregate rolled the new days up too.
  assert.equal(
    await count(dir, "SELECT count(*) FROM bars_1d WHERE trading_date = DATE '2024-03-13'"),
    1,
  );
  const print = await fingerprint(dir);
  const jobs = metaQuery(dir, "SELECT count(*) AS n FROM jobs")[0].n;
  const tree = await listTree(`${dir}/bars`);
  const again = await ok(dir, ["update"], clock);
  assert.match(
    again.stdout,
    /^Up to date: all 1 series end at the last completed session \(1m 2024-03-13\)/,
  );
  assert.deepEqual(await fingerprint(dir), print);
  assert.equal(metaQuery(dir, "SELECT count(*) AS n FROM jobs")[0].n, jobs);
  assert.deepEqual(await listTree(`${dir}/bars`), tree);
  const quiet = json<{ status: string; jobs: unknown[] }>(
    await ok(dir, ["update", "--json"], clock),
  );
  assert.equal(quiet.status, "up-to-date");
  assert.deepEqual(quiet.jobs, []);
  await Deno.remove(dir, { recursive: true });
});

const KILL_SYMBOLS = Array.from({ length: 16 }, (_, i) => `SYM${String.fromCharCode(65 + i)}`);

Deno.test("an update killed with SIGKILL and run again resumes and ends identical to a clean run", async () => {
  const clean = await Deno.makeTempDir({ prefix: "mp-update-clean-" });
  const killed = await Deno.makeTempDir({ prefix: "mp-update-killed-" });
  const seed = ["ingest", "--symbols", KILL_SYMBOLS.join(","), "--start", "2024-01-02"];
  const clock = after("2024-03-28");
  await ok(clean, seed);
  await ok(killed, seed);
  await ok(clean, ["update", "--workers", "2"], clock);

  const child = spawnCli(["update", "--workers", "2", "--data-dir", killed], { env: clock });
  const left = await killAfterTasks(child, killed, {
    where: "start_date > '2024-01-02'",
    done: 3,
    what: "three finished update tasks",
    command: "update",
  });
  const [interrupted] = metaQuery(killed, "SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1");

  const total = Number(
    metaQuery(killed, `SELECT count(*) AS n FROM tasks WHERE job_id = '${interrupted.id}'`)[0].n,
  );
  const rerun = await ok(killed, ["update", "--workers", "2"], clock);
  assert.match(
    rerun.stderr,
    new RegExp(`Resuming job ${interrupted.id}: .* ${left} of ${total} task`),
  );
  assert.deepEqual(await fingerprint(killed), await fingerprint(clean));
  const statuses = metaQuery(killed, "SELECT status FROM jobs ORDER BY created_at").map((r) =>
    r.status
  );
  assert.deepEqual(statuses, ["succeeded", "succeeded"]);
  const again = await ok(killed, ["update"], clock);
  assert.match(again.stdout, /Up to date/);
  await Deno.remove(clean, { recursive: true });
  await Deno.remove(killed, { recursive: true });
});

Deno.test("a backfill killed with SIGKILL and run again ends identical to a clean run", async () => {
  const clean = await Deno.makeTempDir({ prefix: "mp-backfill-clean-" });
  const killed = await Deno.makeTempDir({ prefix: "mp-backfill-killed-" });
  const clock = after("2024-03-28");
  const backfill = ["backfill", "--before", "2024-01-02", "--workers", "2"];
  await ingest(clean, KILL_SYMBOLS.join(","), "2024-02-01", "2024-03-28");
  await ingest(killed, KILL_SYMBOLS.join(","), "2024-02-01", "2024-03-28");
  await ok(clean, backfill, clock);

  const child = spawnCli([...backfill, "--data-dir", killed], { env: clock });
  await killAfterTasks(child, killed, {
    where: "start_date < '2024-02-01'",
    done: 2,
    what: "two finished backfill tasks",
    command: "backfill",
  });

  await ok(killed, backfill, clock);
  assert.deepEqual(await fingerprint(killed), await fingerprint(clean));
  const running = metaQuery(killed, "SELECT id FROM jobs WHERE status = 'running'");
  assert.deepEqual(running, [], "no job stays running");
  // Nothing is left to fill: a third run fetches nothing and changes nothing.
  const again = await ok(killed, backfill, clock);
  assert.doesNotMatch(again.stdout + again.stderr, /Resuming job|Job \S+ succeeded/);
  assert.match(again.stdout, /Nothing was written/);
  assert.deepEqual(await fingerprint(killed), await fingerprint(clean));
  await Deno.remove(clean, { recursive: true });
  await Deno.remove(killed, { recursive: true });
});

Deno.test("backfill fetches exactly the days gaps lists, and --before extends history", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-backfill-" });
  const reference = await Deno.makeTempDir({ prefix: "mp-backfill-ref-" });
  await ingest(dir, "AAPL,MSFT", "2024-03-04", "2024-03-06");
  await ingest(dir, "AAPL", "2024-03-11", "2024-03-15");
  await ingest(dir, "MSFT", "2024-03-13", "2024-03-15");
  const gaps = json<{ symbols: { symbol: string; start: string; missing: string[] }[] }>(
    await ok(dir, ["gaps", "--json"]),
  );
  assert.deepEqual(gaps.symbols.map((s) => [s.symbol, s.start, s.missing]), [
    ["AAPL", "2024-03-04", ["2024-03-07", "2024-03-08"]],
    ["MSFT", "2024-03-04", ["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12"]],
  ]);
  const failing = await cli(dir, ["gaps", "--fail-on", "missing"]);
  assert.equal(failing.code, 1, failing.stderr);

  const filled = json<{ jobs: { symbols: { symbol: string; daysFetched: number }[] }[] }>(
    await ok(dir, ["backfill", "--json"]),
  );
  const fetched = filled.jobs.flatMap((j) => j.symbols.map((s) => `${s.symbol}:${s.daysFetched}`));
  assert.deepEqual(fetched.sort(), ["AAPL:2", "MSFT:4"]);
  await ingest(reference, "AAPL,MSFT", "2024-03-04", "2024-03-15");
  assert.deepEqual(await fingerprint(dir), await fingerprint(reference));
  assert.equal((await cli(dir, ["gaps", "--fail-on", "missing"])).code, 0);
  assert.match((await ok(dir, ["backfill"])).stdout, /No gaps to fill in 2 1m series/);

  await ok(dir, ["backfill", "--symbols", "AAPL", "--before", "2024-02-26"]);
  assert.equal(
    await count(dir, "SELECT count(*) FROM bars_1m WHERE trading_date < DATE '2024-03-04'"),
    fakeBars(["AAPL"], "2024-02-26", "2024-03-01"),
  );
  assert.equal(
    await count(
      dir,
      "SELECT count(*) FROM bars_1m WHERE symbol = 'MSFT' AND trading_date < DATE '2024-03-04'",
    ),
    0,
  );
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(reference, { recursive: true });
});

Deno.test("gaps --fill fills the gaps, and --fail-on partial counts partial days", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-gaps-fill-" });
  await ingest(dir, "AAPL", "2024-03-04", "2024-03-04");
  await ingest(dir, "AAPL", "2024-03-06", "2024-03-06");
  // 20% of minutes missing: every day of MSFT is partial (below 90% of its regular session).
  await ingest(dir, "MSFT", "2024-03-04", "2024-03-06", ["--fake-gap-rate", "0.2"]);
  assert.equal((await cli(dir, ["gaps", "--symbols", "MSFT", "--fail-on", "missing"])).code, 0);
  assert.equal((await cli(dir, ["gaps", "--symbols", "MSFT", "--fail-on", "partial"])).code, 1);
  // A partial day is fetched again (the fake provider gives the same bars: all replaced).
  const refetch = json<
    { jobs: { barsWritten: number; barsReplaced: number; symbols: { daysFetched: number }[] }[] }
  >(
    await ok(dir, ["backfill", "--symbols", "MSFT", "--json"]),
  );
  assert.equal(refetch.jobs.length, 1);
  assert.equal(refetch.jobs[0].symbols[0].daysFetched, 3);
  assert.equal(refetch.jobs[0].barsWritten, 0);
  assert.ok(refetch.jobs[0].barsReplaced > 0);

  // Sessions that have not closed are never gaps: the clock stops the range at 2024-03-06.
  const early = json<{ symbols: { tradingDays: number; missing: string[] }[] }>(
    await ok(
      dir,
      ["gaps", "--symbols", "AAPL", "--start", "2024-03-04", "--end", "2024-03-29", "--json"],
      { MARKETPIPE_NOW: "2024-03-07T15:00:00Z" },
    ),
  );
  assert.deepEqual(early.symbols.map((s) => [s.tradingDays, s.missing]), [[3, ["2024-03-05"]]]);

  const fill = await ok(dir, ["gaps", "--symbols", "AAPL", "--fill", "--fail-on", "missing"]);
  assert.match(fill.stdout, /No gaps: every trading day of each symbol's stored range/);
  assert.equal(
    await count(
      dir,
      "SELECT count(*) FROM bars_1m WHERE symbol = 'AAPL' AND trading_date = DATE '2024-03-05'",
    ),
    fakeBars(["AAPL"], "2024-03-05", "2024-03-05"),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("update and backfill refuse bad input with exit 2 and write nothing", async (t) => {
  const empty = await Deno.makeTempDir({ prefix: "mp-update-bad-" });
  const nothing = await cli(empty, ["update"]);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /Nothing stored in .*: run marketpipe ingest first/);
  assert.deepEqual(await listTree(empty), []);

  const dir = await Deno.makeTempDir({ prefix: "mp-update-bad-" });
  await ingest(dir, "AAPL", "2024-03-04", "2024-03-05");
  const tree = await listTree(`${dir}/bars`);
  const jobs = metaQuery(dir, "SELECT count(*) AS n FROM jobs")[0].n;
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [["update", "--timeframe", "2x"], /Invalid --timeframe "2x"/],
    [["update", "--symbols", "NOPE"], /Unknown series NOPE: no bars of it are stored/],
    [["update", "--timeframe", "5m"], /no 5m series/],
    [["update", "--workers", "0"], /Invalid --workers/],
    [["update"], /Invalid MARKETPIPE_NOW "soon"/, { MARKETPIPE_NOW: "soon" }],
    [["backfill", "--before", "2024-13-01"], /Invalid --before "2024-13-01"/],
    [
      ["backfill", "--before", "2099-01-02"],
      /Invalid --before 2099-01-02: after the last closed session/,
    ],
    [
      ["backfill", "--before", "2024-03-01", "--start", "2024-03-04"],
      /Cannot combine --before with --start/,
    ],
    [["backfill", "--min-coverage", "2"], /Invalid --min-coverage "2"/],
    [["gaps", "--fail-on", "mising"], /Invalid --fail-on "mising" \(did you mean "missing"\?\)/],
  ];
  for (const [args, message, env] of cases) {
    await t.step(args.join(" "), async () => {
      const result = await cli(dir, args, env ?? after("2024-03-08"));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    });
  }
  assert.deepEqual(await listTree(`${dir}/bars`), tree);
  assert.equal(metaQuery(dir, "SELECT count(*) AS n FROM jobs")[0].n, jobs);
  await Deno.remove(empty, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});
