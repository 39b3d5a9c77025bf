/**
 * End-to-end tests of the scheduler inside `marketpipe serve`, against real `serve` processes:
 * the lease between two servers on one data directory and its takeover from a SIGKILLed
 * holder, a run started over the API recorded as a job and a run, SIGHUP reloads (a bad config
 * kept out), config errors refused at start, and `status --fail-on stale`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliResult, finish, json, listTree, metaQuery, runCli, spawnCli } from "./_cli.ts";
import {
  expectedMinuteBars,
  jsonOf,
  type ServeProcess,
  startServe,
  waitUntil,
} from "./web_fixture.ts";

/** Thursday 2024-03-07 21:00 New York: after that day's after-hours close (20:00 EST). */
const NOW = "2024-03-08T02:00:00Z";
const ENV = { MARKETPIPE_NOW: NOW };

/** Long enough for the 10 s lease check of a loaded machine; a deadline, not an assertion. */
const TAKEOVER_DEADLINE_MS = 60_000;
const DEADLINE_MS = 30_000;

const TWO_SCHEDULES = `schedules:
  - name: nightly
    command: update
    when: {after-close: 30m}
  - name: morning
    command: compact
    when: {cron: "0 6 * * 1-5"}
`;
const THREE_SCHEDULES = `${TWO_SCHEDULES}  - name: weekly
    command: update
    args: [--timeframe, 1d]
    when: "0 6 * * 6"
`;
const BAD_RELOAD = `${THREE_SCHEDULES}  - name: hourly
    command: validate
    when: {cron: "61 * * * *"}
`;

/** What GET /api/schedules answers (the fields these tests read). */
interface SchedulesBody {
  holds_lease: boolean;
  schedules: { name: string; command: string; next: string | null; busy: boolean }[];
  alerts: unknown[];
}

/** A recorded run as the API and `schedule history --json` give it. */
interface RunJson {
  id: number;
  schedule: string;
  trigger: string;
  status: string;
  planned_at: string;
  job_ids: string[];
  pid: number | null;
  error: string | null;
}

/** A fresh data directory with AAPL 1m bars of 2024-03-04..06, ingested by the real CLI. */
async function ingestedDataDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mp-sched-e2e-" });
  const data = join(dir, "data");
  const ingest = await runCli([
    "ingest",
    "--provider",
    "fake",
    "--symbols",
    "AAPL",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-06",
    "--data-dir",
    data,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  return data;
}

async function schedulesOf(serve: ServeProcess): Promise<SchedulesBody> {
  return await jsonOf<SchedulesBody>(await fetch(`${serve.url}/api/schedules`));
}

function nextOf(body: SchedulesBody): Record<string, string | null> {
  return Object.fromEntries(body.schedules.map((s) => [s.name, s.next]));
}

/** Whether the process has exited (its streams ended). */
function exited(serve: ServeProcess): Promise<boolean> {
  return Promise.race([
    serve.finished.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 0)),
  ]);
}

/** SIGTERM a server still running and wait for it; for `finally` blocks. */
async function stopServe(serve: ServeProcess | undefined): Promise<void> {
  if (serve === undefined) return;
  if (!(await exited(serve))) {
    try {
      serve.child.kill("SIGTERM");
    } catch {
      // Exited meanwhile.
    }
  }
  await serve.finished;
}

/**
 * Run `marketpipe serve ...` expecting it to exit by itself; killed after a deadline so a
 * server that starts after all fails the test instead of hanging it.
 */
async function serveExpectingExit(args: string[]): Promise<CliResult> {
  const child = spawnCli(["serve", "--port", "0", ...args], { env: ENV });
  const guard = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  try {
    return await finish(child);
  } finally {
    clearTimeout(guard);
  }
}

