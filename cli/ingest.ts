import { join } from "node:path";
import { planJob, runJob } from "../app/mod.ts";
import { parseIntOption } from "../core/config.ts";
import { exchangeDate, tradingDays } from "../core/calendar.ts";
import { type Clock, clockFromEnv, systemClock } from "../core/clock.ts";
import { UsageError } from "../core/errors.ts";
import type { IngestRequest, IngestSummary } from "../core/ingest.ts";
import { RULE_IDS, VALIDATION_RULES } from "../core/validate.ts";
import {
  buildIngestRequest,
  INGEST_INPUT_NAMES,
  type IngestInput,
  type PreparedIngest,
} from "../providers/ingest_request.ts";
import {
  type AggregationSummary,
  DEFAULT_COMPACT_THRESHOLD,
  META_FILE,
  MetaStore,
  openReadOnlyDatabase,
  openStore,
  openTelemetry,
  pathExists,
} from "../storage/mod.ts";
import { aggregationJson, printAggregation } from "./aggregate.ts";
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
  ambiguousJobError,
  dataDirOf,
  historyDirOf,
  positionals,
  rangeOption,
  SELECTION_RANGE_OPTIONS,
  symbolsOption,
  validationOption,
} from "./options.ts";

/** An ingest as the command runs it: the prepared ingest, where to store it and when to compact. */
export interface CommandIngest extends PreparedIngest {
  dataDir: string;
  /** Compact a partition once a write leaves it with this many files (0: never). */
  compactThreshold?: number;
  /** Decides which sessions have closed (`MARKETPIPE_NOW` in tests); default: system clock. */
  clock?: Clock;
}

/**
 * Validate every ingest option of the command line before anything is written (see
 * {@link buildIngestRequest}); also reads `--symbols-file`.
 */
export async function prepareIngest(
  invocation: Invocation,
  clock?: Clock,
): Promise<CommandIngest> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const input: IngestInput = { force: invocation.flag("force") };
  for (const name of INGEST_INPUT_NAMES) input[name] = invocation.string(name);
  const built = await buildIngestRequest(input, {
    clock,
    onResume: () => {
      for (const { name } of SELECTION_RANGE_OPTIONS) {
        if (invocation.options.sources[name] === "flag") {
          throw new UsageError(
            `Cannot combine --resume with --${name}: the job already records it`,
          );
        }
      }
    },
    readSymbols: async () => {
      // A universe's members at any time in the range asked for.
      const symbols = await symbolsOption(invocation, {
        range: rangeOption(invocation),
        today: exchangeDate((clock ?? systemClock)()),
      });
      if (symbols !== undefined) return symbols;
      throw new UsageError(
        "Missing --symbols (or --symbols-file, --universe): which symbols to ingest, e.g. --symbols AAPL,MSFT",
      );
    },
  });
  const aggregate = invocation.flag("aggregate");
  if (
    aggregate && invocation.options.sources.aggregate === "flag" &&
    built.request.resumeJobId === undefined && built.request.timeframe !== "1m"
  ) {
    throw new UsageError(
      `Cannot --aggregate a ${built.request.timeframe} ingest: aggregation rolls up 1m bars`,
    );
  }
  const compactThreshold = compactThresholdOption(invocation);
  return {
    dataDir,
    ...built,
    validation: validationOption(invocation),
    aggregate,
    compactThreshold,
    clock,
  };
}

/** `--compact-threshold N` (0: never), or 0 with `--no-compact`. */
export function compactThresholdOption(invocation: Invocation): number {
  return !invocation.flag("compact") ? 0 : parseIntOption(
    invocation.string("compact-threshold") ?? String(DEFAULT_COMPACT_THRESHOLD),
    "--compact-threshold",
    0,
    100_000,
  );
}

/** Refuse `--resume` of a job that does not exist before anything is created or migrated. */
async function _checkResumable(dataDir: string, jobId: string): Promise<void> {
  const path = join(dataDir, META_FILE);
  if (!(await pathExists(path))) {
    throw new UsageError(`Cannot resume job "${jobId}": ${dataDir} has no jobs yet`);
  }
  const meta = new MetaStore(openReadOnlyDatabase(path));
  try {
    if (!meta.getJob(jobId)) {
      const ids = meta.listJobs({ limit: 1_000_000 }).map((j) => j.id);
      throw ambiguousJobError(jobId, ids) ?? new UsageError(
        `Cannot resume job "${jobId}": no such job in ${dataDir}; see marketpipe jobs list`,
      );
    }
  } finally {
    meta.close();
  }
}

