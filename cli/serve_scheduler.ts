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
import { createNotifier, secretValuesOf } from "../app/notify.ts";
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
  await checkScheduleCommands(config.schedules, env);
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
}

/** A started scheduler of `serve`. */
export interface ServeScheduler {
  scheduler: Scheduler;
  /** Read the config again and apply its schedules; a bad config is logged and not applied. */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start the scheduler of `config` (nothing when it has no schedules and no webhook).
 *
 * @example
 * ```ts
 * const config = await prepareServeSchedules(configPath, context.env); // before openWebServer
 * const server = await openWebServer(dataDir, options);
 * const schedules = startServeScheduler(config, { dataDir, configPath, env, version, meta: server.deps.store.meta, clock, log: context.err, onRun: () => server.deps.data.invalidate() });
 * // ... on shutdown, before server.close():
 * await schedules?.stop();
 * ```
 */
export function startServeScheduler(
  config: SchedulesConfig,
  options: ServeSchedulerOptions,
): ServeScheduler | undefined {
  if (config.schedules.length === 0 && config.notify === undefined) return undefined;
  const { meta, clock, log } = options;
  if (!hasScheduleTables(meta)) {
    throw new UsageError(
      `Cannot run schedules in ${options.dataDir}: its metadata database lacks the schedule tables; run marketpipe migrate`,
    );
  }
  const notify = config.notify === undefined ? undefined : createNotifier(config.notify, {
    secrets: secretValuesOf(options.env),
    log,
    host: hostname(),
  });
  const scheduler = createScheduler(config.schedules, {
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
    notify,
    freshness: {
      check: () => readSeriesFreshness(meta, clock()),
    },
  });
  scheduler.start();
  return {
    scheduler,
    async reload() {
      try {
        const next = await prepareServeSchedules(options.configPath, options.env);
        scheduler.reload(next.schedules);
      } catch (error) {
        log(`error: cannot reload the schedules: ${errorMessage(error)}; keeping the current ones`);
      }
    },
    stop: () => scheduler.stop(),
  };
}
