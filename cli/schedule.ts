/**
 * `marketpipe schedule list|next|run NAME|history`: the config file's schedules, their next fire
 * times in New York time, a run now recorded like a scheduled one, and the recorded runs.
 *
 * @module
 */
import { join } from "node:path";
import { clockFromEnv } from "../core/clock.ts";
import { parseIntOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import {
  describeTrigger,
  formatZoned,
  nextRuns,
  type Schedule,
  type SchedulesConfig,
} from "../core/schedule.ts";
import { createNotifier, secretValuesOf } from "../app/notify.ts";
import { createScheduler } from "../app/scheduler.ts";
import { scheduleRunJson } from "../app/status.ts";
import { META_FILE, MetaStore, openExistingMigrated, openStore } from "../storage/mod.ts";
import {
  createScheduleStore,
  hasScheduleTables,
  type ScheduleRun,
} from "../storage/schedule_store.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { printJson, printTable } from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";
import {
  checkScheduleCommands,
  configPathOf,
  createCommandRunner,
  loadSchedulesConfig,
} from "./schedule_runner.ts";

/** `marketpipe schedule list`: each schedule, its trigger, policies, next run and last run. */
export async function runScheduleList(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const { schedules } = await _configured(invocation);
  const now = clockFromEnv(context.env)();
  const latest = await _withRuns(dataDirOf(invocation), (runs) => runs.latestRuns());
  if (context.json) {
    printJson(
      context,
      schedules.map((s) => ({
        name: s.name,
        command: [s.command, ...s.args].join(" "),
        when: describeTrigger(s.when),
        overlap: s.overlap,
        catch_up: s.catchUp,
        retries: s.retries,
        backoff_ms: s.backoffMs,
        next: _iso(nextRuns(s, now, 1)[0]),
        last_run: latest?.get(s.name) ? scheduleRunJson(latest.get(s.name)!) : null,
      })),
    );
    return EXIT.ok;
  }
  const rows = schedules.map((s) => {
    const last = latest?.get(s.name);
    const next = nextRuns(s, now, 1)[0];
    return [
      s.name,
      [s.command, ...s.args].join(" "),
      describeTrigger(s.when),
      `${s.overlap}, catch-up ${s.catchUp}, ${s.retries} retries`,
      next === undefined ? "-" : formatZoned(next),
      last ? `${last.status} (${formatZoned(last.plannedAt)})` : "never",
    ];
  });
  printTable(context, ["name", "command", "when", "policy", "next", "last"], rows);
  return EXIT.ok;
}

/** `marketpipe schedule next [NAME]`: the next N fire times of each schedule, New York time. */
export async function runScheduleNext(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const name = _optionalName(invocation);
  const { schedules } = await _configured(invocation);
  const count = parseIntOption(invocation.string("count") ?? "5", "--count", 1, 1_000);
  const selected = name === undefined ? schedules : [_find(schedules, name)];
  const now = clockFromEnv(context.env)();
  const times = selected.map((s) => ({ schedule: s, next: nextRuns(s, now, count) }));
  if (context.json) {
    printJson(
      context,
      times.map(({ schedule, next }) => ({ name: schedule.name, next: next.map(_iso) })),
    );
    return EXIT.ok;
  }
  const rows = times.flatMap(({ schedule, next }) =>
    next.map((at) => [schedule.name, formatZoned(at), _weekday(at), new Date(at).toISOString()])
  );
  printTable(context, ["name", "new york", "day", "utc"], rows);
  return EXIT.ok;
}

/**
 * `marketpipe schedule run NAME`: run a schedule's command now, once, recorded as a `manual`
 * run (refused while a run of it goes in any process). Exits as the command did.
 */
export async function runScheduleRun(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const name = _optionalName(invocation);
  if (name === undefined) {
    throw new UsageError(
      `Missing NAME for "marketpipe schedule run"; see marketpipe schedule run --help`,
    );
  }
  const config = await _configured(invocation);
  const schedule = _find(config.schedules, name);
  await checkScheduleCommands([schedule], context.env, configPathOf(invocation));
  const dataDir = dataDirOf(invocation);
  const store = await openStore(dataDir, { command: "schedule run" });
  try {
    if (!hasScheduleTables(store.meta)) {
      throw new UsageError(
        `Cannot record schedule runs in ${dataDir}: its metadata database lacks the schedule tables; run marketpipe migrate`,
      );
    }
    const clock = clockFromEnv(context.env);
    const scheduler = createScheduler([schedule], {
      store: createScheduleStore(store.meta),
      clock,
      runCommand: createCommandRunner({
        dataDir,
        configPath: configPathOf(invocation),
        env: context.env,
        version: context.version,
        log: context.err,
        meta: store.meta,
      }),
      log: context.err,
      notify: config.notify
        ? createNotifier(config.notify, { secrets: secretValuesOf(context.env), log: context.err })
        : undefined,
    });
    const onAbort = () => scheduler.stop();
    context.signal.addEventListener("abort", onAbort, { once: true });
    let finished: ScheduleRun;
    try {
      finished = await (await scheduler.runNow(name)).finished;
      await scheduler.idle();
    } finally {
      context.signal.removeEventListener("abort", onAbort);
    }
    if (context.json) printJson(context, scheduleRunJson(finished));
    else context.out(`Run ${finished.id} of ${name}: ${finished.status}`);
    const codes: Record<string, number> = {
      succeeded: EXIT.ok,
      partial: EXIT.partial,
      cancelled: EXIT.interrupted,
    };
    return codes[finished.status] ?? EXIT.failure;
  } finally {
    store.close();
  }
}

/** `marketpipe schedule history [NAME]`: recorded runs, newest first. */
export async function runScheduleHistory(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const name = _optionalName(invocation);
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 100_000);
  const runs =
    await _withRuns(dataDirOf(invocation), (r) => r.listRuns({ schedule: name, limit })) ??
      [];
  if (context.json) {
    printJson(context, runs.map(scheduleRunJson));
    return EXIT.ok;
  }
  if (runs.length === 0) {
    context.out(name === undefined ? "No schedule runs recorded." : `No runs of ${name} recorded.`);
    return EXIT.ok;
  }
  const rows = runs.map((run) => [
    String(run.id),
    run.schedule,
    run.status,
    run.trigger,
    String(run.attempt),
    formatZoned(run.plannedAt),
    run.startedAt !== null && run.finishedAt !== null
      ? `${Math.round((run.finishedAt - run.startedAt) / 1_000)}s`
      : "-",
    run.jobIds.join(",") || "-",
    run.error ?? "",
  ]);
  printTable(
    context,
    ["id", "schedule", "status", "trigger", "try", "planned (ET)", "took", "jobs", "error"],
    rows,
    { right: [0, 4] },
  );
  return EXIT.ok;
}

