import assert from "node:assert/strict";
import { isSessionClosed } from "./clock.ts";
import { UsageError } from "./errors.ts";
import {
  catchUpRuns,
  describeTrigger,
  formatZoned,
  missedRuns,
  nextRuns,
  parseSchedulesConfig,
  readSchedulesConfig,
  retryDelay,
  type Schedule,
} from "./schedule.ts";

const WHERE = "config file test.yaml";

function scheduleOf(when: unknown, extra: Record<string, unknown> = {}): Schedule {
  return parseSchedulesConfig(
    { schedules: [{ name: "s", command: "update", when, ...extra }] },
    WHERE,
  ).schedules[0];
}

const ny = (ms: number) => formatZoned(ms);

/** The message of the UsageError `fn` throws. */
function usageErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    return error.message;
  }
  throw new assert.AssertionError({ message: "expected a UsageError, nothing was thrown" });
}

Deno.test("nextRuns() after-close fires once per session across a holiday and an early close", () => {
  const schedule = scheduleOf({ "after-close": "30m" });
  const runs = nextRuns(schedule, Date.parse("2024-07-01T04:00:00Z"), 5);
  assert.deepEqual(runs.map(ny), [
    "2024-07-01 16:30 EDT",
    "2024-07-02 16:30 EDT",
    "2024-07-03 13:30 EDT", // early close at 13:00
    // 2024-07-04 Independence Day: closed, no run
    "2024-07-05 16:30 EDT",
    "2024-07-08 16:30 EDT",
  ]);
});

Deno.test("nextRuns() after-post fires after the after-hours session, when 1m bars are complete", () => {
  const schedule = scheduleOf({ "after-post": "15m" });
  const runs = nextRuns(schedule, Date.parse("2024-07-01T04:00:00Z"), 4);
  assert.deepEqual(runs.map(ny), [
    "2024-07-01 20:15 EDT",
    "2024-07-02 20:15 EDT",
    "2024-07-03 17:15 EDT", // early close: after-hours end at 17:00
    "2024-07-05 20:15 EDT", // no run on July 4
  ]);
  // By then `update` counts the day's intraday session as closed (see core/clock.ts).
  for (const run of runs) {
    const date = ny(run).slice(0, 10);
    assert.equal(isSessionClosed(date, run, { extendedHours: true }), true, date);
    assert.equal(isSessionClosed(date, run - 16 * 60_000, { extendedHours: true }), false, date);
  }
  assert.equal(describeTrigger(schedule.when), "15m after the after-hours session");
  // The fire time stays on the session's day: past midnight would be Saturday after a Friday.
  assert.equal(scheduleOf({ "after-post": "3h59m" }).when.kind, "after-post");
  assert.match(
    usageErrorOf(() => scheduleOf({ "after-post": "4h" })),
    /^Invalid schedules\[0\]\.when\.after-post "4h" .*: expected a duration from 0m to 3h59m/,
  );
});

Deno.test("nextRuns() before-open fires before each open, skipping Thanksgiving", () => {
  const schedule = scheduleOf({ "before-open": "15m" });
  const runs = nextRuns(schedule, Date.parse("2024-11-27T00:00:00Z"), 3);
  assert.deepEqual(runs.map(ny), [
    "2024-11-27 09:15 EST",
    "2024-11-29 09:15 EST", // the 28th is Thanksgiving; the 29th closes early but opens at 9:30
    "2024-12-02 09:15 EST",
  ]);
});

Deno.test("nextRuns() keeps New York wall times across the March DST switch", () => {
  const after = Date.parse("2024-03-07T22:00:00Z");
  const close = nextRuns(scheduleOf({ "after-close": "30m" }), after, 3);
  assert.deepEqual(close.map((ms) => new Date(ms).toISOString()), [
    "2024-03-08T21:30:00.000Z", // EST, UTC-5
    "2024-03-11T20:30:00.000Z", // EDT, UTC-4
    "2024-03-12T20:30:00.000Z",
  ]);
  const cron = nextRuns(scheduleOf({ cron: "30 16 * * 1-5" }), after, 3);
  assert.deepEqual(cron, close);
});

Deno.test("nextRuns() of a week across the November switch fires the expected runs", () => {
  const week = [Date.parse("2024-10-31T12:00:00Z"), Date.parse("2024-11-08T12:00:00Z")] as const;
  const runs = missedRuns(scheduleOf({ "after-close": "1h" }), ...week);
  assert.deepEqual(runs.map(ny), [
    "2024-10-31 17:00 EDT",
    "2024-11-01 17:00 EDT",
    "2024-11-04 17:00 EST",
    "2024-11-05 17:00 EST",
    "2024-11-06 17:00 EST",
    "2024-11-07 17:00 EST",
  ]);
  assert.deepEqual(new Date(runs[2]).toISOString(), "2024-11-04T22:00:00.000Z");
});