Deno.test("two serve processes share one lease: takeover after SIGKILL, a run over the API, SIGHUP reloads", async () => {
  const data = await ingestedDataDir();
  const config = join(data, "..", "marketpipe.yaml");
  await Deno.writeTextFile(config, TWO_SCHEDULES);
  const args = ["--data-dir", data, "--config", config];
  let a: ServeProcess | undefined;
  let b: ServeProcess | undefined;
  try {
    // 1. A takes the lease and arms both schedules from the calendar and the cron expression.
    a = await startServe(args, ENV);
    const onA = await schedulesOf(a);
    assert.equal(onA.holds_lease, true, a.stderr());
    assert.deepEqual(nextOf(onA), {
      nightly: "2024-03-08T21:30:00.000Z", // Friday's 16:00 EST close + 30 min
      morning: "2024-03-08T11:00:00.000Z", // Friday 06:00 EST
    });
    await waitUntil(
      () => /holding the schedule lease; 2 schedules/.test(a!.stderr()),
      DEADLINE_MS,
      "A's lease line",
    );

    // 2. B on the same data directory stands by: no lease, no next runs, and the page says so.
    b = await startServe(args, ENV);
    const onB = await schedulesOf(b);
    assert.equal(onB.holds_lease, false);
    assert.deepEqual(nextOf(onB), { nightly: null, morning: null });
    const page = await fetch(`${b.url}/schedules`);
    assert.equal(page.status, 200);
    const pageText = await page.text();
    assert.match(pageText, /Another server on this data directory holds the schedule lease/);
    assert.match(pageText, /nightly/);
    await waitUntil(
      () =>
        new RegExp(`pid ${a!.child.pid} on \\S+ holds the schedule lease; standing by`).test(
          b!.stderr(),
        ),
      DEADLINE_MS,
      "B's standby line naming A's pid",
    );
    const pageOfA = await (await fetch(`${a.url}/schedules`)).text();
    assert.doesNotMatch(pageOfA, /Another server on this data directory holds the schedule lease/);

    // 3. SIGKILL A: it cannot release the lease; B takes it over from the dead holder.
    a.child.kill("SIGKILL");
    const killed = await a.finished;
    assert.equal(killed.signal, "SIGKILL");
    const [held] = metaQuery(data, "SELECT pid FROM scheduler_lease WHERE name = 'scheduler'");
    assert.equal(Number(held.pid), a.child.pid, "a killed holder leaves its lease row behind");
    await waitUntil(
      async () => (await schedulesOf(b!)).holds_lease,
      TAKEOVER_DEADLINE_MS,
      "B to take the lease over from the killed A",
    );
    assert.deepEqual(nextOf(await schedulesOf(b)), {
      nightly: "2024-03-08T21:30:00.000Z",
      morning: "2024-03-08T11:00:00.000Z",
    });
    const [taken] = metaQuery(data, "SELECT pid FROM scheduler_lease WHERE name = 'scheduler'");
    assert.equal(Number(taken.pid), b.child.pid);
    const takenPage = await (await fetch(`${b.url}/schedules`)).text();
    assert.doesNotMatch(
      takenPage,
      /Another server on this data directory holds the schedule lease/,
    );

    // 4. Run `nightly` (update) now over the API: loopback, no token. It fetches 2024-03-07.
    const unknown = await fetch(`${b.url}/api/schedules/nope/run`, { method: "POST" });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const started = await jsonOf<{ status: string; run: RunJson }>(
      await fetch(`${b.url}/api/schedules/nightly/run`, { method: "POST" }),
      202,
    );
    assert.equal(started.status, "started");
    assert.equal(started.run.schedule, "nightly");
    assert.equal(started.run.trigger, "manual");
    const id = started.run.id;
    let finished: RunJson | undefined;
    await waitUntil(
      async () => {
        const { runs } = await jsonOf<{ runs: RunJson[] }>(
          await fetch(`${b!.url}/api/schedules/runs?schedule=nightly`),
        );
        finished = runs.find((r) => r.id === id && r.status !== "running");
        return finished !== undefined;
      },
      TAKEOVER_DEADLINE_MS,
      `run ${id} to end`,
    );
    assert.equal(finished!.status, "succeeded", JSON.stringify(finished) + b.stderr());
    assert.equal(finished!.error, null);
    assert.equal(finished!.pid, b.child.pid);
    assert.equal(finished!.job_ids.length, 1, JSON.stringify(finished));
    const [jobId] = finished!.job_ids;
    const jobs = await runCli(["jobs", "list", "--json", "--data-dir", data]);
    assert.equal(jobs.code, 0, jobs.stderr);
    const job = json<{ id: string; status: string; start: string; end: string }[]>(jobs)
      .find((j) => j.id === jobId);
    assert.ok(job, `jobs list should show ${jobId}: ${jobs.stdout}`);
    assert.equal(job.status, "succeeded");
    assert.equal(job.start, "2024-03-07");
    assert.equal(job.end, "2024-03-07");
    const history = await runCli(["schedule", "history", "--json", "--data-dir", data]);
    assert.equal(history.code, 0, history.stderr);
    const recorded = json<RunJson[]>(history).find((r) => r.id === id);
    assert.ok(recorded, `schedule history should show run ${id}: ${history.stdout}`);
    assert.equal(recorded.status, "succeeded");
    assert.equal(recorded.trigger, "manual");
    assert.deepEqual(recorded.job_ids, [jobId]);
    // The server reads the new bars at once (the run invalidated its read side).
    const day = await jsonOf<{ bars: unknown[] }>(
      await fetch(`${b.url}/api/bars?symbol=AAPL&start=2024-03-07&end=2024-03-07`),
    );
    assert.equal(day.bars.length, expectedMinuteBars("AAPL", "2024-03-07", "2024-03-07"));
    const last = (await schedulesOf(b)).schedules.find((s) => s.name === "nightly");
    assert.equal(last?.busy, false);
    assert.match(
      b.stderr(),
      new RegExp(`schedule nightly: run ${id} started: marketpipe update \\(manual\\)`),
    );
    assert.match(b.stderr(), new RegExp(`schedule nightly: run ${id} succeeded in `));

    // 5. SIGHUP picks up a third schedule ...
    await Deno.writeTextFile(config, THREE_SCHEDULES);
    b.child.kill("SIGHUP");
    await waitUntil(
      async () => (await schedulesOf(b!)).schedules.some((s) => s.name === "weekly"),
      DEADLINE_MS,
      "B to list the schedule added before SIGHUP",
    );
    assert.deepEqual(nextOf(await schedulesOf(b)), {
      nightly: "2024-03-08T21:30:00.000Z",
      morning: "2024-03-08T11:00:00.000Z",
      weekly: "2024-03-09T11:00:00.000Z", // Saturday 06:00 EST
    });
    assert.equal(
      (await schedulesOf(b)).schedules.find((s) => s.name === "weekly")?.command,
      "update --timeframe 1d",
    );
    // ... and keeps the current ones when the new config is bad, with the error logged.
    await Deno.writeTextFile(config, BAD_RELOAD);
    b.child.kill("SIGHUP");
    await waitUntil(
      () => /cannot reload the schedules/.test(b!.stderr()),
      DEADLINE_MS,
      "B to log the bad config",
    );
    const errors = b.stderr().split("\n").filter((l) => /cannot reload the schedules/.test(l));
    assert.equal(errors.length, 1, b.stderr());
    assert.match(
      errors[0],
      /^error: cannot reload the schedules: Invalid schedules\[3\]\.when\.cron "61 \* \* \* \*" for schedule "hourly" in config file \S+marketpipe\.yaml: .+; keeping the current ones$/,
    );
    const kept = await schedulesOf(b);
    assert.equal(kept.holds_lease, true);
    assert.deepEqual(kept.schedules.map((s) => s.name), ["nightly", "morning", "weekly"]);
    assert.equal(await exited(b), false, "a bad reload must not stop the server");

    // SIGTERM: B stops cleanly and gives the lease up.
    b.child.kill("SIGTERM");
    assert.equal((await b.finished).code, 0, b.stderr());
    assert.deepEqual(metaQuery(data, "SELECT pid FROM scheduler_lease"), []);
  } finally {
    await stopServe(a);
    await stopServe(b);
  }
});

