import { clockFromEnv, includesExtendedHours, lastCompletedSession } from "../core/clock.ts";
import { UsageError } from "../core/errors.ts";
import { tradingDayRuns } from "../core/validate_gaps.ts";
import { findStoredGaps, type StoredGaps } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, printJson, printTable, renderTable } from "./format.ts";
import {
  choiceOption,
  dataDirOf,
  minCoverageOption,
  positionals,
  rangeOption,
  symbolsOption,
  timeframeOption,
  todayOf,
} from "./options.ts";
import { jobRunSettings, planBackfillOf, runPlannedJobs } from "./update.ts";

/**
 * `marketpipe gaps`: trading days without bars, or with too little of their regular session,
 * over `--start`/`--end` or each symbol's own stored range; `--fill` fetches them first.
 */
export async function runGaps(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const clock = clockFromEnv(context.env);
  const range = rangeOption(invocation);
  const timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  const minCoverage = minCoverageOption(invocation);
  const failOnText = invocation.string("fail-on");
  const failOn = failOnText === undefined
    ? undefined
    : choiceOption(failOnText, "--fail-on", ["missing", "partial"], "missing or partial");
  // The fill is `backfill` with the same selection; its options are checked with the others,
  // with or without --fill, so a bad value is refused before anything is read.
  const settings = jobRunSettings(invocation);
  const symbols = await symbolsOption(invocation, { range, today: todayOf(context) });
  const explicit = symbols !== undefined;
  let code: number = EXIT.ok;
  if (invocation.flag("fill")) {
    // The report below is judged after the fill.
    const plan = await planBackfillOf(dataDir, {
      ...settings,
      clock,
      timeframe,
      symbols,
      range,
      minCoverage,
      signal: context.signal,
    });
    if (plan.jobs.length > 0) {
      code = await runPlannedJobs(plan, dataDir, settings, {
        ...context,
        json: false,
        out: context.json ? context.err : context.out,
      });
      if (code !== EXIT.ok) return code;
      context.out("");
    }
  }
  const results = await findStoredGaps(dataDir, {
    timeframe,
    symbols,
    range,
    until: lastCompletedSession(clock(), { extendedHours: includesExtendedHours(timeframe) }),
    minCoverage,
    signal: context.signal,
  });
  if (results.length === 0) {
    throw new UsageError(
      `Missing --symbols: ${dataDir} holds no ${timeframe} bars to find symbols from`,
    );
  }
  const failed = failOn !== undefined &&
    results.some((r) => r.missing.length > 0 || (failOn === "partial" && r.lowCoverage.length > 0));
  if (failed) code = EXIT.failure;

  if (context.json) {
    printJson(context, {
      dataDir,
      timeframe,
      start: range?.start ?? null,
      end: range?.end ?? null,
      minCoverage,
      symbols: results.map(_symbolJson),
    });
    return code;
  }
  const intraday = timeframe !== "1d";
  printTable(
    context,
    [
      "symbol",
      ...(range ? [] : ["judged"]),
      "trading days",
      "with data",
      "missing",
      ...(intraday ? [`< ${_percent(minCoverage)} regular`] : []),
      "known empty",
    ],
    results.map((r) => [
      r.symbol,
      ...(range ? [] : [r.start === undefined ? "nothing stored" : `${r.start}..${r.end}`]),
      formatCount(r.tradingDays),
      formatCount(r.daysWithData),
      formatCount(r.missing.length),
      ...(intraday ? [formatCount(r.lowCoverage.length)] : []),
      formatCount(r.knownEmpty.length),
    ]),
    { right: (intraday ? [1, 2, 3, 4, 5] : [1, 2, 3, 4]).map((i) => range ? i : i + 1) },
  );
  const listed = results.filter((r) => r.listing !== undefined);
  if (listed.length > 0) {
    context.out("");
    context.out("Judged within their listing (symbol master; days outside are not gaps):");
    for (const r of listed) {
      context.out(
        `  ${r.symbol}: listed ${r.listing!.start ?? "(unknown)"}${
          r.listing!.end !== null ? `, delisted ${r.listing!.end}` : ""
        }`,
      );
    }
  }
  const missing = results.filter((r) => r.missing.length > 0);
  if (missing.length > 0) {
    context.out("");
    context.out("Missing days (no bars):");
    for (const r of missing) context.out(`  ${r.symbol}: ${tradingDayRuns(r.missing).join(", ")}`);
  }
  const low = results.filter((r) => r.lowCoverage.length > 0);
  if (low.length > 0) {
    context.out("");
    context.out(`Regular session covered below ${_percent(minCoverage)}:`);
    for (
      const line of renderTable(
        ["symbol", "date", "bars", "of", "coverage"],
        low.flatMap((r) =>
          r.lowCoverage.map((d) => [
            r.symbol,
            d.date,
            formatCount(d.regularBars),
            formatCount(d.expected),
            _percent(d.coverage),
          ])
        ),
        { right: [2, 3, 4] },
      )
    ) context.out(`  ${line}`);
  }
  const empty = results.filter((r) => r.knownEmpty.length > 0);
  if (empty.length > 0) {
    context.out("");
    context.out("Known empty (the provider answered with no bars; not gaps):");
    for (const r of empty) {
      context.out(`  ${r.symbol}: ${tradingDayRuns(r.knownEmpty).join(", ")}`);
    }
  }
  if (missing.length === 0 && low.length === 0) {
    context.out("");
    context.out(
      `No gaps: every trading day of ${
        range ? `${range.start}..${range.end}` : "each symbol's stored range"
      } has ${timeframe} bars${
        intraday ? ` covering at least ${_percent(minCoverage)} of the regular session` : ""
      } for ${explicit ? "the symbols asked" : `all ${results.length} stored symbol(s)`}.`,
    );
  }
  if (failed) {
    context.err(`Gaps found (--fail-on ${failOn}): exit 1`);
  }
  return code;
}

/** The gap report's JSON shape of one symbol (coverage rounded to 4 decimals). */
function _symbolJson(r: StoredGaps) {
  return {
    ...r,
    start: r.start ?? null,
    end: r.end ?? null,
    lowCoverage: r.lowCoverage.map((d) => ({
      ...d,
      coverage: Math.round(d.coverage * 10_000) / 10_000,
    })),
  };
}

function _percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}
