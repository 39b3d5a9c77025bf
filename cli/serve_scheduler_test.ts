import assert from "node:assert/strict";
import { join } from "node:path";
import { openStore, type Store } from "../storage/mod.ts";
import {
  prepareServeSchedules,
  type ServeSchedulerOptions,
  startServeScheduler,
} from "./serve_scheduler.ts";

const NIGHTLY = "  - {name: nightly, command: update, when: {after-close: 30m}}";

/** startServeScheduler()'s options over `store` and the config at `configPath`, at 2024-07-03 12:00 UTC. */
function schedulerOptions(
  store: Store,
  configPath: string,
  more: Pick<ServeSchedulerOptions, "log"> & Partial<ServeSchedulerOptions>,
): ServeSchedulerOptions {
  return {
    dataDir: store.dataDir,
    configPath,
    env: {},
    version: "test",
    meta: store.meta,
    clock: () => Date.parse("2024-07-03T12:00:00Z"),
    ...more,
  };
}

Deno.test("prepareServeSchedules() refuses a bad config at start, naming schedule and field", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "c.yaml");
  await assert.rejects(
    async () => {
      await Deno.writeTextFile(
        path,
        `schedules:\n${NIGHTLY}\n  - {name: b, command: update, when: "61 * * * *"}`,
      );
      await prepareServeSchedules(path, {});
    },
    /^UsageError: Invalid schedules\[1\]\.when\.cron "61 \* \* \* \*" for schedule "b" in config file .+c\.yaml: Invalid value for minute: 61$/,
  );
  await assert.rejects(async () => {
    await Deno.writeTextFile(
      path,
      `schedules:\n  - {name: b, command: upgrade, when: "0 6 * * *"}`,
    );
    await prepareServeSchedules(path, {});
  }, /Invalid schedules\[0\]\.command "upgrade" for schedule "b"/);
  await assert.rejects(async () => {
    await Deno.writeTextFile(
      path,
      `schedules:\n  - {name: b, command: update, when: "0 6 * * *", every: 1}`,
    );
    await prepareServeSchedules(path, {});
  }, /Unknown key "every" in schedules\[0\]/);
  await assert.rejects(async () => {
    await Deno.writeTextFile(
      path,
      `schedules:\n  - {name: b, command: update, args: [--tf, 1m], when: "0 6 * * *"}`,
    );
    await prepareServeSchedules(path, {});
  }, /Invalid schedules\[0\]\.args for schedule "b": Unknown option "--tf"/);
});

Deno.test("startServeScheduler() runs over the server's store and reloads the config", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "c.yaml");
  await Deno.writeTextFile(path, `schedules:\n${NIGHTLY}\n`);
  const store = await openStore(join(dir, "data"), { command: "serve" });
  const lines: string[] = [];
  try {
    const config = await prepareServeSchedules(path, {});
    const serve = startServeScheduler(
      config,
      schedulerOptions(store, path, { log: (line) => lines.push(line) }),
    );
    const scheduler = serve.scheduler!;
    try {
      assert.equal(scheduler.holdsLease, true);
      assert.deepEqual(scheduler.schedules().map((s) => new Date(s.next!).toISOString()), [
        "2024-07-03T17:30:00.000Z",
      ]);
      await Deno.writeTextFile(
        path,
        `schedules:\n  - {name: x, command: update, when: "61 * * * *"}\n`,
      );
      await serve.reload();
      assert.match(
        lines.at(-1)!,
        /^error: cannot reload the schedules: Invalid schedules\[0\]\.when\.cron .+; keeping the current ones$/,
      );
      assert.deepEqual(scheduler.schedules().map((s) => s.schedule.name), ["nightly"]);
      await Deno.writeTextFile(
        path,
        `schedules:\n${NIGHTLY}\n  - {name: weekly, command: compact, when: "0 6 * * 6"}\n`,
      );
      await serve.reload();
      assert.deepEqual(scheduler.schedules().map((s) => s.schedule.name), [
        "nightly",
        "weekly",
      ]);
    } finally {
      await serve.stop();
    }
    assert.equal(scheduler.holdsLease, false);
  } finally {
    store.close();
  }
});

Deno.test("startServeScheduler() without schedules starts at the reload that adds the first", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "c.yaml");
  await Deno.writeTextFile(path, "provider: fake\n");
  const store = await openStore(join(dir, "data"), { command: "serve" });
  const started: unknown[] = [];
  const named: string[][] = [];
  try {
    const serve = startServeScheduler(
      await prepareServeSchedules(path, {}),
      schedulerOptions(store, path, {
        log: () => {},
        onScheduler: (scheduler) => started.push(scheduler),
        onSchedules: (names) => named.push(names),
      }),
    );
    try {
      assert.equal(serve.scheduler, undefined, "nothing to run: no scheduler, no lease");
      await serve.reload();
      assert.equal(serve.scheduler, undefined, "still nothing to run");
      await Deno.writeTextFile(path, `provider: fake\nschedules:\n${NIGHTLY}\n`);
      await serve.reload();
      assert.equal(started.length, 1);
      assert.equal(serve.scheduler, started[0]);
      assert.deepEqual(serve.scheduler!.schedules().map((s) => s.schedule.name), ["nightly"]);
      assert.equal(serve.scheduler!.holdsLease, true);
      assert.deepEqual(named, [[], [], ["nightly"]]);
    } finally {
      await serve.stop();
    }
  } finally {
    store.close();
  }
});