Deno.test("a run cut off by SIGKILL is marked failed by the server that takes the lease over, and runs again there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-sched-e2e-" });
  const data = join(dir, "data");
  const symbols = ["AAPL", "MSFT", "SPY"];
  const ingest = await runCli([
    "ingest",
    "--symbols",
    symbols.join(","),
    "--start",
    "2024-03-04",
    "--data-dir",
    data,
  ]);
  assert.equal(ingest.code, 0, ingest.stderr);
  // Saturday 2024-09-07: the update has six months of three symbols to fetch, one worker.
  const env = { MARKETPIPE_NOW: "2024-09-07T12:00:00Z" };
  const config = join(dir, "marketpipe.yaml");
  await Deno.writeTextFile(
    config,
    `schedules:
  - {name: nightly, command: update, args: [--workers, 1], when: {after-close: 30m}}
`,
  );
  const args = ["--data-dir", data, "--config", config];
  let a: ServeProcess | undefined;
  let b: ServeProcess | undefined;
  try {
    a = await startServe(args, env);
    assert.equal((await schedulesOf(a)).holds_lease, true);
    b = await startServe(args, env);
    assert.equal((await schedulesOf(b)).holds_lease, false);
    const started = await jsonOf<{ run: RunJson }>(
      await fetch(`${a.url}/api/schedules/nightly/run`, { method: "POST" }),
      202,
    );
    const cut = started.run.id;
    // B refuses to start the same schedule while A's run goes.
    const refused = await fetch(`${b.url}/api/schedules/nightly/run`, { method: "POST" });
    assert.equal(refused.status, 409);
    assert.match(
      await refused.text(),
      new RegExp(`run ${cut} \\(pid ${a.child.pid}\\) is still going`),
    );
    a.child.kill("SIGKILL");
    await a.finished;
    const [left] = metaQuery(data, `SELECT status FROM schedule_runs WHERE id = ${cut}`);
    assert.equal(left.status, "running", "SIGKILL came too late: the run had ended");
    await waitUntil(
      async () => (await schedulesOf(b!)).holds_lease,
      TAKEOVER_DEADLINE_MS,
      "B to take the lease over",
    );
    assert.match(b.stderr(), /scheduler: marked 1 runs of a stopped process as failed/);
    const { runs } = await jsonOf<{ runs: RunJson[] }>(
      await fetch(`${b.url}/api/schedules/runs?schedule=nightly`),
    );
    const reaped = runs.find((r) => r.id === cut);
    assert.equal(reaped?.status, "failed");
    assert.equal(
      reaped?.error,
      `interrupted: process ${a.child.pid} stopped before the run finished`,
    );
    // The next run on B finishes the update.
    const again = await jsonOf<{ run: RunJson }>(
      await fetch(`${b.url}/api/schedules/nightly/run`, { method: "POST" }),
      202,
    );
    let run: RunJson | undefined;
    await waitUntil(
      async () => {
        const body = await jsonOf<{ runs: RunJson[] }>(
          await fetch(`${b!.url}/api/schedules/runs?schedule=nightly`),
        );
        run = body.runs.find((r) => r.id === again.run.id && r.status !== "running");
        return run !== undefined;
      },
      120_000,
      `run ${again.run.id} to end`,
    );
    assert.equal(run!.status, "succeeded", JSON.stringify(run) + b.stderr());
    b.child.kill("SIGTERM");
    assert.equal((await b.finished).code, 0, b.stderr());
    for (const symbol of symbols) {
      const count = await runCli([
        "query",
        `SELECT count(*) AS n FROM bars_1m WHERE symbol = '${symbol}'`,
        "--json",
        "--data-dir",
        data,
      ]);
      assert.equal(count.code, 0, count.stderr);
      assert.equal(
        json<{ n: number }[]>(count)[0].n,
        expectedMinuteBars(symbol, "2024-03-04", "2024-09-06"),
        symbol,
      );
    }
  } finally {
    await stopServe(a);
    await stopServe(b);
  }
});

