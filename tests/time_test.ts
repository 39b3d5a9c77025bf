/**
 * End-to-end tests of honest time: no command fetches, stores or records a session that has not
 * closed at the clock (`MARKETPIPE_NOW` fixes it), through the real CLI and the web API.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tradingDays } from "../core/calendar.ts";
import { UsageError } from "../core/errors.ts";
import { generateFakeDay } from "../providers/fake.ts";
import { json, metaQuery, runCli } from "./_cli.ts";
import { errorOf, jsonOf, testServer, waitUntil } from "./web_fixture.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mp-time-" });
}

/** Run `ingest` of the fake provider into `dir` with the clock at `now`. */
async function ingestAt(now: string | undefined, dir: string, ...args: string[]) {
  return await runCli(
    ["ingest", "--symbols", "AAPL", "--data-dir", dir, ...args],
    { env: now === undefined ? {} : { MARKETPIPE_NOW: now } },
  );
}

/** Stored bars per trading date of `timeframe`. */
async function storedDays(dir: string, timeframe = "1m"): Promise<Record<string, number>> {
  const result = await runCli([
    "query",
    `SELECT CAST(trading_date AS VARCHAR) AS day, count(*) AS n FROM bars_${timeframe} GROUP BY day ORDER BY day`,
    "--json",
    "--data-dir",
    dir,
  ]);
  assert.equal(result.code, 0, result.stderr);
  return Object.fromEntries(json<{ day: string; n: number }[]>(result).map((r) => [r.day, r.n]));
}

/** Days the metadata records as ingested (known-empty ones included), per timeframe. */
function recordedDays(dir: string, timeframe = "1m"): string[] {
  return metaQuery(
    dir,
    `SELECT trading_date FROM ingested_days WHERE timeframe = '${timeframe}' ORDER BY trading_date`,
  ).map((row) => String(row.trading_date));
}

