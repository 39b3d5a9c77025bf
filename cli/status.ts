/**
 * `marketpipe status`: is the data fresh and are the schedules healthy? Stale series (behind
 * the last session the calendar says should be stored), schedules whose last run failed, and
 * which server runs the schedules; `--fail-on stale|failed` exits 1, for monitoring.
 *
 * @module
 */
import { join } from "node:path";
import { clockFromEnv } from "../core/clock.ts";
import { parseDuration } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { formatZoned } from "../core/schedule.ts";
import { readStatus, statusJson } from "../app/status.ts";
import { META_FILE, MetaStore, openExistingMigrated } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { printJson, renderTable } from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";
import { configPathOf, loadSchedulesConfig } from "./schedule_runner.ts";

const _FAIL_ON = ["stale", "failed"] as const;

/** `marketpipe status`. */
export async function runStatus(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const failOn = new Set(
    (invocation.string("fail-on") ?? "").split(",").map((p) => p.trim()).filter((p) => p !== ""),
  );
  if ([...failOn].some((part) => !(_FAIL_ON as readonly string[]).includes(part))) {
    throw new UsageError(
      `Invalid --fail-on "${invocation.string("fail-on")}": expected stale, failed or stale,failed`,
    );
  }
  const graceMs = parseDuration(invocation.string("grace") ?? "0m", "--grace");
  const { schedules } = await loadSchedulesConfig(configPathOf(invocation));
  const dataDir = dataDirOf(invocation);
  const now = clockFromEnv(context.env)();
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  if (!db) {
    throw new UsageError(`Nothing stored in ${dataDir}: run marketpipe ingest first`);
  }
  const meta = new MetaStore(db, { command: "status" });
  let report;
  try {
    report = readStatus(meta, {
      now,
      schedules: schedules.length > 0 ? schedules : undefined,
      graceMs,
    });
  } finally {
    meta.close();
  }
  const failing = report.schedules.filter((s) => s.failing);
  if (context.json) {
    printJson(context, statusJson(report));
  } else {
    context.out(
      `Series: ${report.series.length}, ${report.stale.length} stale (as of ${formatZoned(now)})`,
    );
    if (report.stale.length > 0) {
      const rows = report.stale.map((s) => [
        s.symbol,
        s.timeframe,
        s.last,
        s.expected ?? "-",
        String(s.missedSessions),
        s.staleSince === null ? "-" : formatZoned(s.staleSince),
      ]);
      for (
        const line of renderTable(
          ["symbol", "tf", "last", "expected", "behind", "stale since"],
          rows,
          { right: [4] },
        )
      ) context.out(`  ${line}`);
    }
    context.out(
      `Schedules: ${report.schedules.length}, ${failing.length} failing`,
    );
    if (report.schedules.length > 0) {
      const rows = report.schedules.map((s) => [
        s.name,
        s.lastRun?.status ?? "never run",
        s.lastRun ? formatZoned(s.lastRun.plannedAt) : "-",
        s.lastRun ? String(s.lastRun.attempt) : "-",
        s.lastRun?.error ?? "",
      ]);
      for (
        const line of renderTable(["schedule", "last run", "planned", "try", "error"], rows)
      ) context.out(`  ${line}`);
    }
    context.out(
      report.scheduler
        ? `Scheduler: pid ${report.scheduler.pid} on ${report.scheduler.hostname}`
        : "Scheduler: no server holds the schedule lease",
    );
  }
  const bad = (failOn.has("stale") && report.stale.length > 0) ||
    (failOn.has("failed") && failing.length > 0);
  return bad ? EXIT.failure : EXIT.ok;
}