Deno.test("runs missed while serve was down are caught up at start, per schedule policy", async () => {
  const data = await ingestedDataDir();
  const config = join(data, "..", "marketpipe.yaml");
  await Deno.writeTextFile(
    config,
    `schedules:
  - {name: nightly, command: update, when: {after-close: 30m}, catch-up: latest}
  - {name: morning, command: compact, when: "0 6 * * 1-5", catch-up: none}
`,
  );
  const args = ["--data-dir", data, "--config", config];
  const runsOf = async (serve: ServeProcess) =>
    (await jsonOf<{ runs: RunJson[] }>(await fetch(`${serve.url}/api/schedules/runs`))).runs;
  let serve: ServeProcess | undefined;
  try {
    // Thursday 21:00 EST: both schedules run once by hand, so each has a last planned time.
    serve = await startServe(args, ENV);
    for (const name of ["nightly", "morning"]) {
      const { run } = await jsonOf<{ run: RunJson }>(
        await fetch(`${serve.url}/api/schedules/${name}/run`, { method: "POST" }),
        202,
      );
      await waitUntil(
        async () => (await runsOf(serve!)).some((r) => r.id === run.id && r.status !== "running"),
        DEADLINE_MS,
        `the ${name} run`,
      );
    }
    assert.deepEqual((await runsOf(serve)).map((r) => [r.schedule, r.status]), [
      ["morning", "succeeded"],
      ["nightly", "succeeded"],
    ]);
    serve.child.kill("SIGTERM");
    assert.equal((await serve.finished).code, 0, serve.stderr());

    // Monday 2024-03-11 22:00 EDT (after the DST switch): nightly missed Friday's and Monday's
    // closes and runs the latest once; morning missed two and records them skipped.
    serve = await startServe(args, { MARKETPIPE_NOW: "2024-03-12T02:00:00Z" });
    let caught: RunJson | undefined;
    await waitUntil(
      async () => {
        caught = (await runsOf(serve!)).find((r) =>
          r.trigger === "catch-up" && r.schedule === "nightly" && r.status !== "running"
        );
        return caught !== undefined;
      },
      DEADLINE_MS,
      "the catch-up run",
    );
    assert.equal(caught!.status, "succeeded", JSON.stringify(caught) + serve.stderr());
    assert.equal(caught!.planned_at, "2024-03-11T20:30:00.000Z"); // 16:00 EDT + 30 min
    assert.equal(caught!.job_ids.length, 1);
    const runs = await runsOf(serve);
    const skipped = runs.filter((r) => r.schedule === "morning" && r.trigger === "catch-up");
    assert.deepEqual(skipped.map((r) => [r.status, r.planned_at]), [[
      "skipped",
      "2024-03-11T10:00:00.000Z", // 06:00 EDT
    ]]);
    assert.match(skipped[0].error ?? "", /catch-up: none/);
    assert.equal(runs.filter((r) => r.trigger === "catch-up").length, 2, JSON.stringify(runs));
    assert.match(
      serve.stderr(),
      /schedule nightly: 2 runs missed since 2024-03-07 21:00 EST; catch-up: latest, running 1/,
    );
    assert.match(
      serve.stderr(),
      /schedule morning: 2 runs missed since 2024-03-07 21:00 EST; catch-up: none/,
    );
    const day = await jsonOf<{ bars: unknown[] }>(
      await fetch(`${serve.url}/api/bars?symbol=AAPL&start=2024-03-11&end=2024-03-11`),
    );
    assert.equal(day.bars.length, expectedMinuteBars("AAPL", "2024-03-11", "2024-03-11"));
    serve.child.kill("SIGTERM");
    assert.equal((await serve.finished).code, 0, serve.stderr());

    // A third start at the same time finds nothing missed: the catch-ups were recorded.
    serve = await startServe(args, { MARKETPIPE_NOW: "2024-03-12T02:00:00Z" });
    await waitUntil(
      // Printed once listening, after the scheduler started (and logged its catch-up).
      () => /Ctrl-C to stop/.test(serve!.stderr()),
      DEADLINE_MS,
      "the start lines",
    );
    assert.match(serve.stderr(), /holding the schedule lease; 2 schedules/);
    assert.doesNotMatch(serve.stderr(), /missed since/);
    assert.equal((await runsOf(serve)).length, runs.length);
  } finally {
    await stopServe(serve);
  }
});

