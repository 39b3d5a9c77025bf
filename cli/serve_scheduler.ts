/**
 * The scheduler's start and stop inside `marketpipe serve`: the config's schedules checked
 * before the data directory is opened, then a scheduler over the server's metadata store that
 * runs each command in this process, invalidates the read side after each run, reports to the
 * webhook and sets the schedule metrics; `reload()` (on SIGHUP) reads the config again.
 *
 * @module
 */
import { hostname } from "node:os";
import type { Clock } from "../core/clock.ts";
import { errorMessage, UsageError } from "../core/errors.ts";
import type { SchedulesConfig } from "../core/schedule.ts";
import { createNotifier, type Notifier, secretValuesOf } from "../app/notify.ts";
import { createScheduler, type Scheduler } from "../app/scheduler.ts";
import { readSeriesFreshness } from "../app/status.ts";
import type { MetaStore } from "../storage/mod.ts";
import { createScheduleStore, hasScheduleTables } from "../storage/schedule_store.ts";
import {
  checkScheduleCommands,
  createCommandRunner,
  loadSchedulesConfig,
} from "./schedule_runner.ts";

/**
 * The counters the scheduler increments (prom-client's `Counter` fits as it is):
 * `mp_schedule_runs_total{schedule,status}` and `mp_schedule_alerts_total{schedule}`. Staleness
 * is exported by the freshness gauges (`mp_data_sessions_behind{timeframe}`), not here.
 */
export interface ScheduleMetrics {
  runs?: { inc(labels: { schedule: string; status: string }): void };
  alerts?: { inc(labels: { schedule: string }): void };
}

/**
 * Read and check the config file's schedules for `serve`, before anything is opened: a bad
 * cron, an unknown command or key, or arguments the command would refuse stop the server at
 * start with the schedule and the field named.
 */
export async function prepareServeSchedules(
  configPath: string | undefined,
  env: Record<string, string | undefined>,
): Promise<SchedulesConfig> {
  const config = await loadSchedulesConfig(configPath);
  await checkScheduleCommands(config.schedules, env, configPath);
  return config;
}

/** Options of {@link startServeScheduler}. */
export interface ServeSchedulerOptions {
  dataDir: string;
  configPath?: string;
  env: Record<string, string | undefined>;
  version: string;
  /** The server's metadata store (`server.deps.store.meta`). */
  meta: MetaStore;
  clock: Clock;
  log: (line: string) => void;
  /** After each run, e.g. `() => server.deps.data.invalidate()`: the bars may have changed. */
  onRun?: () => void;
  metrics?: ScheduleMetrics;
  /** Called with the schedule names at start and after each reload that applied (metric series at 0). */
  onSchedules?: (names: string[]) => void;
  /** Called when the scheduler starts (at once, or at the reload that adds the first schedule). */
  onScheduler?: (scheduler: Scheduler) => void;
}

/** The scheduler of `serve`, started once the config has schedules or a webhook. */
export interface ServeScheduler {
  /** The running scheduler; undefined while the config has neither schedules nor `notify:`. */
  readonly scheduler: Scheduler | undefined;
  /**
   * Read the config again and apply its schedules and `notify:` (starting the scheduler when the
   * first schedule appears); a bad config is logged and not applied.
   */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The scheduler of `config` for `serve`: started now when the config has schedules or a webhook,
 * else at the first {@link ServeScheduler.reload} (SIGHUP) that adds one. `onScheduler` hears
 * when it starts, so the web pages can show it. `config` is read by {@link prepareServeSchedules}
 * before the web server opens (see `cli/serve.ts`); `stop()` comes before the server closes.
 */
export function startServeScheduler(
  config: SchedulesConfig,
  options: ServeSchedulerOptions,
): ServeScheduler {
  const { meta, clock, log } = options;
  let notifier: Notifier | undefined;
  const setNotify = (next: SchedulesConfig["notify"]) => {
    notifier = next === undefined ? undefined : createNotifier(next, {
      secrets: secretValuesOf(options.env),
      log,
      host: hostname(),
    });
  };
  let scheduler: Scheduler | undefined;
  const start = (schedules: SchedulesConfig["schedules"]) => {
    if (!hasScheduleTables(meta)) {
      throw new UsageError(
        `Cannot run schedules in ${options.dataDir}: its metadata database lacks the schedule tables; run marketpipe migrate`,
      );
    }
    scheduler = createScheduler(schedules, {
      store: createScheduleStore(meta),
      clock,
      log,
      runCommand: createCommandRunner({
        dataDir: options.dataDir,
        configPath: options.configPath,
        env: options.env,
        version: options.version,
        log,
        meta,
        now: clock,
      }),
      onRun: (run) => {
        options.metrics?.runs?.inc({ schedule: run.schedule, status: run.status });
        if (run.status !== "skipped") options.onRun?.();
      },
      onAlert: (alert) => options.metrics?.alerts?.inc({ schedule: alert.schedule }),
      // The webhook as the config says now: a reload may add, change or remove it.
      notify: (event, signal) =>
        notifier?.(event, signal) ?? Promise.resolve({ delivered: false, attempts: 0 }),
      freshness: {
        check: () => readSeriesFreshness(meta, clock()),
      },
    });
    scheduler.start();
    options.onScheduler?.(scheduler);
  };
  setNotify(config.notify);
  if (config.schedules.length > 0 || config.notify !== undefined) start(config.schedules);
  options.onSchedules?.(config.schedules.map((s) => s.name));
  return {
    get scheduler() {
      return scheduler;
    },
    async reload() {
      try {
        const next = await prepareServeSchedules(options.configPath, options.env);
        setNotify(next.notify);
        if (scheduler) scheduler.reload(next.schedules);
        else if (next.schedules.length > 0 || next.notify !== undefined) start(next.schedules);
        options.onSchedules?.(next.schedules.map((s) => s.name));
      } catch (error) {
        log(`error: cannot reload the schedules: ${errorMessage(error)}; keeping the current ones`);
      }
    },
    stop: async () => await scheduler?.stop(),
  };
}