/** `marketpipe ingest`. */
export async function runIngest(invocation: Invocation, context: CommandContext): Promise<number> {
  const prepared = await prepareIngest(invocation, clockFromEnv(context.env));
  // Provider credentials and source options are refused before the data directory is touched.
  prepared.factory.check?.(
    { env: context.env, params: prepared.request.params, rateLimit: prepared.rateLimit },
    prepared.request.resumeJobId === undefined ? prepared.request : undefined,
  );
  return exitCodeOf(await runPreparedIngest(prepared, context), context);
}

/** Exit code of an ingest: 0 done, 3 partial, 1 failed, 130 interrupted. */
export function exitCodeOf(summary: IngestSummary, context: CommandContext): number {
  if (summary.status === "cancelled" || context.signal.aborted) return EXIT.interrupted;
  if (summary.status === "partial") return EXIT.partial;
  if (summary.status === "failed") return EXIT.failure;
  return EXIT.ok;
}

/** Open the store, run the job with progress, print the summary. */
export async function runPreparedIngest(
  prepared: CommandIngest,
  context: CommandContext,
): Promise<IngestSummary> {
  const { request, dataDir } = prepared;
  if (prepared.notice) context.err(prepared.notice);
  if (request.resumeJobId) await _checkResumable(dataDir, request.resumeJobId);
  const store = await openStore(dataDir, {
    command: "ingest",
    compactThreshold: prepared.compactThreshold,
    // Workers write at once, each its own statement, so they keep the cores busy. A DuckDB
    // background thread would only make each statement's own thread poll for work while the
    // bars are handed over from JS: measured on 2 cores, 0.8x the CPU and 0.92x the wall time.
    threads: request.workers > 1 ? 1 : undefined,
  });
  let closeTelemetry = () => Promise.resolve();
  let failed = false;
  try {
    if (store.applied.length > 0 && context.verbose) {
      context.err(`Applied ${store.applied.length} metadata migration(s) in ${dataDir}`);
    }
    const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
    closeTelemetry = () => telemetry.close();
    const plan = planJob(
      { store, env: context.env, metrics: telemetry.metrics, clock: prepared.clock },
      prepared,
    );
    const report = progressReporter({ status: context.status, err: context.err });
    const reportAggregation = progressReporter({ status: context.status, err: context.err });
    let aggregateStarted = 0;
    // The bar ends with a newline before anything else is printed, also after Ctrl-C or an error.
    const finishProgress = () => {
      report.finish();
      reportAggregation.finish();
    };
    const { summary, aggregation, notAggregated } = await runJob(plan, {
      signal: context.signal,
      onStart: ({ job, resumed, tasksTotal, tasksLeft }) => {
        const days = tradingDays(job.start, job.end).length;
        context.err(
          `${
            resumed ? "Resuming" : "Starting"
          } job ${job.id}: ${job.symbols.length} symbol(s) x ${days} trading day(s) ` +
            `${job.start}..${job.end}, ${job.timeframe} bars from ${job.provider} (feed ${job.feed}), ` +
            `${tasksLeft} of ${tasksTotal} task(s) to run on ${
              Math.min(request.workers, Math.max(tasksLeft, 1))
            } worker(s)`,
        );
      },
      onTask: context.verbose
        ? ({ task, result, error, elapsedMs }) =>
          context.err(
            `task ${task.seq + 1} ${task.symbol} ${task.start}..${task.end}: ${
              error
                ? `failed: ${error}`
                : `${formatCount(result!.barsFetched)} fetched, ${
                  formatCount(result!.barsWritten)
                } new, ${formatCount(result!.barsReplaced)} updated`
            } (${formatDuration(elapsedMs)})`,
          )
        : undefined,
      onProgress: (p) => {
        const rate = p.elapsedMs > 0 ? p.barsWritten / (p.elapsedMs / 1000) : 0;
        report(
          p.tasksDone + p.tasksFailed,
          p.tasksTotal,
          `${p.symbolsDone}/${p.symbolsTotal} symbols, ${formatCount(p.barsWritten)} bars, ${
            formatCount(rate)
          } bars/s${p.tasksFailed ? `, ${p.tasksFailed} task(s) failed` : ""}`,
          p.elapsedMs,
        );
      },
      onAggregateStart: () => {
        report.finish();
        aggregateStarted = Date.now();
      },
      onAggregateProgress: (done, total) =>
        reportAggregation(
          done,
          total,
          `${done}/${total} partition(s) checked`,
          Date.now() - aggregateStarted,
        ),
    }).finally(finishProgress);
    if (notAggregated) context.err(`Not aggregating: ${notAggregated}`);
    // The plan's request: with the listing windows the summary's notes name.
    printSummary(summary, plan.request, dataDir, context, aggregation);
    return summary;
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await _closeAll(failed, closeTelemetry, () => store.close());
  }
}