Deno.test("a failed run alerts: log line, banners, metric, API, webhook and status --fail-on failed", async () => {
  const data = await ingestedDataDir();
  const hooks: { headers: Headers; body: Record<string, unknown> }[] = [];
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    hooks.push({ headers: req.headers, body: await req.json() });
    return new Response(null, { status: 204 });
  });
  const config = join(data, "..", "marketpipe.yaml");
  // The arguments parse (so serve starts) but the file is missing when the run reads it.
  const missing = join(data, "..", "no-such-symbols.txt");
  await Deno.writeTextFile(
    config,
    `schedules:
  - name: broken
    command: update
    args: [--symbols-file, ${missing}]
    when: {after-close: 30m}
notify:
  url: http://127.0.0.1:${hook.addr.port}/hook
  headers: {X-Hook-Token: hook-secret-0123456789}
  retries: 0
`,
  );
  let serve: ServeProcess | undefined;
  try {
    serve = await startServe(["--data-dir", data, "--config", config], ENV);
    assert.equal((await schedulesOf(serve)).holds_lease, true);
    assert.deepEqual((await schedulesOf(serve)).alerts, []);
    const started = await jsonOf<{ run: RunJson }>(
      await fetch(`${serve.url}/api/schedules/broken/run`, { method: "POST" }),
      202,
    );
    const id = started.run.id;
    let run: RunJson | undefined;
    await waitUntil(
      async () => {
        const { runs } = await jsonOf<{ runs: RunJson[] }>(
          await fetch(`${serve!.url}/api/schedules/runs`),
        );
        run = runs.find((r) => r.id === id && r.status !== "running");
        return run !== undefined;
      },
      DEADLINE_MS,
      `run ${id} to end`,
    );
    assert.equal(run!.status, "failed");
    assert.match(run!.error ?? "", /Cannot read --symbols-file \S+no-such-symbols\.txt/);
    // The alert: one error line, the API, both banners and the counter.
    await waitUntil(
      () => /error: schedule broken: run for .+ failed after 1 attempt: /.test(serve!.stderr()),
      DEADLINE_MS,
      "the alert line",
    );
    const body = await schedulesOf(serve);
    assert.deepEqual(
      body.alerts.map((a) => {
        const { schedule, status, attempts } = a as Record<string, unknown>;
        return { schedule, status, attempts };
      }),
      [{ schedule: "broken", status: "failed", attempts: 1 }],
    );
    for (const path of ["/schedules", "/"]) {
      const text = await (await fetch(`${serve.url}${path}`)).text();
      assert.match(text, /Schedule <a href="\/schedules">broken<\/a> failed after 1 attempt/, path);
    }
    const metrics = await (await fetch(`${serve.url}/metrics`)).text();
    assert.match(metrics, /^mp_schedule_alerts_total\{schedule="broken"\} 1$/m);
    assert.match(metrics, /^mp_schedule_runs_total\{schedule="broken",status="failed"\} 1$/m);
    // The webhook: the stale series at start, then the failed run, with the configured header.
    await waitUntil(
      () => hooks.some((h) => h.body.event === "run.failed"),
      DEADLINE_MS,
      "the run.failed webhook",
    );
    const failed = hooks.find((h) => h.body.event === "run.failed")!;
    assert.equal(failed.headers.get("x-hook-token"), "hook-secret-0123456789");
    assert.equal(failed.headers.get("content-type")?.split(";")[0], "application/json");
    assert.equal(failed.body.schedule, "broken");
    assert.equal(failed.body.attempts, 1);
    assert.match(String(failed.body.planned_at), /^\d{4}-\d\d-\d\dT/, "snake_case body");
    assert.ok(Array.isArray(failed.body.job_ids));
    assert.match(String(failed.body.error), /Cannot read --symbols-file/);
    const stale = hooks.find((h) => h.body.event === "series.stale");
    assert.ok(stale, `a series.stale webhook: ${JSON.stringify(hooks.map((h) => h.body))}`);
    assert.deepEqual(stale.body.series, [{
      symbol: "AAPL",
      timeframe: "1m",
      last: "2024-03-06",
      expected: "2024-03-07",
      missed_sessions: 1,
    }]);
    assert.doesNotMatch(serve.stderr(), /hook-secret-0123456789/);
    // status reads the failed run from the data directory while the server runs.
    const status = await runCli(
      ["status", "--fail-on", "failed", "--config", config, "--data-dir", data],
      { env: ENV },
    );
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /Schedules: 1, 1 failing/);
    assert.match(status.stdout, new RegExp(`Scheduler: pid ${serve.child.pid} on `));
  } finally {
    await stopServe(serve);
    await hook.shutdown();
  }
});

