import { parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { initialiseScheduleSeries } from "../core/metrics.ts";
import { isLoopback, listen, openWebServer } from "../web/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { dataDirArgs, shellCommand } from "./format.ts";
import { dataDirOf, historyDirOf, positionals, queryEngineLimits } from "./options.ts";
import { configPathOf } from "./schedule_runner.ts";
import {
  prepareServeSchedules,
  type ServeScheduler,
  startServeScheduler,
} from "./serve_scheduler.ts";

/**
 * `marketpipe serve`: the dashboard, REST API and metrics on one port. Ctrl-C or SIGTERM stops
 * accepting requests, cancels the jobs it runs (they stay resumable), waits for requests in
 * flight and exits 0.
 */
export async function runServe(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const host = invocation.string("host") ?? "127.0.0.1";
  if (host.trim() === "" || /[\s/]/.test(host)) {
    throw new UsageError(`Invalid --host "${host}": expected an address such as 127.0.0.1`);
  }
  const port = parseIntOption(invocation.string("port") ?? "8000", "--port", 0, 65_535);
  const maxHeavy = parseIntOption(invocation.string("max-heavy") ?? "4", "--max-heavy", 1, 256);
  const maxJobs = parseIntOption(invocation.string("max-jobs") ?? "2", "--max-jobs", 1, 64);
  const queryTimeout = parseIntOption(
    invocation.string("query-timeout") ?? "30",
    "--query-timeout",
    1,
    3_600,
  );
  const token = context.env.MARKETPIPE_API_TOKEN?.trim() || undefined;
  const loopback = isLoopback(host);
  if (!loopback && token === undefined) {
    throw new UsageError(
      `Refusing to listen on ${host} without MARKETPIPE_API_TOKEN: anyone who can reach it could start jobs. Set MARKETPIPE_API_TOKEN (clients send "Authorization: Bearer <token>") or listen on 127.0.0.1`,
    );
  }
  const authReads = invocation.flag("auth-reads");
  if (authReads && token === undefined) {
    throw new UsageError("--auth-reads needs MARKETPIPE_API_TOKEN: the token reads would require");
  }
  if (token !== undefined && token.length < 16) {
    context.err(
      "warning: MARKETPIPE_API_TOKEN is shorter than 16 characters; use a long random token",
    );
  }

  // A bad schedule (cron, command, key, arguments) stops the server before anything is opened.
  const configPath = configPathOf(invocation);
  const scheduleConfig = await prepareServeSchedules(configPath, context.env);
  const server = await openWebServer(dataDir, {
    version: context.version,
    env: context.env,
    token,
    authReads,
    loopbackHostsOnly: loopback,
    limits: { heavyConcurrency: maxHeavy, queryTimeoutMs: queryTimeout * 1000 },
    maxJobs,
    historyDir: historyDirOf(context),
    legacyMetrics: invocation.flag("legacy-metrics"),
    ingestDefaults: { aggregate: invocation.flag("aggregate") },
    log: context.err,
    accessLog: invocation.flag("quiet") ? undefined : context.err,
    ...queryEngineLimits(invocation),
  });
  let schedules: ServeScheduler | undefined;
  const reload = () => void schedules?.reload();
  const hangUp = Deno.build.os !== "windows";
  try {
    schedules = startServeScheduler(scheduleConfig, {
      dataDir,
      configPath,
      env: context.env,
      version: context.version,
      meta: server.deps.store.meta,
      clock: server.deps.clock ?? Date.now,
      log: context.err,
      onRun: () => server.deps.data.invalidate(),
      metrics: { runs: server.metrics.scheduleRuns, alerts: server.metrics.scheduleAlerts },
      // Every schedule's series exist at 0 from the scrape after it is read (start or SIGHUP).
      onSchedules: (names) => initialiseScheduleSeries(server.metrics, names),
      onScheduler: (scheduler) => server.deps.scheduler = scheduler,
    });
    // SIGHUP reads the config file's schedules and notify: again (a bad one is logged, not
    // applied); the first schedule added this way starts the scheduler.
    if (hangUp) Deno.addSignalListener("SIGHUP", reload);
    let cancelled: Promise<string[]> | undefined;
    const onAbort = () => {
      void schedules?.stop();
      cancelled = server.stopJobs();
    };
    context.signal.addEventListener("abort", onAbort, { once: true });
    const http = listen(server.app, {
      hostname: host,
      port,
      signal: context.signal,
      onListen: ({ hostname, port }) => {
        const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
        context.out(`Serving MarketPipe on http://${shown}:${port}/ (data: ${dataDir})`);
        context.err(
          `${
            token === undefined
              ? "no token: loopback only"
              : `token required for ${authReads ? "every request" : "POST and DELETE"}`
          }; Ctrl-C to stop`,
        );
      },
    });
    await http.finished;
    context.signal.removeEventListener("abort", onAbort);
    const ids = await (cancelled ?? server.stopJobs());
    for (const id of ids) {
      context.err(
        `Cancelled job ${id}; resume it with: ${
          shellCommand(["marketpipe", "ingest", "--resume", id, ...dataDirArgs(dataDir)])
        }`,
      );
    }
    context.err("Stopped");
  } finally {
    if (hangUp) Deno.removeSignalListener("SIGHUP", reload);
    await schedules?.stop();
    await server.close();
  }
  return EXIT.ok;
}