/**
 * Run every closer. Closing writes too (metric totals, the process row): on a full disk that
 * fails as well, and after a failure (`failed`) must not replace the error that says why the
 * ingest stopped; otherwise the first close error is thrown once all have run.
 */
async function _closeAll(
  failed: boolean,
  ...closers: (() => void | Promise<void>)[]
): Promise<void> {
  let first: { error: unknown } | undefined;
  for (const close of closers) {
    try {
      await close();
    } catch (error) {
      first ??= { error };
    }
  }
  if (first && !failed) throw first.error;
}

function printSummary(
  summary: IngestSummary,
  request: IngestRequest,
  dataDir: string,
  context: CommandContext,
  aggregation?: AggregationSummary,
): void {
  const quarantined: Record<string, number> = {};
  const findings: Record<string, number> = {};
  for (const symbol of summary.symbols) {
    for (const [rule, n] of Object.entries(symbol.findings)) {
      const severity = VALIDATION_RULES.find((r) => r.id === rule)?.severity;
      const into = severity === "error" ? quarantined : findings;
      into[rule] = (into[rule] ?? 0) + n;
    }
  }
  if (context.json) {
    printJson(context, {
      status: summary.status,
      job: summary.job
        ? { id: summary.job.id, status: summary.job.status, error: summary.job.error }
        : null,
      resumed: summary.resumed,
      tasks: summary.tasksTotal,
      barsFetched: summary.barsFetched,
      barsWritten: summary.barsWritten,
      barsReplaced: summary.barsReplaced,
      elapsedMs: Math.round(summary.elapsedMs),
      dataDir,
      barsQuarantined: summary.symbols.reduce((n, s) => n + s.barsQuarantined, 0),
      quarantined,
      findings,
      aggregation: aggregation ? aggregationJson(aggregation) : null,
      symbols: summary.symbols,
    });
    return;
  }
  const printAfter = () => {
    if (aggregation) {
      context.out("");
      context.out(
        `Aggregated: ${aggregation.rebuilt} partition(s) rebuilt, ${aggregation.upToDate} up to date.`,
      );
      printAggregation(aggregation, context);
    }
  };
  const unlisted = summary.symbols.filter((s) => s.daysUnlisted > 0);
  const printUnlisted = () => {
    for (const s of unlisted) {
      const window = request.windows?.get(s.symbol);
      context.out(
        `${s.symbol}: ${formatCount(s.daysUnlisted)} trading day(s) outside its listing${
          window
            ? ` (${
              [
                window.start === null ? "" : `listed ${window.start}`,
                window.end === null ? "" : `delisted ${window.end}`,
              ].filter((part) => part !== "").join(", ")
            })`
            : ""
        } not fetched (symbol master)`,
      );
    }
  };
  if (summary.status === "up-to-date") {
    const days = summary.symbols.reduce((n, s) => n + s.daysSkipped, 0);
    if (days === 0 && unlisted.length > 0) {
      context.out(
        `Nothing to do: no trading day of ${
          request.symbols.join(",")
        } ${request.start}..${request.end} ` +
          `is inside its listing. Nothing was written.`,
      );
    } else {
      context.out(
        `Nothing to do: all ${formatCount(days)} symbol-day(s) of ${
          request.symbols.join(",")
        } ${request.start}..${request.end} ` +
          `are already stored from ${request.provider}/${request.feed} (use --force to fetch them again). Nothing was written.`,
      );
    }
    printUnlisted();
    printAfter();
    return;
  }
  if (summary.status === "succeeded" && summary.tasksAlreadyDone === summary.tasksTotal) {
    context.out(`Job ${summary.job!.id} had already succeeded; nothing was written.`);
    printAfter();
    return;
  }
  const rows = summary.symbols.map((s) => [
    s.symbol,
    formatCount(s.barsWritten),
    formatCount(s.barsReplaced),
    formatCount(s.daysFetched),
    formatCount(s.daysSkipped),
    s.status === "ok"
      ? "ok"
      : s.status === "pending"
      ? `not finished: ${s.tasksPending} task(s) left`
      : `${s.status === "partial" ? "PARTIAL" : "FAILED"}: ${s.errors.join("; ")}`,
  ]);
  printTable(context, ["symbol", "new bars", "updated", "days", "days skipped", "status"], rows, {
    right: [1, 2, 3, 4],
  });
  printUnlisted();
  const job = summary.job!;
  const failedSymbols = summary.symbols.filter((s) => s.tasksFailed > 0).length;
  const dirArgs = dataDirArgs(dataDir);
  const resume = shellCommand(["marketpipe", "ingest", "--resume", job.id, ...dirArgs]);
  const verdict = {
    succeeded: "succeeded",
    partial: `finished partially: ${failedSymbols} symbol(s) failed`,
    failed: "failed",
    cancelled: "was interrupted",
    running: "is still running",
    pending: "is pending",
  }[job.status];
  context.out("");
  context.out(
    `Job ${job.id} ${verdict}. ${formatCount(summary.barsWritten)} new and ${
      formatCount(summary.barsReplaced)
    } updated bar(s) in ${formatDuration(summary.elapsedMs)} under ${dataDir}/bars`,
  );
  // On a line of its own, so that it copies without the sentence's punctuation.
  if (job.status === "cancelled") context.out(`Resume it: ${resume}`);
  if (summary.resumed && summary.tasksAlreadyDone > 0) {
    context.out(
      `(Totals include ${summary.tasksAlreadyDone} of ${summary.tasksTotal} task(s) finished by earlier runs of this job.)`,
    );
  }
  if (job.status === "succeeded" || job.status === "partial") {
    context.out(
      `Query them: ${
        shellCommand([
          "marketpipe",
          "query",
          `SELECT symbol, count(*) FROM bars_${job.timeframe} GROUP BY symbol`,
          ...dirArgs,
        ])
      }`,
    );
  }
  if (job.status === "partial" || job.status === "failed") {
    // A retry cannot get past a stored file that does not read: point to repair instead.
    const corrupt = summary.symbols.flatMap((s) => s.corruptFiles);
    const otherFailures = summary.symbols.some((s) => s.tasksFailed > s.corruptFiles.length);
    if (corrupt.length > 0) {
      context.out(
        `${corrupt.length} stored file(s) cannot be read and were left untouched. Move them aside to ${dataDir}/corrupt/ (their days become missing): ${
          shellCommand(["marketpipe", "repair", "--move", ...dirArgs])
        }, then run this ingest again`,
      );
    }
    if (corrupt.length === 0 || otherFailures) {
      context.out(`Retry the failed tasks: ${resume}`);
    }
  }
  const byRule = (counts: Record<string, number>) =>
    Object.entries(counts).sort(([a], [b]) => RULE_IDS.indexOf(a) - RULE_IDS.indexOf(b))
      .map(([rule, n]) => `${rule} ${formatCount(n)}`).join(", ");
  const quarantinedTotal = Object.values(quarantined).reduce((a, b) => a + b, 0);
  if (quarantinedTotal > 0) {
    context.out(
      `Quarantined ${
        formatCount(quarantinedTotal)
      } bar(s) that broke an error rule (not stored in bars/; under ${dataDir}/quarantine): ${
        byRule(quarantined)
      }`,
    );
  }
  if (Object.keys(findings).length > 0) {
    context.out(`Stored with warnings or notes: ${byRule(findings)}`);
  }
  if (quarantinedTotal > 0 || Object.keys(findings).length > 0) {
    context.out(
      `Audit them: ${shellCommand(["marketpipe", "validate", job.id, ...dirArgs])}`,
    );
  }
  printAfter();
}