Deno.test("a schedule added by SIGHUP gets its metric series at 0, as those read at start do", async () => {
  const data = await ingestedDataDir();
  const config = join(data, "..", "marketpipe.yaml");
  await Deno.writeTextFile(config, TWO_SCHEDULES);
  const serve = await startServe(["--data-dir", data, "--config", config], ENV);
  try {
    const series = async () => {
      const text = await (await fetch(`${serve.url}/metrics`)).text();
      return text.split("\n").filter((l) => /^mp_schedule_(runs|alerts)_total\{/.test(l)).sort();
    };
    const expected = (name: string) => [
      `mp_schedule_alerts_total{schedule="${name}"} 0`,
      ...["cancelled", "failed", "partial", "skipped", "succeeded"].map((status) =>
        `mp_schedule_runs_total{schedule="${name}",status="${status}"} 0`
      ),
    ];
    const atStart = await series();
    for (const line of expected("nightly")) assert.ok(atStart.includes(line), line);
    await Deno.writeTextFile(config, THREE_SCHEDULES);
    serve.child.kill("SIGHUP");
    await waitUntil(
      async () => (await schedulesOf(serve)).schedules.some((s) => s.name === "weekly"),
      DEADLINE_MS,
      "the reload",
    );
    const reloaded = await series();
    const missing = expected("weekly").filter((line) => !reloaded.includes(line));
    assert.deepEqual(missing, [], `series of the reloaded schedule:\n${reloaded.join("\n")}`);
  } finally {
    await stopServe(serve);
  }
});

Deno.test("serve refuses a bad schedule at start: exit 2, one line naming schedule and field, nothing created", async (t) => {
  const cases: { name: string; yaml: string; error: RegExp }[] = [
    {
      name: "bad cron",
      yaml: `schedules:
  - {name: nightly, command: update, when: {after-close: 30m}}
  - {name: hourly, command: validate, when: {cron: "61 * * * *"}}
`,
      error:
        /^error: Invalid schedules\[1\]\.when\.cron "61 \* \* \* \*" for schedule "hourly" in config file \S+\.yaml: .+$/,
    },
    {
      name: "unknown command",
      yaml: `schedules:
  - {name: nightly, command: upgrade, when: {after-close: 30m}}
`,
      error:
        /^error: Invalid schedules\[0\]\.command "upgrade" for schedule "nightly" in config file \S+\.yaml.*: expected one of update, backfill, aggregate, validate, prune, symbols update, compact$/,
    },
    {
      name: "unknown key",
      yaml: `schedules:
  - {name: nightly, command: update, when: {after-close: 30m}, every: 1d}
`,
      error:
        /^error: Unknown key "every" in schedules\[0\] for schedule "nightly" in config file \S+\.yaml.*: expected name, command, args, when, overlap, catch-up, retries, backoff$/,
    },
    {
      name: "unknown key in when",
      yaml: `schedules:
  - {name: nightly, command: update, when: {after-close: 30m, zone: UTC}}
`,
      error:
        /^error: Unknown key "zone" in schedules\[0\]\.when for schedule "nightly" in config file \S+\.yaml.*$/,
    },
    {
      name: "arguments the command refuses",
      yaml: `schedules:
  - {name: nightly, command: update, args: [--tf, 1m], when: {after-close: 30m}}
`,
      error:
        /^error: Invalid schedules\[0\]\.args for schedule "nightly": Unknown option "--tf".*$/,
    },
    {
      name: "a required option left out",
      yaml: `schedules:
  - {name: check, command: validate, args: {start: 2024-03-01}, when: {after-close: 1h}}
`,
      error:
        /^error: Invalid schedules\[0\]\.args for schedule "check": Missing --symbols \(or --symbols-file, --universe, or a JOB_ID\).*$/,
    },
  ];
  const configDir = await Deno.makeTempDir({ prefix: "mp-sched-e2e-config-" });
  for (const [i, c] of cases.entries()) {
    await t.step(c.name, async () => {
      const config = join(configDir, `bad-${i}.yaml`);
      await Deno.writeTextFile(config, c.yaml);
      const data = await Deno.makeTempDir({ prefix: "mp-sched-e2e-empty-" });
      const result = await serveExpectingExit(["--data-dir", data, "--config", config]);
      assert.equal(
        result.code,
        2,
        `${c.name}: exit ${result.code}\n${result.stdout}\n${result.stderr}`,
      );
      assert.equal(result.stdout, "", c.name);
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `${c.name}: one stderr line, got:\n${result.stderr}`);
      assert.match(lines[0], c.error, c.name);
      assert.deepEqual(await listTree(data), [], `${c.name}: nothing created in the data dir`);
      // Not created either when the data dir does not exist yet.
      const missing = join(data, "new");
      const again = await serveExpectingExit(["--data-dir", missing, "--config", config]);
      assert.equal(again.code, 2, again.stderr);
      assert.deepEqual(await listTree(data), [], `${c.name}: no data dir made`);
    });
  }
});

