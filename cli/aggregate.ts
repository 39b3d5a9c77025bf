import { join } from "node:path";
import { didYouMean, UsageError } from "../core/errors.ts";
import { isTimeframe, type Timeframe } from "../core/types.ts";
import {
  AGGREGATE_TIMEFRAMES,
  aggregatePartitions,
  type AggregationSummary,
  META_FILE,
  openStore,
  openTelemetry,
  pathExists,
  timeframeDir,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import {
  dataDirArgs,
  formatCount,
  formatDuration,
  printJson,
  printTable,
  progressReporter,
  shellCommand,
} from "./format.ts";
import {
  dataDirOf,
  historyDirOf,
  positionals,
  rangeOption,
  sessionOption,
  symbolsOption,
  todayOf,
} from "./options.ts";

/** Parse `--timeframes 5m,1h,1d` (default: every timeframe above 1m). */
export function timeframesOption(text: string | undefined): Timeframe[] {
  if (text === undefined || text.trim() === "") return [...AGGREGATE_TIMEFRAMES];
  const out: Timeframe[] = [];
  for (const raw of text.split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    if (part === "1m") {
      throw new UsageError(
        `Invalid --timeframes "1m": aggregation rolls 1m bars up to ${
          AGGREGATE_TIMEFRAMES.join(",")
        }`,
      );
    }
    if (!isTimeframe(part) || !AGGREGATE_TIMEFRAMES.includes(part)) {
      throw new UsageError(
        `Invalid --timeframes "${part}"${
          didYouMean(part, AGGREGATE_TIMEFRAMES)
        }: expected some of ${AGGREGATE_TIMEFRAMES.join(",")} (aggregation rolls up 1m bars)`,
      );
    }
    if (!out.includes(part)) out.push(part);
  }
  if (out.length === 0) {
    throw new UsageError(`Invalid --timeframes "${text}": expected e.g. 5m,1h,1d`);
  }
  return AGGREGATE_TIMEFRAMES.filter((tf) => out.includes(tf));
}

/** The aggregation summary as JSON. */
export function aggregationJson(summary: AggregationSummary) {
  return {
    runId: summary.runId,
    symbols: summary.symbols,
    sources: summary.sources,
    rebuilt: summary.rebuilt,
    upToDate: summary.upToDate,
    elapsedMs: Math.round(summary.elapsedMs),
    timeframes: summary.timeframes,
  };
}

/** Print the per-timeframe table of an aggregation. */
export function printAggregation(summary: AggregationSummary, context: CommandContext): void {
  printTable(
    context,
    ["timeframe", "rebuilt", "up to date", "bars written", "provider bars kept"],
    summary.timeframes.map((t) => [
      t.timeframe,
      formatCount(t.rebuilt),
      formatCount(t.upToDate),
      formatCount(t.bars),
      formatCount(t.providerBars),
    ]),
    { right: [1, 2, 3, 4] },
  );
}

/** `marketpipe aggregate`. */
export async function runAggregate(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const timeframes = timeframesOption(invocation.string("timeframes"));
  const range = rangeOption(invocation);
  const symbols = await symbolsOption(invocation, { range, today: todayOf(context) });
  const session = sessionOption(invocation);
  if (!(await pathExists(join(dataDir, META_FILE)))) {
    throw new UsageError(
      `Nothing to aggregate: ${dataDir} holds no MarketPipe data (ingest first)`,
    );
  }
  const store = await openStore(dataDir, { command: "aggregate" });
  let closeTelemetry = () => Promise.resolve();
  try {
    const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
    closeTelemetry = () => telemetry.close();
    const report = progressReporter({ status: context.status, err: context.err });
    const started = Date.now();
    const summary = await aggregatePartitions(
      { dataDir: store.dataDir, duckdb: await store.duckdb(), meta: store.meta },
      {
        timeframes,
        symbols,
        start: range?.start,
        end: range?.end,
        session,
        force: invocation.flag("force"),
        metrics: telemetry.metrics,
        signal: context.signal,
        onProgress: (done, total) =>
          report(done, total, `${done}/${total} partition(s) checked`, Date.now() - started),
      },
    );
    if (context.json) {
      printJson(context, { dataDir, ...aggregationJson(summary) });
      return EXIT.ok;
    }
    if (summary.sources === 0) {
      context.out(
        `Nothing to aggregate: no 1m bars${symbols ? ` of ${symbols.join(",")}` : ""}${
          range ? ` in ${range.start}..${range.end}` : ""
        } under ${timeframeDir(dataDir, "1m")}`,
      );
      return EXIT.ok;
    }
    printAggregation(summary, context);
    context.out("");
    context.out(
      summary.rebuilt === 0
        ? `All ${
          formatCount(summary.upToDate)
        } partition(s) were up to date with their 1m bars; nothing was written.`
        : `Rebuilt ${formatCount(summary.rebuilt)} partition(s) from ${
          formatCount(summary.sources)
        } 1m partition(s) of ${summary.symbols.length} symbol(s) in ${
          formatDuration(summary.elapsedMs)
        }; ${formatCount(summary.upToDate)} were up to date.`,
    );
    context.out(
      `Query them: ${
        shellCommand([
          "marketpipe",
          "query",
          `SELECT * FROM bars_${timeframes.at(-1)} ORDER BY symbol, ts`,
          ...dataDirArgs(dataDir),
        ])
      }`,
    );
    return EXIT.ok;
  } finally {
    await closeTelemetry();
    store.close();
  }
}