function fakeDays(days: string[]): Record<string, number> {
  return Object.fromEntries(days.map((day) => [day, generateFakeDay("AAPL", day).length]));
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("ingest at 11:00 ET on a trading day stores exactly up to the previous session", async () => {
  const dir = await tempDir();
  try {
    // 2024-03-05 11:00 ET (EST) is 16:00Z.
    const run = await ingestAt(
      "2024-03-05T16:00:00Z",
      dir,
      "--start",
      "2024-03-01",
      "--end",
      "2024-03-05",
    );
    assert.equal(run.code, 0, run.stderr);
    const notices = run.stderr.split("\n").filter((line) => line.includes("last closed"));
    assert.deepEqual(notices, [
      "--end 2024-03-05 is after the last closed 1m session 2024-03-04: ingesting up to 2024-03-04",
    ]);
    assert.deepEqual(await storedDays(dir), fakeDays(["2024-03-01", "2024-03-04"]));
    assert.deepEqual(recordedDays(dir), ["2024-03-01", "2024-03-04"]);
    // After the after-hours end at 20:00 ET the same command fetches only 2024-03-05, silently.
    const later = await ingestAt(
      "2024-03-06T01:00:00Z",
      dir,
      "--start",
      "2024-03-01",
      "--end",
      "2024-03-05",
    );
    assert.equal(later.code, 0, later.stderr);
    assert.doesNotMatch(later.stderr, /last closed/);
    assert.deepEqual(await storedDays(dir), fakeDays(["2024-03-01", "2024-03-04", "2024-03-05"]));
    // Today alone before its close is a usage error that writes nothing.
    const today = await ingestAt("2024-03-06T16:00:00Z", dir, "--start", "2024-03-06", "--json");
    assert.equal(today.code, 2);
    // With --json the error is JSON on stdout, nothing on stderr (README: Exit codes).
    assert.equal(today.stderr, "");
    assert.deepEqual(JSON.parse(today.stdout), {
      error: {
        message:
          "Invalid --start 2024-03-06: no 1m session from it to --end 2024-03-06 has closed yet; the last closed one is 2024-03-05",
        kind: "UsageError",
        exit_code: 2,
      },
    });
    assert.deepEqual(recordedDays(dir), ["2024-03-01", "2024-03-04", "2024-03-05"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ingest at 13:30 ET on an early-close day keeps its 1d bar, not its 1m bars", async () => {
  const dir = await tempDir();
  try {
    // 2024-11-29, the day after Thanksgiving, closes at 13:00 ET; after-hours end at 17:00 ET.
    const now = "2024-11-29T18:30:00Z";
    const minute = await ingestAt(now, dir, "--start", "2024-11-26", "--end", "2024-11-29");
    assert.equal(minute.code, 0, minute.stderr);
    assert.match(
      minute.stderr,
      /--end 2024-11-29 is after the last closed 1m session 2024-11-27: ingesting up to 2024-11-27\n/,
    );
    assert.deepEqual(await storedDays(dir), fakeDays(["2024-11-26", "2024-11-27"]));
    assert.deepEqual(recordedDays(dir), ["2024-11-26", "2024-11-27"]);
    const daily = await ingestAt(
      now,
      dir,
      "--start",
      "2024-11-26",
      "--end",
      "2024-11-29",
      "--timeframe",
      "1d",
    );
    assert.equal(daily.code, 0, daily.stderr);
    assert.doesNotMatch(daily.stderr, /last closed/);
    assert.deepEqual(Object.keys(await storedDays(dir, "1d")), [
      "2024-11-26",
      "2024-11-27",
      "2024-11-29",
    ]);
    // At 17:00 ET the early close's after-hours have ended too: all 780 minutes (gapRate 0.01 aside).
    const evening = await ingestAt("2024-11-29T22:00:00Z", dir, "--start", "2024-11-29");
    assert.equal(evening.code, 0, evening.stderr);
    assert.deepEqual(await storedDays(dir), fakeDays(["2024-11-26", "2024-11-27", "2024-11-29"]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ingest on a Saturday stops at Friday; a range after it is refused", async () => {
  const dir = await tempDir();
  try {
    const now = "2024-03-09T17:00:00Z";
    const run = await ingestAt(
      now,
      dir,
      "--start",
      "2024-03-07",
      "--end",
      "2024-03-12",
      "--timeframe",
      "5m",
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /--end 2024-03-12 is after the last closed 5m session 2024-03-08: ingesting up to 2024-03-08/,
    );
    assert.deepEqual(Object.keys(await storedDays(dir, "5m")), ["2024-03-07", "2024-03-08"]);
    // A range ending on the weekend has every session closed: nothing to say.
    const weekend = await ingestAt(
      now,
      dir,
      "--start",
      "2024-03-04",
      "--end",
      "2024-03-10",
      "--timeframe",
      "5m",
    );
    assert.equal(weekend.code, 0, weekend.stderr);
    assert.doesNotMatch(weekend.stderr, /last closed/);
    assert.deepEqual(recordedDays(dir, "5m"), tradingDays("2024-03-04", "2024-03-08"));
    const fresh = join(dir, "fresh");
    const monday = await ingestAt(now, fresh, "--start", "2024-03-11", "--end", "2024-03-12");
    assert.equal(monday.code, 2);
    assert.match(
      monday.stderr,
      /^error: Invalid --start 2024-03-11: no 1m session from it to --end 2024-03-12 has closed yet; the last closed one is 2024-03-08\n$/,
    );
    assert.equal(await exists(fresh), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ingest of a future range on the real clock exits 2 and writes nothing", async () => {
  const dir = join(await tempDir(), "data");
  try {
    const run = await ingestAt(undefined, dir, "--start", "2099-12-07", "--end", "2099-12-08");
    assert.equal(run.code, 2);
    assert.equal(run.stderr.trim().split("\n").length, 1);
    assert.match(
      run.stderr,
      /^error: Invalid --start 2099-12-07: no 1m session from it to --end 2099-12-08 has closed yet; the last closed one is \d{4}-\d{2}-\d{2}\n$/,
    );
    assert.equal(await exists(dir), false);
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("a malformed MARKETPIPE_NOW is refused with exit 2 by ingest and serve", async () => {
  const dir = join(await tempDir(), "data");
  try {
    const ingest = await ingestAt("2024-03-05 16:00", dir, "--start", "2024-03-04");
    assert.equal(ingest.code, 2);
    assert.match(
      ingest.stderr,
      /^error: Invalid MARKETPIPE_NOW "2024-03-05 16:00": expected an ISO 8601 instant/,
    );
    const serve = await runCli(["serve", "--port", "0", "--data-dir", dir], {
      env: { MARKETPIPE_NOW: "soon" },
    });
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /error: Invalid MARKETPIPE_NOW "soon"/);
    assert.equal(await exists(dir), false);
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("POST /api/jobs ingests only closed sessions at the server's clock", async () => {
  const dir = await tempDir();
  const server = await testServer(dir, { env: { MARKETPIPE_NOW: "2024-03-05T16:00:00Z" } });
  const post = (body: unknown) =>
    server.app.request("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  try {
    const started = await jsonOf<{ job: { id: string; end: string }; links: { self: string } }>(
      await post({ symbols: "AAPL", start: "2024-03-04", end: "2024-03-05" }),
      202,
    );
    assert.equal(started.job.end, "2024-03-04");
    await waitUntil(
      async () =>
        (await jsonOf<{ status: string }>(await server.app.request(started.links.self))).status ===
          "succeeded",
      20_000,
      "the web job to succeed",
    );
    const refused = await errorOf(await post({ symbols: "AAPL", start: "2024-03-05" }), 400);
    assert.equal(
      refused.message,
      "Invalid start 2024-03-05: no 1m session from it to end 2024-03-05 has closed yet; the last closed one is 2024-03-04",
    );
  } finally {
    await server.close();
  }
  assert.deepEqual(recordedDays(dir), ["2024-03-04"]);
  await assert.rejects(testServer(dir, { env: { MARKETPIPE_NOW: "x" } }), UsageError);
  await Deno.remove(dir, { recursive: true });
});