Deno.test("status --fail-on stale exits 1 once a closed session is missing, 0 while fresh", async () => {
  const data = await ingestedDataDir();
  // Bars end on Wednesday 2024-03-06. Thursday 07:00 EST: the last session that ended is theirs.
  const fresh = await runCli(["status", "--fail-on", "stale", "--json", "--data-dir", data], {
    env: { MARKETPIPE_NOW: "2024-03-07T12:00:00Z" },
  });
  assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr);
  const freshBody = json<{ stale: number; series: { symbol: string; stale: boolean }[] }>(fresh);
  assert.equal(freshBody.stale, 0);
  assert.deepEqual(freshBody.series.map((s) => [s.symbol, s.stale]), [["AAPL", false]]);
  // Friday 07:00 EST: Thursday's session (to 20:00 EST for 1m bars) ended without its bars.
  const stale = await runCli(["status", "--fail-on", "stale", "--json", "--data-dir", data], {
    env: { MARKETPIPE_NOW: "2024-03-08T12:00:00Z" },
  });
  assert.equal(stale.code, 1, stale.stdout + stale.stderr);
  const staleBody = json<{
    stale: number;
    series: {
      symbol: string;
      stale: boolean;
      last: string;
      expected: string;
      missed_sessions: number;
    }[];
  }>(stale);
  assert.equal(staleBody.stale, 1);
  assert.deepEqual(
    staleBody.series.map((s) => [s.symbol, s.stale, s.last, s.expected, s.missed_sessions]),
    [["AAPL", true, "2024-03-06", "2024-03-07", 1]],
  );
  // Without --fail-on it reports and exits 0; --fail-on failed ignores staleness.
  for (const args of [[], ["--fail-on", "failed"]]) {
    const report = await runCli(["status", ...args, "--data-dir", data], {
      env: { MARKETPIPE_NOW: "2024-03-08T12:00:00Z" },
    });
    assert.equal(report.code, 0, `${args.join(" ")}: ${report.stderr}`);
    assert.match(report.stdout, /Series: 1, 1 stale/);
  }
});
