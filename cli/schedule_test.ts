import assert from "node:assert/strict";
import { join } from "node:path";
import { parseInvocation } from "./args.ts";
import { COMMANDS } from "./commands.ts";
import { SCHEDULE_COMMANDS } from "./commands_schedule.ts";
import type { CommandContext } from "./context.ts";
import { AAPL_TWO_DAYS } from "../tests/_cli.ts";

// The command table as it is once SCHEDULE_COMMANDS is spliced into COMMANDS.
const ALL = [
  ...COMMANDS.filter((c) => !SCHEDULE_COMMANDS.some((s) => s.name === c.name)),
  ...SCHEDULE_COMMANDS,
];

/** Run `marketpipe ARGS` in this process, as main.ts does; returns the exit code and output. */
async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const parsed = await parseInvocation(
    ALL,
    args,
    env,
    (path) => Deno.readTextFile(path),
  );
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") throw new Error("unreachable");
  const context: CommandContext = {
    env,
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    signal: new AbortController().signal,
    verbose: false,
    json: parsed.invocation.flag("json"),
    version: "test",
  };
  const code = await (await parsed.command.run!())(parsed.invocation, context);
  return { code, out, err };
}

async function setup(now: string): Promise<{ dataDir: string; env: Record<string, string> }> {
  const dir = await Deno.makeTempDir();
  const dataDir = join(dir, "data");
  const config = join(dir, "marketpipe.yaml");
  await Deno.writeTextFile(
    config,
    [
      `data-dir: ${dataDir}`,
      "schedules:",
      "  - name: nightly",
      "    command: update",
      "    args: {timeframe: 1d}",
      "    when: {after-close: 30m}",
      "  - name: weekly",
      "    command: compact",
      '    when: {cron: "0 6 * * 6", tz: Europe/London}',
    ].join("\n"),
  );
  return { dataDir, env: { MARKETPIPE_CONFIG: config, MARKETPIPE_NOW: now } };
}

Deno.test("schedule next prints the next fire times in New York time across July 4", async () => {
  const { env } = await setup("2024-07-03T12:00:00Z");
  const { code, out } = await cli(["schedule", "next", "nightly", "--count", "3"], env);
  assert.equal(code, 0);
  assert.deepEqual(out.slice(2).map((l) => l.split(/\s{2,}/)), [
    ["nightly", "2024-07-03 13:30 EDT", "Wed", "2024-07-03T17:30:00.000Z"],
    ["nightly", "2024-07-05 16:30 EDT", "Fri", "2024-07-05T20:30:00.000Z"],
    ["nightly", "2024-07-08 16:30 EDT", "Mon", "2024-07-08T20:30:00.000Z"],
  ]);
  const json = await cli(["schedule", "next", "--count", "1", "--json"], env);
  assert.deepEqual(JSON.parse(json.out.join("\n")), [
    { name: "nightly", next: ["2024-07-03T17:30:00.000Z"] },
    { name: "weekly", next: ["2024-07-06T05:00:00.000Z"] },
  ]);
});

Deno.test("schedule list shows each schedule's trigger and next run", async () => {
  const { env } = await setup("2024-07-03T12:00:00Z");
  const { code, out } = await cli(["schedule", "list"], env);
  assert.equal(code, 0);
  assert.match(
    out[2],
    /^nightly\s+update --timeframe 1d\s+30m after the close\s+skip, catch-up latest, 2 retries\s+2024-07-03 13:30 EDT\s+never$/,
  );
  assert.match(out[3], /^weekly\s+compact\s+cron "0 6 \* \* 6" \(Europe\/London\)/);
});

Deno.test("schedule run records a manual run and its job; history and status show it", async () => {
  const { env } = await setup("2024-03-11T12:00:00Z");
  const ingest = await cli(["ingest", ...AAPL_TWO_DAYS, "--timeframe", "1d"], env);
  assert.equal(ingest.code, 0, ingest.err.join("\n"));
  const stale = await cli(["status", "--fail-on", "stale"], env);
  assert.equal(stale.code, 1);
  assert.equal(stale.out[0], "Series: 1, 1 stale (as of 2024-03-11 08:00 EDT)");
  assert.match(
    stale.out[3],
    /^ {2}AAPL\s+1d\s+2024-03-05\s+2024-03-08\s+3\s+2024-03-06 16:00 EST$/,
  );

  const run = await cli(["schedule", "run", "nightly"], env);
  assert.equal(run.code, 0, run.err.join("\n"));
  assert.match(run.out[0], /^Run \d+ of nightly: succeeded$/);
  const history = await cli(["schedule", "history", "--json"], env);
  const runs = JSON.parse(history.out.join("\n"));
  assert.equal(runs.length, 1);
  assert.deepEqual(
    [runs[0].schedule, runs[0].status, runs[0].trigger, runs[0].command, runs[0].job_ids.length],
    ["nightly", "succeeded", "manual", "update --timeframe 1d", 1],
  );
  const fresh = await cli(["status", "--fail-on", "stale,failed", "--json"], env);
  assert.equal(fresh.code, 0);
  const report = JSON.parse(fresh.out.join("\n"));
  assert.deepEqual([report.stale, report.series[0].last], [0, "2024-03-08"]);
  assert.equal(report.schedules[0].last_run.status, "succeeded");
});

Deno.test("schedule commands refuse an unknown schedule and a missing config", async () => {
  const { env } = await setup("2024-07-03T12:00:00Z");
  await assert.rejects(
    () => cli(["schedule", "run", "nighlty"], env),
    /Unknown schedule "nighlty" \(did you mean "nightly"\?\): expected one of nightly, weekly/,
  );
  await assert.rejects(
    () => cli(["schedule", "list"], { MARKETPIPE_NOW: env.MARKETPIPE_NOW }),
    /No schedules: give --config FILE/,
  );
  await assert.rejects(
    () => cli(["status", "--fail-on", "late"], env),
    /Invalid --fail-on "late": expected stale, failed or stale,failed/,
  );
});
