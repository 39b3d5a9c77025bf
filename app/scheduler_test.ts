import assert from "node:assert/strict";
import { join } from "node:path";
import FakeTimers from "@sinonjs/fake-timers";
import type { SeriesFreshness } from "../core/freshness.ts";
import { formatZoned, parseSchedulesConfig, type Schedule } from "../core/schedule.ts";
import { MetaStore, openDatabase, openMigrated } from "../storage/meta.ts";
import { createScheduleStore, type ScheduleStore } from "../storage/schedule_store.ts";
import { startLeaseHolder } from "../tests/_lease.ts";
import type { NotifyEvent } from "./notify.ts";
import {
  createScheduler,
  type RunCommand,
  type RunResult,
  type ScheduleAlert,
  type SchedulerOptions,
} from "./scheduler.ts";

type FakeClock = ReturnType<typeof FakeTimers.createClock>;

interface Harness {
  fake: FakeClock;
  store: ScheduleStore;
  meta: MetaStore;
  dir: string;
  /** Calls of the fake command: schedule, planned time and the clock when it was called. */
  calls: { name: string; plannedAt: number; at: number; attempt: number; trigger: string }[];
  lines: string[];
  options: (overrides?: Partial<SchedulerOptions>) => SchedulerOptions;
  close: () => void;
}

function harness(
  startIso: string,
  result: (call: Harness["calls"][number]) => RunResult | Promise<RunResult> = () => ({
    status: "succeeded",
  }),
  dir?: string,
): Harness {
  // A second harness on `dir` is a second server on the same data directory.
  const second = dir !== undefined;
  dir ??= Deno.makeTempDirSync();
  const path = join(dir, "marketpipe.db");
  const db = second ? openDatabase(path) : openMigrated(path).db;
  const fake = FakeTimers.createClock(Date.parse(startIso));
  const meta = new MetaStore(db, { command: "serve", now: () => fake.now });
  const store = createScheduleStore(meta, { now: () => fake.now });
  const calls: Harness["calls"] = [];
  const lines: string[] = [];
  const runCommand: RunCommand = (schedule, context) => {
    const call = {
      name: schedule.name,
      plannedAt: context.plannedAt,
      at: fake.now,
      attempt: context.attempt,
      trigger: context.trigger,
    };
    calls.push(call);
    return Promise.resolve(result(call));
  };
  return {
    fake,
    store,
    meta,
    dir,
    calls,
    lines,
    options: (overrides = {}) => ({
      store,
      runCommand,
      clock: () => fake.now,
      timers: {
        setTimeout: (fn, ms) => fake.setTimeout(fn, ms),
        clearTimeout: (id) => fake.clearTimeout(id as number),
      },
      log: (line) => lines.push(line),
      // Seldom, so a week of fake time is few timers; the lease test sets its own.
      leaseEveryMs: 3_600_000,
      ...overrides,
    }),
    close: () => meta.close(),
  };
}

function schedulesOf(...entries: Record<string, unknown>[]): Schedule[] {
  return parseSchedulesConfig({ schedules: entries }, "test").schedules;
}

const ny = (ms: number) => formatZoned(ms);

