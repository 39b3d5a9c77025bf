import { join } from "node:path";
import { parseDuration, parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { jobJson, taskJson } from "../app/mod.ts";
import { JOB_STATUSES } from "../core/jobs.ts";
import { META_FILE, MetaStore, openExistingMigrated } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, formatDuration, formatTime, printJson, printTable } from "./format.ts";
import { choiceOption, dataDirOf, positionals, tzOption, unknownJobError } from "./options.ts";

/** Open the metadata store if the data directory has one (reaping dead jobs), else undefined. */
async function _openExisting(dataDir: string, command: string): Promise<MetaStore | undefined> {
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  if (!db) return undefined;
  const meta = new MetaStore(db, { command });
  meta.reapDeadJobs();
  return meta;
}

/** Provider parameters as `seed=3, corruptRate=0.05` (nested values as JSON). */
function _paramsText(params: Record<string, unknown>): string {
  return Object.entries(params).map(([key, value]) =>
    `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`
  ).join(", ");
}

function _symbolsText(symbols: string[]): string {
  return symbols.length <= 4
    ? symbols.join(",")
    : `${symbols.slice(0, 3).join(",")},+${symbols.length - 3}`;
}

/** `marketpipe jobs list`. */
export async function runJobsList(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const statusText = invocation.string("status");
  const status = statusText === undefined
    ? undefined
    : choiceOption(statusText, "--status", JOB_STATUSES, `one of ${JOB_STATUSES.join(" ")}`);
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 100_000);
  const tz = tzOption(invocation);
  const dataDir = dataDirOf(invocation);
  const meta = await _openExisting(dataDir, "jobs list");
  const jobs = meta ? meta.listJobs({ status, limit }) : [];
  meta?.close();
  if (context.json) {
    printJson(context, jobs.map(jobJson));
    return EXIT.ok;
  }
  if (jobs.length === 0) {
    context.out(meta ? "No jobs match." : `No jobs yet: ${dataDir} has no metadata database.`);
    return EXIT.ok;
  }
  const rows = jobs.map((job) => [
    job.id,
    job.status,
    job.provider,
    job.timeframe,
    _symbolsText(job.symbols),
    `${job.start}..${job.end}`,
    formatCount(job.barsWritten),
    formatTime(job.createdAt, tz),
    job.startedAt && job.finishedAt ? formatDuration(job.finishedAt - job.startedAt) : "-",
  ]);
  printTable(
    context,
    ["id", "status", "provider", "tf", "symbols", "dates", "bars", "created", "took"],
    rows,
    { right: [6] },
  );
  return EXIT.ok;
}

/** `marketpipe jobs show ID`. */
export async function runJobsShow(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const [id] = positionals(invocation, ["JOB_ID"]);
  const tz = tzOption(invocation);
  const dataDir = dataDirOf(invocation);
  const meta = await _openExisting(dataDir, "jobs show");
  if (!meta) throw new UsageError(`No job "${id}": ${dataDir} has no metadata database`);
  try {
    const job = meta.getJob(id);
    if (!job) {
      throw unknownJobError(id, dataDir, meta.listJobs({ limit: 1_000_000 }).map((j) => j.id));
    }
    const tasks = meta.listTasks(job.id);
    if (context.json) {
      printJson(context, { ...jobJson(job), tasks: tasks.map(taskJson) });
      return EXIT.ok;
    }
    const count = (status: string) => tasks.filter((t) => t.status === status).length;
    context.out(`Job ${job.id}: ${job.status}`);
    context.out(
      `  provider:   ${job.provider} (feed ${job.feed}, adjustment ${job.adjustment})`,
    );
    if (Object.keys(job.params).length) context.out(`  params:     ${_paramsText(job.params)}`);
    context.out(`  timeframe:  ${job.timeframe}`);
    context.out(`  dates:      ${job.start}..${job.end}`);
    context.out(`  symbols:    ${job.symbols.join(",")}`);
    context.out(`  created:    ${formatTime(job.createdAt, tz)}`);
    context.out(`  started:    ${formatTime(job.startedAt, tz)}`);
    context.out(
      `  finished:   ${formatTime(job.finishedAt, tz)}${
        job.startedAt && job.finishedAt
          ? ` (${formatDuration(job.finishedAt - job.startedAt)})`
          : ""
      }`,
    );
    context.out(`  bars:       ${formatCount(job.barsWritten)} new`);
    context.out(
      `  tasks:      ${tasks.length} total, ${count("done")} done, ${count("failed")} failed, ${
        count("pending")
      } pending, ${count("running")} running`,
    );
    if (job.error) context.out(`  error:      ${job.error}`);
    context.out("");
    printTable(
      context,
      [
        "#",
        "symbol",
        "dates",
        "days",
        "status",
        "tries",
        "fetched",
        "new",
        "updated",
        "took",
        "error",
      ],
      // Numbered from 1 like the progress log (seq is 0-based).
      tasks.map((t) => [
        t.seq + 1,
        t.symbol,
        `${t.start}..${t.end}`,
        t.days,
        t.status,
        t.attempts,
        formatCount(t.barsFetched),
        formatCount(t.barsWritten),
        formatCount(t.barsReplaced),
        t.startedAt && t.finishedAt ? formatDuration(t.finishedAt - t.startedAt) : "-",
        t.error ?? "",
      ]),
      { right: [0, 3, 5, 6, 7, 8] },
    );
    return EXIT.ok;
  } finally {
    meta.close();
  }
}

/** `marketpipe jobs cleanup --older-than 30d [--dry-run]`. */
export async function runJobsCleanup(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const age = parseDuration(invocation.string("older-than") ?? "30d", "--older-than");
  const dryRun = invocation.flag("dry-run");
  const tz = tzOption(invocation);
  const dataDir = dataDirOf(invocation);
  const meta = await _openExisting(dataDir, "jobs cleanup");
  if (!meta) {
    context.out(`No jobs yet: ${dataDir} has no metadata database.`);
    return EXIT.ok;
  }
  try {
    const jobs = meta.deleteJobsBefore(Date.now() - age, { dryRun });
    if (context.json) {
      context.out(JSON.stringify({ dryRun, deleted: jobs.map((j) => j.id) }));
      return EXIT.ok;
    }
    for (const job of jobs) {
      context.out(
        `${dryRun ? "would delete" : "deleted"} ${job.id} (${job.status}, ${
          formatTime(job.createdAt, tz)
        })`,
      );
    }
    context.out(
      `${dryRun ? "Would delete" : "Deleted"} ${jobs.length} finished job(s) older than ${
        invocation.string("older-than") ?? "30d"
      }; stored bars and coverage are kept.`,
    );
    return EXIT.ok;
  } finally {
    meta.close();
  }
}