Deno.test("nextRuns() of a cron fires on holidays unless trading-days-only", () => {
  const after = Date.parse("2024-07-03T21:00:00Z");
  assert.deepEqual(nextRuns(scheduleOf({ cron: "30 16 * * 1-5" }), after, 2).map(ny), [
    "2024-07-04 16:30 EDT",
    "2024-07-05 16:30 EDT",
  ]);
  assert.deepEqual(
    nextRuns(scheduleOf({ cron: "30 16 * * 1-5", "trading-days-only": true }), after, 2).map(ny),
    ["2024-07-05 16:30 EDT", "2024-07-08 16:30 EDT"],
  );
});

Deno.test("nextRuns() reads a cron in its own time zone", () => {
  const schedule = scheduleOf({ cron: "0 6 * * *", tz: "Europe/London" });
  assert.deepEqual(
    nextRuns(schedule, Date.parse("2024-03-30T12:00:00Z"), 2).map((ms) =>
      new Date(ms).toISOString()
    ),
    ["2024-03-31T05:00:00.000Z", "2024-04-01T05:00:00.000Z"], // BST from March 31
  );
  assert.deepEqual(describeTrigger(schedule.when), 'cron "0 6 * * *" (Europe/London)');
});

Deno.test("nextRuns() is strictly after the given instant", () => {
  const schedule = scheduleOf({ "after-close": "30m" });
  const first = nextRuns(schedule, Date.parse("2024-07-01T04:00:00Z"), 1)[0];
  assert.deepEqual(nextRuns(schedule, first, 1).map(ny), ["2024-07-02 16:30 EDT"]);
  assert.deepEqual(nextRuns(schedule, first - 1, 1), [first]);
});

Deno.test("missedRuns() lists the runs in (from, to] and keeps the latest when capped", () => {
  const schedule = scheduleOf({ cron: "0 * * * *", tz: "UTC" });
  const from = Date.parse("2024-01-01T00:00:00Z");
  const to = Date.parse("2024-01-01T05:00:00Z");
  assert.deepEqual(missedRuns(schedule, from, to).length, 5);
  assert.deepEqual(missedRuns(schedule, from, to, 2).map((ms) => new Date(ms).toISOString()), [
    "2024-01-01T04:00:00.000Z",
    "2024-01-01T05:00:00.000Z",
  ]);
  assert.deepEqual(missedRuns(schedule, to, to), []);
});

Deno.test("catchUpRuns() picks the latest, all or none of the missed runs", () => {
  assert.deepEqual(catchUpRuns("latest", [1, 2, 3]), [3]);
  assert.deepEqual(catchUpRuns("all", [1, 2, 3]), [1, 2, 3]);
  assert.deepEqual(catchUpRuns("none", [1, 2, 3]), []);
  assert.deepEqual(catchUpRuns("latest", []), []);
});

Deno.test("retryDelay() doubles the backoff per retry up to an hour", () => {
  const schedule = { backoffMs: 60_000 };
  assert.deepEqual([1, 2, 3].map((n) => retryDelay(schedule, n)), [60_000, 120_000, 240_000]);
  assert.deepEqual(retryDelay(schedule, 10), 3_600_000);
});

Deno.test("parseSchedulesConfig() fills defaults and turns an args mapping into flags", () => {
  const { schedules, notify } = parseSchedulesConfig({
    schedules: [{
      name: "nightly",
      command: "update",
      args: { timeframe: "1m", aggregate: true, compact: false, symbols: ["AAPL", "MSFT"] },
      when: { after_close: "30m" },
    }],
    notify: { url: "https://hooks.example.test/x", headers: { Authorization: "Bearer t" } },
  }, WHERE);
  assert.deepEqual(schedules[0], {
    name: "nightly",
    command: "update",
    args: ["--timeframe", "1m", "--aggregate", "--no-compact", "--symbols", "AAPL,MSFT"],
    when: { kind: "after-close", offsetMs: 1_800_000 },
    overlap: "skip",
    catchUp: "latest",
    retries: 2,
    backoffMs: 300_000,
  });
  assert.deepEqual(notify, {
    url: "https://hooks.example.test/x",
    headers: { Authorization: "Bearer t" },
    retries: 3,
  });
});

Deno.test("readSchedulesConfig() reads schedules and notify from config text, ignoring other keys", () => {
  const text = [
    "data-dir: ./data",
    "schedules:",
    "  - name: symbols",
    "    command: symbols update",
    '    when: "0 6 * * 1-5"',
    "    args: [--source, fake]",
    "    overlap: queue",
    "    catch_up: all",
    "    retries: 0",
    "    backoff: 1m",
  ].join("\n");
  const { schedules } = readSchedulesConfig(text, "c.yaml");
  assert.deepEqual(schedules[0].command, "symbols update");
  assert.deepEqual(schedules[0].args, ["--source", "fake"]);
  assert.deepEqual(schedules[0].when, {
    kind: "cron",
    cron: "0 6 * * 1-5",
    tz: "America/New_York",
    tradingDaysOnly: false,
  });
  assert.deepEqual([schedules[0].overlap, schedules[0].catchUp], ["queue", "all"]);
  assert.deepEqual([schedules[0].retries, schedules[0].backoffMs], [0, 60_000]);
  assert.deepEqual(readSchedulesConfig("", "c.yaml"), { schedules: [] });
});