Deno.test("scheduler fires a week of after-close runs across the July 4 holiday and early close", async () => {
  const h = harness("2024-07-01T04:00:00Z"); // Monday 00:00 EDT
  const scheduler = createScheduler(
    schedulesOf(
      { name: "close", command: "update", when: { "after-close": "30m" } },
      { name: "open", command: "validate", when: { "before-open": "15m" } },
    ),
    h.options(),
  );
  try {
    scheduler.start();
    assert.equal(scheduler.holdsLease, true);
    await h.fake.tickAsync(Date.parse("2024-07-08T04:00:00Z") - h.fake.now);
    await scheduler.idle();
    const fired = (name: string) => h.calls.filter((c) => c.name === name);
    assert.deepEqual(fired("close").map((c) => ny(c.at)), [
      "2024-07-01 16:30 EDT",
      "2024-07-02 16:30 EDT",
      "2024-07-03 13:30 EDT",
      "2024-07-05 16:30 EDT",
    ]);
    assert.deepEqual(fired("open").map((c) => ny(c.at)), [
      "2024-07-01 09:15 EDT",
      "2024-07-02 09:15 EDT",
      "2024-07-03 09:15 EDT",
      "2024-07-05 09:15 EDT",
    ]);
    assert.ok(h.calls.every((c) => c.at === c.plannedAt && c.trigger === "schedule"));
    const runs = h.store.listRuns({ schedule: "close" });
    assert.deepEqual(runs.map((r) => r.status), [
      "succeeded",
      "succeeded",
      "succeeded",
      "succeeded",
    ]);
    assert.equal(runs[0].command, "update");
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler fires a cron at the same New York time across the March DST switch", async () => {
  const h = harness("2024-03-07T22:00:00Z");
  const scheduler = createScheduler(
    schedulesOf({
      name: "cron",
      command: "update",
      when: { cron: "30 16 * * 1-5", "trading-days-only": true },
    }),
    h.options(),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(Date.parse("2024-03-13T00:00:00Z") - h.fake.now);
    assert.deepEqual(h.calls.map((c) => new Date(c.at).toISOString()), [
      "2024-03-08T21:30:00.000Z",
      "2024-03-11T20:30:00.000Z",
      "2024-03-12T20:30:00.000Z",
    ]);
    assert.deepEqual(h.calls.map((c) => ny(c.at).slice(11)), [
      "16:30 EST",
      "16:30 EDT",
      "16:30 EDT",
    ]);
  } finally {
    await scheduler.stop();
    h.close();
  }
});

/** A command that takes `ms` of fake time (or ends cancelled when the scheduler stops). */
function slowCommand(h: Harness, ms: number): RunCommand {
  return (_schedule, { signal }) =>
    new Promise((resolve) => {
      const timer = h.fake.setTimeout(() => resolve({ status: "succeeded" }), ms);
      signal.addEventListener("abort", () => {
        h.fake.clearTimeout(timer);
        resolve({ status: "cancelled" });
      });
    });
}

/** `command`, with its calls recorded in the harness. */
function recording(h: Harness, command: RunCommand): RunCommand {
  return (schedule, context) => {
    h.calls.push({
      name: schedule.name,
      plannedAt: context.plannedAt,
      at: h.fake.now,
      attempt: context.attempt,
      trigger: context.trigger,
    });
    return command(schedule, context);
  };
}

Deno.test("scheduler skips a fire time while the previous run still goes (overlap: skip)", async () => {
  const h = harness("2024-01-02T00:00:30Z");
  const scheduler = createScheduler(
    schedulesOf({ name: "m", command: "update", when: { cron: "* * * * *", tz: "UTC" } }),
    h.options({ runCommand: recording(h, slowCommand(h, 150_000)) }),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(300_000); // to 00:05:30
    assert.deepEqual(h.calls.map((c) => new Date(c.at).toISOString().slice(11, 19)), [
      "00:01:00", // runs to 00:03:30
      "00:04:00", // 00:02 and 00:03 skipped
    ]);
    const runs = h.store.listRuns({ schedule: "m" }).reverse();
    assert.deepEqual(
      runs.map((r) => [new Date(r.plannedAt).toISOString().slice(11, 16), r.status]),
      [
        ["00:01", "succeeded"],
        ["00:02", "skipped"],
        ["00:03", "skipped"],
        ["00:04", "running"],
        ["00:05", "skipped"],
      ],
    );
    assert.equal(runs[1].error, "skipped: the previous run is still going");
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler runs a fire time after the previous run ends (overlap: queue)", async () => {
  const h = harness("2024-01-02T00:00:30Z");
  const scheduler = createScheduler(
    schedulesOf({
      name: "q",
      command: "update",
      overlap: "queue",
      when: { cron: "* * * * *", tz: "UTC" },
    }),
    h.options({ runCommand: recording(h, slowCommand(h, 90_000)) }),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(180_000); // to 00:03:30
    // 00:01 runs to 00:02:30; 00:02 waits and runs then, to 00:04:00; 00:03 is queued behind it.
    assert.deepEqual(
      h.calls.map((c) => [
        new Date(c.plannedAt).toISOString().slice(11, 16),
        new Date(c.at).toISOString().slice(11, 19),
      ]),
      [["00:01", "00:01:00"], ["00:02", "00:02:30"]],
    );
    assert.deepEqual(
      scheduler.schedules()[0].queued.map((t) => new Date(t).toISOString().slice(11, 16)),
      [
        "00:03",
      ],
    );
    assert.equal(h.store.listRuns().filter((r) => r.status === "skipped").length, 0);
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler catches up missed runs at start: latest, all or none", async () => {
  for (const policy of ["latest", "all", "none"] as const) {
    const h = harness("2024-07-08T12:00:00Z"); // Monday 08:00 EDT
    // The last run was for Tuesday July 2; the server was down since.
    const id = h.store.startRun({
      schedule: "close",
      command: "update",
      trigger: "schedule",
      plannedAt: Date.parse("2024-07-02T20:30:00Z"),
    });
    h.store.finishRun(id, { status: "succeeded" });
    const schedules = schedulesOf({
      name: "close",
      command: "update",
      "catch-up": policy,
      when: { "after-close": "30m" },
    });
    const scheduler = createScheduler(schedules, h.options());
    try {
      scheduler.start();
      await h.fake.tickAsync(1_000);
      await scheduler.idle();
      const planned = h.calls.map((c) => ny(c.plannedAt));
      assert.deepEqual(
        planned,
        {
          latest: ["2024-07-05 16:30 EDT"],
          all: ["2024-07-03 13:30 EDT", "2024-07-05 16:30 EDT"],
          none: [],
        }[policy],
        policy,
      );
      assert.ok(h.calls.every((c) => c.trigger === "catch-up"));
      assert.match(
        h.lines.join("\n"),
        new RegExp(`schedule close: 2 runs missed since 2024-07-02 16:30 EDT; catch-up: ${policy}`),
      );
      await scheduler.stop();
      // A second start finds nothing more to catch up.
      const again = createScheduler(schedules, h.options());
      again.start();
      await h.fake.tickAsync(1_000);
      await again.stop();
      assert.equal(h.calls.length, planned.length, `${policy}: nothing caught up twice`);
    } finally {
      await scheduler.stop();
      h.close();
    }
  }
});

Deno.test("scheduler retries a failed run with backoff, then alerts once and notifies", async () => {
  let fail = true;
  const h = harness(
    "2024-07-01T20:00:00Z",
    () => fail ? { status: "failed", error: "HTTP 503 from alpaca" } : { status: "succeeded" },
  );
  const alerts: ScheduleAlert[] = [];
  const events: NotifyEvent[] = [];
  const scheduler = createScheduler(
    schedulesOf({
      name: "close",
      command: "update",
      retries: 2,
      backoff: "1m",
      when: { "after-close": "30m" },
    }),
    h.options({
      onAlert: (alert) => alerts.push(alert),
      notify: (event) => {
        events.push(event);
        return Promise.resolve({ delivered: true, attempts: 1 });
      },
    }),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(Date.parse("2024-07-01T21:00:00Z") - h.fake.now);
    await scheduler.idle();
    assert.deepEqual(h.calls.map((c) => [ny(c.at), c.attempt, c.trigger]), [
      ["2024-07-01 16:30 EDT", 1, "schedule"],
      ["2024-07-01 16:31 EDT", 2, "retry"],
      ["2024-07-01 16:33 EDT", 3, "retry"],
    ]);
    assert.ok(h.calls.every((c) => c.plannedAt === Date.parse("2024-07-01T20:30:00Z")));
    assert.equal(alerts.length, 1);
    assert.deepEqual(scheduler.alerts(), alerts);
    assert.deepEqual(
      [alerts[0].schedule, alerts[0].status, alerts[0].attempts, alerts[0].error],
      ["close", "failed", 3, "HTTP 503 from alpaca"],
    );
    assert.ok(
      h.lines.includes(
        "error: schedule close: run for 2024-07-01 16:30 EDT failed after 3 attempts: HTTP 503 from alpaca",
      ),
      h.lines.join("\n"),
    );
    assert.deepEqual(events, [{
      event: "run.failed",
      schedule: "close",
      command: "update",
      plannedAt: "2024-07-01T20:30:00.000Z",
      attempts: 3,
      error: "HTTP 503 from alpaca",
      jobIds: [],
    }]);
    assert.deepEqual(h.store.listRuns().map((r) => [r.attempt, r.status]), [
      [3, "failed"],
      [2, "failed"],
      [1, "failed"],
    ]);
    // The next day's success clears the alert.
    fail = false;
    await h.fake.tickAsync(Date.parse("2024-07-02T21:00:00Z") - h.fake.now);
    await scheduler.idle();
    assert.deepEqual(scheduler.alerts(), []);
    assert.equal(alerts.length, 1);
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler alerts at once on a failure a retry cannot fix, and on a partial run", async () => {
  const h = harness(
    "2024-07-01T20:00:00Z",
    (call) =>
      call.name === "bad"
        ? { status: "failed", error: 'Unknown option "--tf"', retriable: false }
        : { status: "partial", error: "2 of 10 tasks failed", jobIds: ["j1"] },
  );
  const events: NotifyEvent[] = [];
  const scheduler = createScheduler(
    schedulesOf(
      { name: "bad", command: "update", when: { "after-close": "30m" } },
      { name: "part", command: "update", retries: 0, when: { "after-close": "30m" } },
    ),
    h.options({
      notify: (event) => {
        events.push(event);
        return Promise.resolve({ delivered: true, attempts: 1 });
      },
    }),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(3_600_000);
    await scheduler.idle();
    assert.equal(h.calls.length, 2);
    assert.deepEqual(scheduler.alerts().map((a) => [a.schedule, a.status, a.attempts]), [
      ["bad", "failed", 1],
      ["part", "partial", 1],
    ]);
    assert.deepEqual(events.map((e) => e.event), ["run.failed", "run.partial"]);
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler runs only in the lease holder, and takes over from a dead one", async () => {
  const a = harness("2024-07-01T20:00:00Z");
  const b = harness("2024-07-01T20:00:00Z", undefined, a.dir);
  const schedules = schedulesOf({
    name: "close",
    command: "update",
    when: { "after-close": "30m" },
  });
  const first = createScheduler(schedules, a.options({ leaseEveryMs: 10_000 }));
  const second = createScheduler(schedules, b.options({ leaseEveryMs: 10_000 }));
  try {
    first.start();
    second.start();
    assert.deepEqual([first.holdsLease, second.holdsLease], [true, false]);
    assert.match(b.lines[0], /^scheduler: pid \d+ on .+ holds the schedule lease; standing by$/);
    await a.fake.tickAsync(3_600_000);
    await b.fake.tickAsync(3_600_000);
    assert.equal(a.calls.length, 1);
    assert.equal(b.calls.length, 0);
    // The first server dies without releasing the lease: its process row goes, as for a kill.
    a.meta.db.prepare("DELETE FROM processes WHERE id = ?").run(a.meta.process.id);
    await b.fake.tickAsync(10_000);
    assert.equal(second.holdsLease, true);
    await b.fake.tickAsync(Date.parse("2024-07-02T21:00:00Z") - b.fake.now);
    await second.idle();
    assert.deepEqual(b.calls.map((c) => ny(c.plannedAt)), ["2024-07-02 16:30 EDT"]);
    // The old holder notices at its next renewal and stops firing.
    await a.fake.tickAsync(10_000);
    assert.equal(first.holdsLease, false);
    assert.match(a.lines.join("\n"), /warning: scheduler: lost the schedule lease to pid \d+/);
  } finally {
    await first.stop();
    await second.stop();
    a.close();
    b.close();
  }
});

Deno.test("scheduler reload() adds, changes and removes schedules", async () => {
  const h = harness("2024-07-01T12:00:00Z");
  const scheduler = createScheduler(
    schedulesOf({ name: "a", command: "update", when: { "after-close": "30m" } }),
    h.options(),
  );
  try {
    scheduler.start();
    scheduler.reload(schedulesOf(
      { name: "a", command: "update", when: { "after-close": "1h" } },
      { name: "b", command: "compact", when: { "before-open": "0m" } },
    ));
    assert.deepEqual(scheduler.schedules().map((s) => [s.schedule.name, ny(s.next!)]), [
      ["a", "2024-07-01 17:00 EDT"],
      ["b", "2024-07-01 09:30 EDT"],
    ]);
    scheduler.reload(schedulesOf({ name: "b", command: "compact", when: { "before-open": "0m" } }));
    await h.fake.tickAsync(Date.parse("2024-07-02T14:00:00Z") - h.fake.now);
    await scheduler.idle();
    assert.deepEqual(h.calls.map((c) => [c.name, ny(c.at)]), [
      ["b", "2024-07-01 09:30 EDT"],
      ["b", "2024-07-02 09:30 EDT"],
    ]);
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler runNow() records a manual run and refuses one while it goes", async () => {
  const h = harness("2024-07-01T12:00:00Z");
  const scheduler = createScheduler(
    schedulesOf({ name: "a", command: "update", when: { "after-close": "30m" } }),
    h.options({ runCommand: recording(h, slowCommand(h, 60_000)) }),
  );
  try {
    scheduler.start();
    const { run, finished } = await scheduler.runNow("a");
    assert.deepEqual([run.status, run.trigger, run.plannedAt], ["running", "manual", h.fake.now]);
    await assert.rejects(() => scheduler.runNow("a"), /Cannot run schedule "a" now: run \d+/);
    await assert.rejects(() => scheduler.runNow("zz"), /Unknown schedule "zz": expected one of a/);
    await h.fake.tickAsync(60_000);
    assert.equal((await finished).status, "succeeded");
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler stop() cancels the run in flight and releases the lease", async () => {
  const h = harness("2024-07-01T20:29:00Z");
  const options = h.options({
    runCommand: (_schedule, { signal }) =>
      new Promise((resolve) =>
        signal.addEventListener("abort", () => resolve({ status: "cancelled", error: "cancelled" }))
      ),
  });
  const scheduler = createScheduler(
    schedulesOf({ name: "a", command: "update", when: { "after-close": "30m" } }),
    options,
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(120_000);
    assert.equal(h.store.listRuns()[0].status, "running");
    await scheduler.stop();
    assert.equal(h.store.listRuns()[0].status, "cancelled");
    assert.equal(h.store.leaseHolder(), undefined);
  } finally {
    h.close();
  }
});

Deno.test("scheduler reports newly stale series once, after runs and on its timer", async () => {
  const h = harness("2024-07-01T20:00:00Z");
  const stale: SeriesFreshness = {
    symbol: "AAPL",
    timeframe: "1d",
    last: "2024-06-27",
    expected: "2024-06-28",
    stale: true,
    missedSessions: 1,
    staleSince: 0,
  };
  let series: SeriesFreshness[] = [stale];
  const checks: number[] = [];
  const events: NotifyEvent[] = [];
  const scheduler = createScheduler(
    schedulesOf({ name: "a", command: "update", when: { "after-close": "30m" } }),
    h.options({
      freshness: {
        check: () => series,
        everyMs: 600_000,
        onCheck: (found) => checks.push(found.length),
      },
      notify: (event) => {
        events.push(event);
        return Promise.resolve({ delivered: true, attempts: 1 });
      },
    }),
  );
  try {
    scheduler.start();
    await h.fake.tickAsync(1_200_000); // two timer checks
    assert.deepEqual(checks, [1, 1, 1]);
    assert.equal(events.length, 1);
    assert.deepEqual(events[0], {
      event: "series.stale",
      series: [{
        symbol: "AAPL",
        timeframe: "1d",
        last: "2024-06-27",
        expected: "2024-06-28",
        missedSessions: 1,
      }],
    });
    series = [];
    await h.fake.tickAsync(600_000); // the 16:30 run, then fresh
    await scheduler.idle();
    assert.equal(h.calls.length, 1);
    assert.equal(checks.at(-1), 0);
    series = [stale];
    await h.fake.tickAsync(600_000);
    assert.equal(events.length, 2, "stale again after being fresh: notified again");
  } finally {
    await scheduler.stop();
    h.close();
  }
});

Deno.test("scheduler takes the lease over from a killed server and catches up its missed run", async () => {
  const h = harness("2024-07-02T12:00:00Z");
  // The killed server's last run was for July 1; it then held the lease while July 2's passed.
  h.store.finishRun(
    h.store.startRun({
      schedule: "close",
      command: "update",
      trigger: "schedule",
      plannedAt: Date.parse("2024-07-01T20:30:00Z"),
    }),
    { status: "succeeded" },
  );
  const holder = await startLeaseHolder(h.dir);
  const scheduler = createScheduler(
    schedulesOf({ name: "close", command: "update", when: { "after-close": "30m" } }),
    h.options({ leaseEveryMs: 10_000 }),
  );
  try {
    assert.equal(holder.said, "held");
    scheduler.start();
    assert.equal(scheduler.holdsLease, false);
    await h.fake.tickAsync(Date.parse("2024-07-02T21:00:00Z") - h.fake.now);
    assert.equal(h.calls.length, 0, "the standby runs nothing while the holder lives");
    await holder.kill();
    await h.fake.tickAsync(10_000);
    await scheduler.idle();
    assert.equal(scheduler.holdsLease, true);
    assert.deepEqual(h.calls.map((c) => [ny(c.plannedAt), c.trigger]), [
      ["2024-07-02 16:30 EDT", "catch-up"],
    ]);
  } finally {
    await holder.kill();
    await scheduler.stop();
    h.close();
  }
});
