/**
 * Everything `marketpipe serve` opens for one data directory, wired into an app, with one
 * shutdown that cancels running jobs resumably and closes the databases.
 *
 * @module
 */
import type { Hono } from "hono";
import { clockFromEnv } from "../core/clock.ts";
import type { Metrics } from "../core/metrics.ts";
import { makeExportDir, openStore, openTelemetry } from "../storage/mod.ts";
import { createApp } from "./app.ts";
import type { AppDeps, AppLimits, ValidationSource } from "./context.ts";
import { openDataSource } from "./data.ts";
import { createJobRunner, type JobRunner } from "./jobs.ts";
import { storedValidationReports } from "./validation.ts";

/** Options of {@link openWebServer}. */
export interface WebServerOptions {
  /** Version shown in pages and the OpenAPI document. */
  version: string;
  /** Environment for provider credentials. */
  env: Record<string, string | undefined>;
  /** MARKETPIPE_API_TOKEN. */
  token?: string;
  authReads?: boolean;
  /** Refuse non-loopback Host headers (set when listening on loopback). */
  loopbackHostsOnly?: boolean;
  limits?: Partial<AppLimits>;
  /** Jobs that may run at once in the server. Default 2. */
  maxJobs?: number;
  /** Where the metric history lives (PROMETHEUS_MULTIPROC_DIR), if not in the data directory. */
  historyDir?: string;
  /** Also emit the original tool's `mp_*_legacy_*` series on `/metrics`. */
  legacyMetrics?: boolean;
  /** DuckDB worker threads of the read side (default: all cores). */
  threads?: number;
  /** Memory and spill limits of the read side's DuckDB, such as `"4GB"` (default: see storage/). */
  memoryLimit?: string;
  tempLimit?: string;
  /** Defaults of jobs started from the web (`aggregate`: roll 1m bars up afterwards). */
  ingestDefaults?: { aggregate?: boolean };
  /** Validation reports (default: those `marketpipe validate` stored in the data directory). */
  validation?: ValidationSource;
  log?: (line: string) => void;
  /** One line per request (method, path with secrets masked, status, bytes, ms); default none. */
  accessLog?: (line: string) => void;
}

/** An opened server: the app and how to stop it. */
export interface WebServer {
  app: Hono;
  /** The process's metrics (for the scheduler `serve` starts beside the app). */
  metrics: Metrics;
  deps: AppDeps;
  jobs: JobRunner;
  /** Whether shutdown has begun. */
  readonly shuttingDown: boolean;
  /** Cancels running jobs (they stay resumable) and waits for them; returns the ids cancelled. */
  stopJobs(): Promise<string[]>;
  /** Stops jobs, then closes the engine, telemetry and metadata store. */
  close(): Promise<void>;
}

/**
 * Opens the store, telemetry, query engine and job runner of `dataDir` and builds the app.
 *
 * @example
 * ```ts
 * const server = await openWebServer("./data", { version: "0.1.0", env: {} });
 * try {
 *   const response = await server.app.request("/healthz");
 * } finally {
 *   await server.close();
 * }
 * ```
 */
export async function openWebServer(
  dataDir: string,
  options: WebServerOptions,
): Promise<WebServer> {
  // What is not the server's own goes to the app as it is (version, token, limits, ...).
  const { env, maxJobs, historyDir, legacyMetrics, threads, memoryLimit, tempLimit, ...shared } =
    options;
  // A malformed MARKETPIPE_NOW is refused before the data directory is touched.
  const clock = clockFromEnv(env);
  const store = await openStore(dataDir, { command: "serve" });
  const cleanups: (() => void | Promise<void>)[] = [() => store.close()];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step();
  };
  try {
    const telemetry = await openTelemetry(dataDir, { historyDir, env, sessionClock: clock });
    cleanups.push(() => telemetry.close());
    // Named after this process, so the next server removes it if this one is killed.
    const exportDir = await makeExportDir();
    cleanups.push(() => Deno.remove(exportDir, { recursive: true }).catch(() => {}));
    const data = await openDataSource(dataDir, store.meta, {
      exportDir,
      threads,
      memoryLimit,
      tempLimit,
      clock,
    });
    cleanups.push(() => data.close());
    store.meta.reapDeadJobs();
    const jobs = createJobRunner({
      store,
      metrics: telemetry.metrics,
      env,
      clock,
      maxJobs,
      onFinish: () => data.invalidate(),
      onError: (error) => options.log?.(`error: job failed: ${(error as Error).message}`),
    });
    let shuttingDown = false;
    let stopping: Promise<string[]> | undefined;
    const stopJobs = () => {
      shuttingDown = true;
      stopping ??= (async () => {
        const ids = jobs.running();
        await jobs.shutdown();
        return ids;
      })();
      return stopping;
    };
    const deps: AppDeps = {
      ...shared,
      store,
      data,
      jobs,
      scrapeMetrics: () => telemetry.scrape({ legacy: legacyMetrics }),
      validation: shared.validation ?? storedValidationReports(dataDir, store.meta),
      clock,
      shuttingDown: () => shuttingDown,
    };
    const app = createApp(deps);
    return {
      app,
      metrics: telemetry.metrics,
      deps,
      jobs,
      get shuttingDown() {
        return shuttingDown;
      },
      stopJobs,
      async close() {
        await stopJobs();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