async function _configured(invocation: Invocation): Promise<SchedulesConfig> {
  const path = configPathOf(invocation);
  if (path === undefined) {
    throw new UsageError(
      "No schedules: give --config FILE (or set MARKETPIPE_CONFIG) with a schedules: list",
    );
  }
  const config = await loadSchedulesConfig(path);
  if (config.schedules.length === 0) {
    throw new UsageError(`No schedules in config file ${path}: add a schedules: list`);
  }
  return config;
}

function _find(schedules: readonly Schedule[], name: string): Schedule {
  const found = schedules.find((s) => s.name === name);
  if (found) return found;
  const names = schedules.map((s) => s.name);
  throw new UsageError(
    `Unknown schedule "${name}"${didYouMean(name, names)}: expected one of ${names.join(", ")}`,
  );
}

/** Runs of the data directory's schedule store, or undefined when it has none yet. */
async function _withRuns<T>(
  dataDir: string,
  read: (runs: ReturnType<typeof createScheduleStore>) => T,
): Promise<T | undefined> {
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  if (!db) return undefined;
  const meta = new MetaStore(db, { command: "schedule" });
  try {
    return hasScheduleTables(meta) ? read(createScheduleStore(meta)) : undefined;
  } finally {
    meta.close();
  }
}

function _optionalName(invocation: Invocation): string | undefined {
  const [name, extra] = invocation.positionals;
  if (extra !== undefined) {
    throw new UsageError(
      `Unexpected argument "${extra}" for "marketpipe ${invocation.path.join(" ")}"`,
    );
  }
  return name;
}

function _iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function _weekday(ms: number): string {
  return new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", weekday: "short" })
    .format(ms);
}