Deno.test("parseSchedulesConfig() refuses bad entries, naming the schedule and the field", () => {
  const bad = (entry: Record<string, unknown>) =>
    usageErrorOf(() =>
      parseSchedulesConfig({
        schedules: [
          { name: "a", command: "update", when: { "after-close": "30m" } },
          { name: "b", command: "validate", when: { "after-close": "30m" } },
          { name: "c", command: "update", when: { cron: "0 6 * * *" }, ...entry },
        ],
      }, WHERE)
    );
  assert.deepEqual(
    bad({ when: { cron: "61 * * * *" } }),
    'Invalid schedules[2].when.cron "61 * * * *" for schedule "c" in config file test.yaml: Invalid value for minute: 61',
  );
  assert.deepEqual(
    bad({ command: "updat" }),
    'Invalid schedules[2].command "updat" for schedule "c" in config file test.yaml (did you mean "update"?): expected one of update, backfill, aggregate, validate, prune, symbols update, compact',
  );
  assert.deepEqual(
    bad({ timeout: "1h" }),
    'Unknown key "timeout" in schedules[2] for schedule "c" in config file test.yaml: expected name, command, args, when, overlap, catch-up, retries, backoff',
  );
  assert.deepEqual(
    bad({ when: { cron: "0 6 * * *", tzz: "UTC" } }),
    'Unknown key "tzz" in schedules[2].when for schedule "c" in config file test.yaml (did you mean "tz"?): expected cron, tz, trading-days-only, after-close, after-post, before-open',
  );
  assert.deepEqual(
    bad({ when: { cron: "0 6 * *" } }),
    'Invalid schedules[2].when.cron "0 6 * *" for schedule "c" in config file test.yaml: expected 5 fields (minute hour day-of-month month day-of-week), got 4',
  );
  assert.deepEqual(
    bad({ when: { cron: "0 6 * * *", tz: "Mars/Base" } }),
    'Invalid schedules[2].when.tz "Mars/Base" for schedule "c" in config file test.yaml: expected an IANA time zone such as America/New_York',
  );
  assert.deepEqual(
    bad({ when: { "after-close": "7h" } }),
    'Invalid schedules[2].when.after-close "7h" for schedule "c" in config file test.yaml: expected a duration from 0m to 6h such as 30m, 1h or 1h30m',
  );
  assert.deepEqual(
    bad({ when: { "after-close": "30m", "before-open": "5m" } }),
    'Invalid schedules[2].when for schedule "c" in config file test.yaml: expected exactly one of cron, after-close, after-post, before-open, got after-close and before-open',
  );
  assert.deepEqual(
    bad({ overlap: "wait" }),
    'Invalid schedules[2].overlap "wait" for schedule "c" in config file test.yaml: expected one of skip, queue',
  );
  assert.deepEqual(
    bad({ retries: -1 }),
    'Invalid schedules[2].retries -1 for schedule "c" in config file test.yaml: expected a whole number from 0 to 10',
  );
  assert.deepEqual(
    bad({ name: "a" }),
    'Invalid schedules[2].name "a" in config file test.yaml: another schedule has this name',
  );
  assert.deepEqual(
    bad({ name: undefined }),
    "Missing schedules[2].name in config file test.yaml",
  );
  assert.deepEqual(
    bad({ args: { symbols: { a: 1 } } }),
    'Invalid schedules[2].args.symbols for schedule "c" in config file test.yaml: expected a string, number, boolean or list',
  );
});

Deno.test("parseSchedulesConfig() refuses a notify URL that is not http, hiding its query", () => {
  assert.deepEqual(
    usageErrorOf(() =>
      parseSchedulesConfig({ notify: { url: "ftp://x.test/hook?token=abc" } }, WHERE)
    ),
    'Invalid notify.url "ftp://x.test/hook?..." in config file test.yaml: expected an http or https URL',
  );
  assert.match(
    usageErrorOf(() =>
      parseSchedulesConfig({ notify: { url: "https://x.test", secret: 1 } }, WHERE)
    ),
    /^Unknown key "secret" in notify in config file test.yaml/,
  );
});

Deno.test("nextRuns() fires a cron whose wall time the spring switch skips at the next valid time", () => {
  const schedule = scheduleOf({ cron: "30 2 * * *" });
  assert.deepEqual(nextRuns(schedule, Date.parse("2024-03-09T12:00:00Z"), 3).map(ny), [
    "2024-03-10 03:00 EDT", // 02:30 does not exist that night
    "2024-03-11 02:30 EDT",
    "2024-03-12 02:30 EDT",
  ]);
  // In the autumn the repeated 01:30 fires once.
  const autumn = nextRuns(
    scheduleOf({ cron: "30 1 * * *" }),
    Date.parse("2024-11-02T12:00:00Z"),
    2,
  );
  assert.deepEqual(autumn.map(ny), ["2024-11-03 01:30 EDT", "2024-11-04 01:30 EST"]);
});
