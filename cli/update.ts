import { join } from "node:path";
import { planBackfill, type PlanSettings, planUpdate, type SeriesPlan } from "../app/mod.ts";
import { tradingDays } from "../core/calendar.ts";
import { clockFromEnv } from "../core/clock.ts";
import { parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { META_FILE, MetaStore, openReadOnlyDatabase, pathExists } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { printJson } from "./format.ts";
import { compactThresholdOption, exitCodeOf, runPreparedIngest } from "./ingest.ts";
import {
  dataDirOf,
  minCoverageOption,
  parseDateOption,
  positionals,
  rangeOption,
  symbolsOption,
  timeframeOption,
  todayOf,
  validationOption,
} from "./options.ts";

/** How the planned jobs run: {@link PlanSettings} plus the compaction threshold of the store. */
export interface JobRunSettings extends PlanSettings {
  compactThreshold: number;
}

/** `--workers`, `--aggregate`, `--validation` and compaction, as `ingest` reads them. */
export function jobRunSettings(invocation: Invocation): JobRunSettings {
  return {
    workers: parseIntOption(invocation.string("workers") ?? "4", "--workers", 1, 64),
    aggregate: invocation.flag("aggregate"),
    validation: validationOption(invocation),
    compactThreshold: compactThresholdOption(invocation),
  };
}

/** `marketpipe update`: every stored series up to the last completed session. */
export async function runUpdate(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const clock = clockFromEnv(context.env);
  const symbols = await symbolsOption(invocation, { today: todayOf(context) });
  const timeframeText = invocation.string("timeframe");
  const timeframe = timeframeText === undefined ? undefined : timeframeOption(timeframeText);
  const settings = jobRunSettings(invocation);
  const plan = await withMeta(
    dataDir,
    (meta) => planUpdate(meta, { ...settings, clock, symbols, timeframe }),
  );
  if (plan.jobs.length === 0 && !context.json) {
    const last = new Map<string, string>();
    for (const { source, last: date } of plan.upToDate) {
      if (date > (last.get(source.timeframe) ?? "")) last.set(source.timeframe, date);
    }
    context.out(
      `Up to date: all ${plan.series.length} series end at the last completed session (${
        [...last].map(([timeframe, date]) => `${timeframe} ${date}`).join(", ")
      }). Nothing was written.`,
    );
    return EXIT.ok;
  }
  if (!context.json) {
    context.err(
      `Updating ${
        plan.series.length - plan.upToDate.length
      } of ${plan.series.length} series in ${plan.jobs.length} job(s)`,
    );
  }
  return await runPlannedJobs(plan, dataDir, settings, context);
}

/** `marketpipe backfill`: the missing and partial days of the gap report, and `--before`. */
export async function runBackfill(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const clock = clockFromEnv(context.env);
  const range = rangeOption(invocation);
  const symbols = await symbolsOption(invocation, { range, today: todayOf(context) });
  const timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  const beforeText = invocation.string("before");
  const before = beforeText === undefined ? undefined : parseDateOption(beforeText, "--before");
  if (before !== undefined && range !== undefined) {
    throw new UsageError(
      "Cannot combine --before with --start: --before extends each series back from its first stored session",
    );
  }
  const minCoverage = minCoverageOption(invocation);
  const settings = jobRunSettings(invocation);
  const plan = await planBackfillOf(dataDir, {
    ...settings,
    clock,
    timeframe,
    symbols,
    range,
    before,
    minCoverage,
    signal: context.signal,
  });
  if (plan.jobs.length === 0 && !context.json) {
    context.out(
      `No gaps to fill in ${plan.upToDate.length} ${timeframe} series${
        before ? `; every series already starts on or before ${before}` : ""
      }. Nothing was written.`,
    );
    return EXIT.ok;
  }
  if (!context.json) {
    const days = plan.jobs.reduce(
      (n, job) =>
        n + job.request.symbols.length * tradingDays(job.request.start, job.request.end).length,
      0,
    );
    context.err(
      `Backfilling ${days} symbol-day(s) of ${plan.series.length} ${timeframe} series in ${plan.jobs.length} job(s)`,
    );
  }
  return await runPlannedJobs(plan, dataDir, settings, context);
}

/** {@link planBackfill} over the data directory's metadata, read-only. */
export async function planBackfillOf(
  dataDir: string,
  options: Parameters<typeof planBackfill>[2],
): ReturnType<typeof planBackfill> {
  return await withMeta(dataDir, (meta) => planBackfill(dataDir, meta, options));
}

/**
 * Run planned jobs one after the other, each an ordinary ingest with its progress and summary
 * (with `--json`: one document listing every job's summary); stops at an interrupt. The exit
 * code is the worst of the jobs': interrupted, failed, partial, then ok.
 */
export async function runPlannedJobs(
  plan: SeriesPlan,
  dataDir: string,
  settings: JobRunSettings,
  context: CommandContext,
): Promise<number> {
  const summaries: unknown[] = [];
  let code: number = EXIT.ok;
  for (const job of plan.jobs) {
    if (context.signal.aborted) break;
    const lines: string[] = [];
    const jobContext = context.json
      ? { ...context, out: (line: string) => lines.push(line) }
      : context;
    const summary = await runPreparedIngest(
      { ...job, dataDir, compactThreshold: settings.compactThreshold },
      jobContext,
    );
    if (context.json) summaries.push(JSON.parse(lines.join("\n")));
    code = _worse(code, exitCodeOf(summary, context));
  }
  if (context.json) {
    printJson(context, {
      status: plan.jobs.length === 0 ? "up-to-date" : _STATUS[code] ?? "failed",
      dataDir,
      series: plan.series.length,
      upToDate: plan.upToDate.map((s) => ({
        symbol: s.symbol,
        timeframe: s.source.timeframe,
        provider: s.source.provider,
        feed: s.source.feed,
        last: s.last,
      })),
      jobs: summaries,
    });
  }
  return code;
}

/** Run `fn` over the metadata database opened read-only: planning writes nothing. */
async function withMeta<T>(dataDir: string, fn: (meta: MetaStore) => T | Promise<T>): Promise<T> {
  const path = join(dataDir, META_FILE);
  if (!(await pathExists(path))) {
    throw new UsageError(`Nothing stored in ${dataDir}: run marketpipe ingest first`);
  }
  const meta = new MetaStore(openReadOnlyDatabase(path));
  try {
    return await fn(meta);
  } finally {
    meta.close();
  }
}

const _STATUS: Record<number, string> = {
  [EXIT.ok]: "succeeded",
  [EXIT.partial]: "partial",
  [EXIT.failure]: "failed",
  [EXIT.interrupted]: "cancelled",
};

const _SEVERITY: Record<number, number> = {
  [EXIT.ok]: 0,
  [EXIT.partial]: 1,
  [EXIT.failure]: 2,
  [EXIT.interrupted]: 3,
};

function _worse(a: number, b: number): number {
  return (_SEVERITY[b] ?? 2) > (_SEVERITY[a] ?? 2) ? b : a;
}
