import assert from "node:assert/strict";
import { join } from "node:path";
import { parseSchedulesConfig, type Schedule } from "../core/schedule.ts";
import { openStore } from "../storage/mod.ts";
import { AAPL_TWO_DAYS } from "../tests/_cli.ts";
import {
  checkScheduleCommands,
  createCommandRunner,
  loadSchedulesConfig,
} from "./schedule_runner.ts";

const ENV = { MARKETPIPE_NOW: "2024-03-11T12:00:00Z" };

function scheduleOf(command: string, args: string[]): Schedule {
  // `ingest` is not schedulable; the test uses it to store bars the way a user would.
  return {
    ...parseSchedulesConfig(
      { schedules: [{ name: "t", command: "update", when: "0 6 * * *" }] },
      "test",
    ).schedules[0],
    command: command as Schedule["command"],
    args,
  };
}

Deno.test("createCommandRunner() runs update in process, recording its jobs", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const signal = new AbortController().signal;
  const context = { signal, plannedAt: 0, attempt: 1, trigger: "manual" as const };
  const ingest = createCommandRunner({
    dataDir,
    env: ENV,
    version: "test",
    log: (l) => lines.push(l),
  });
  const stored = await ingest(
    scheduleOf("ingest", [...AAPL_TWO_DAYS, "--timeframe", "1d"]),
    context,
  );
  assert.equal(stored.status, "succeeded", lines.join("\n"));
  const store = await openStore(dataDir, { command: "test" });
  try {
    const update = createCommandRunner({
      dataDir,
      env: ENV,
      version: "test",
      log: (l) => lines.push(l),
      meta: store.meta,
    });
    const result = await update(scheduleOf("update", []), context);
    assert.equal(result.status, "succeeded", lines.join("\n"));
    assert.equal(result.jobIds?.length, 1);
    const job = store.meta.getJob(result.jobIds![0])!;
    assert.deepEqual([job.start, job.end, job.symbols], ["2024-03-06", "2024-03-08", ["AAPL"]]);
    assert.ok(lines.some((l) => l.startsWith("schedule t: ")));
  } finally {
    store.close();
  }
});

Deno.test("createCommandRunner() reports bad input as a failure not worth retrying", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const run = createCommandRunner({
    dataDir,
    env: ENV,
    version: "test",
    log: (l) => lines.push(l),
  });
  const result = await run(scheduleOf("update", []), {
    signal: new AbortController().signal,
    plannedAt: 0,
    attempt: 1,
    trigger: "schedule",
  });
  assert.equal(result.status, "failed");
  assert.equal(result.retriable, false);
  assert.match(result.error!, /^Nothing stored in .+: run marketpipe ingest first$/);
});

Deno.test("checkScheduleCommands() refuses arguments the command would refuse, naming the schedule", async () => {
  const { schedules } = parseSchedulesConfig({
    schedules: [
      {
        name: "ok",
        command: "update",
        args: { timeframe: "1m", aggregate: true },
        when: "0 6 * * *",
      },
      { name: "bad", command: "update", args: ["--tf", "1m"], when: "0 6 * * *" },
    ],
  }, "test");
  await checkScheduleCommands(schedules.slice(0, 1), {});
  await assert.rejects(
    () => checkScheduleCommands(schedules, {}),
    /^UsageError: Invalid schedules\[1\]\.args for schedule "bad": Unknown option "--tf" for "marketpipe update"/,
  );
});

Deno.test("checkScheduleCommands() refuses a schedule its command would refuse for a required option, reading the config file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = join(dir, "marketpipe.yaml");
    await Deno.writeTextFile(config, "retention: {1m: 2y}\n");
    const when = "0 6 * * *";
    const { schedules } = parseSchedulesConfig({
      schedules: [
        { name: "check", command: "validate", args: { start: "2024-03-01" }, when },
        { name: "trim", command: "prune", args: { policy: true }, when },
        { name: "master", command: "symbols update", args: { "as-of": "2024-03-01" }, when },
        { name: "old", command: "prune", args: { before: "2024-01-01" }, when },
      ],
    }, "test");
    const [validate, prune, symbols, before] = schedules;
    await assert.rejects(
      () => checkScheduleCommands([validate], {}),
      /^UsageError: Invalid schedules\[0\]\.args for schedule "check": Missing --symbols \(or --symbols-file, --universe, or a JOB_ID\)/,
    );
    // --policy needs the retention of the config file the server runs with.
    await assert.rejects(
      () => checkScheduleCommands([prune], {}),
      /schedule "trim": Missing retention for --policy/,
    );
    await checkScheduleCommands([prune], {}, config);
    await assert.rejects(
      () => checkScheduleCommands([symbols], {}, config),
      /schedule "master": Missing --source: where the reference data comes from/,
    );
    await checkScheduleCommands([before], {}, config);
    await checkScheduleCommands(
      parseSchedulesConfig({
        schedules: [{
          name: "ok",
          command: "validate",
          args: { symbols: "AAPL", start: "2024-03-01" },
          when,
        }],
      }, "test").schedules,
      {},
      config,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSchedulesConfig() reads the schedules of a config file, none without one", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "marketpipe.yaml");
  await Deno.writeTextFile(
    path,
    "schedules:\n  - {name: n, command: compact, when: {before-open: 1h}}\n",
  );
  assert.deepEqual((await loadSchedulesConfig(path)).schedules.map((s) => s.name), ["n"]);
  assert.deepEqual(await loadSchedulesConfig(undefined), { schedules: [] });
  await assert.rejects(
    () => loadSchedulesConfig(join(dir, "missing.yaml")),
    /Cannot read config file/,
  );
});
