import { isValidDate, tradingDays, weekday } from "../core/calendar.ts";
import { parseIntOption, parseNumberOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import { ingest, type IngestRequest, type IngestSummary } from "../core/ingest.ts";
import {
  createValidator,
  RULE_IDS,
  VALIDATION_RULES,
  type ValidationSettings,
} from "../core/validate.ts";
import { parseSymbols, parseSymbolsFile } from "../core/symbols.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { PROVIDER_NAMES, type ProviderFactory, providerFactory } from "../providers/mod.ts";
import {
  aggregateIngested,
  type AggregationSummary,
  openStore,
  openTelemetry,
} from "../storage/mod.ts";
import { aggregationJson, printAggregation } from "./aggregate.ts";
import { historyDirOf } from "./metrics.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, formatDuration, progressReporter, renderTable } from "./format.ts";
import { dataDirOf, parseDateOption, positionals } from "./options.ts";
import { validationOption } from "./validate.ts";

const _WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** A checked ingest request plus the provider that serves it. */
export interface PreparedIngest {
  request: IngestRequest;
  factory: ProviderFactory;
  dataDir: string;
  /** Requests per minute override for HTTP providers. */
  rateLimit?: number;
  /** Validation rule settings (`--validation`, config `validation.rules`); default: all rules. */
  validation?: ValidationSettings;
  /** Aggregate the touched 1m partitions afterwards (`--aggregate`). */
  aggregate?: boolean;
}

/** Ingest options as text, keyed by their long flag names: from flags, a config file or HTTP. */
export interface IngestInput {
  provider?: string;
  /** Comma- or space-separated text, or a list. */
  symbols?: string | readonly string[];
  start?: string;
  end?: string;
  timeframe?: string;
  workers?: string;
  "batch-size"?: string;
  "rate-limit"?: string;
  feed?: string;
  adjustment?: string;
  force?: boolean;
  resume?: string;
  "fake-seed"?: string;
  "fake-gap-rate"?: string;
  "fake-corrupt-rate"?: string;
}

/** The text options of {@link IngestInput}. */
export const INGEST_INPUT_NAMES = [
  "provider",
  "start",
  "end",
  "timeframe",
  "workers",
  "batch-size",
  "rate-limit",
  "feed",
  "adjustment",
  "resume",
  "fake-seed",
  "fake-gap-rate",
  "fake-corrupt-rate",
] as const;

/** Options of {@link buildIngestRequest}. */
export interface BuildIngestOptions {
  /** How an option is named in messages: `--start` by default; the HTTP API says `start`. */
  label?: (name: string) => string;
  /** Called for a resume request once its id is checked (the CLI refuses flags the job records). */
  onResume?: () => void;
  /** Supplies the symbols instead of `input.symbols` (the CLI reads `--symbols-file` here). */
  readSymbols?: () => Promise<string[]>;
}

/**
 * Validate every ingest option before anything is written: provider, symbols, dates, timeframe,
 * workers, feed and provider options. Throws {@link UsageError} naming the bad value. The one
 * request builder of the CLI and the HTTP API.
 */
export async function buildIngestRequest(
  input: IngestInput,
  options: BuildIngestOptions = {},
): Promise<Omit<PreparedIngest, "dataDir">> {
  const label = options.label ?? ((name: string) => `--${name}`);
  const providerName = (input.provider ?? "fake").toLowerCase();
  const factory = providerFactory(providerName);
  if (!factory) {
    throw new UsageError(
      `Unknown provider "${providerName}"${
        didYouMean(providerName, PROVIDER_NAMES)
      }: expected one of ${PROVIDER_NAMES.join(", ")}`,
    );
  }
  const info = factory.info;
  const workers = parseIntOption(input.workers ?? "4", label("workers"), 1, 64);
  const batchText = input["batch-size"];
  const batchSize = batchText === undefined
    ? undefined
    : parseIntOption(batchText, label("batch-size"), 1, 50_000);
  const rateText = input["rate-limit"];
  const rateLimit = rateText === undefined
    ? undefined
    : parseIntOption(rateText, label("rate-limit"), 1, 1_000_000);
  const resume = input.resume;
  const params: Record<string, number> = {};
  if (providerName === "fake") {
    params.seed = parseIntOption(input["fake-seed"] ?? "0", label("fake-seed"), 0, 2 ** 31 - 1);
    params.gapRate = parseNumberOption(
      input["fake-gap-rate"] ?? "0.01",
      label("fake-gap-rate"),
      0,
      1,
      true,
    );
    const corruptRate = parseNumberOption(
      input["fake-corrupt-rate"] ?? "0",
      label("fake-corrupt-rate"),
      0,
      0.5,
    );
    // Only a corrupting run records the rate, so clean runs keep their coverage and job keys.
    if (corruptRate > 0) params.corruptRate = corruptRate;
  }
  if (resume !== undefined) {
    if (!/^[\w-]{4,64}$/.test(resume)) {
      throw new UsageError(
        `Invalid ${label("resume")} "${resume}": expected a job id like 20241125-191500-ab12`,
      );
    }
    options.onResume?.();
    return {
      factory,
      rateLimit,
      request: {
        provider: providerName,
        feed: "",
        adjustment: "",
        timeframe: "1m",
        symbols: [],
        start: "",
        end: "",
        params,
        workers,
        batchSize,
        force: false,
        resumeJobId: resume,
      },
    };
  }

  let symbols: string[];
  if (options.readSymbols) {
    symbols = await options.readSymbols();
  } else if (input.symbols !== undefined) {
    symbols = parseSymbols(input.symbols, label("symbols"));
  } else {
    throw new UsageError(
      `Missing ${label("symbols")}: which symbols to ingest, e.g. AAPL,MSFT`,
    );
  }
  if (symbols.length > 10_000) {
    throw new UsageError(`Too many symbols (${symbols.length}): expected at most 10000 per job`);
  }

  const startText = input.start;
  if (startText === undefined) {
    throw new UsageError(`Missing ${label("start")}: the first trading date, YYYY-MM-DD`);
  }
  const start = parseDateOption(startText, label("start"));
  const end = parseDateOption(input.end ?? start, label("end"));
  if (start > end) {
    throw new UsageError(
      `Invalid range: ${label("start")} ${start} is after ${label("end")} ${end}`,
    );
  }
  _checkCalendarYear(start, label("start"));
  _checkCalendarYear(end, label("end"));
  if (tradingDays(start, end).length === 0) {
    const what = start === end
      ? `${start} is a ${_WEEKDAYS[weekday(start)]}${
        weekday(start) % 6 === 0 ? "" : " and an NYSE holiday"
      }`
      : `${start}..${end} has none`;
    throw new UsageError(
      `No trading days in ${label("start")} ${start} ${label("end")} ${end}: ${what}`,
    );
  }

  const timeframeText = input.timeframe ?? "1m";
  if (!(TIMEFRAMES as readonly string[]).includes(timeframeText)) {
    throw new UsageError(
      `Invalid ${label("timeframe")} "${timeframeText}"${
        didYouMean(timeframeText, TIMEFRAMES)
      }: expected one of ${TIMEFRAMES.join(" ")}`,
    );
  }
  const timeframe = timeframeText as Timeframe;
  if (!info.timeframes.includes(timeframe)) {
    throw new UsageError(
      `Provider "${providerName}" does not serve ${
        label("timeframe")
      } ${timeframe}: expected one of ${info.timeframes.join(" ")}`,
    );
  }
  const feed = (input.feed ?? info.defaultFeed).toLowerCase();
  if (!info.feeds.includes(feed)) {
    throw new UsageError(
      `Invalid ${label("feed")} "${feed}" for provider "${providerName}"${
        didYouMean(feed, info.feeds)
      }: expected one of ${info.feeds.join(", ")}`,
    );
  }
  const adjustment = (input.adjustment ?? info.adjustments[0]).toLowerCase();
  if (!info.adjustments.includes(adjustment)) {
    throw new UsageError(
      `Invalid ${
        label("adjustment")
      } "${adjustment}" for provider "${providerName}": expected one of ${
        info.adjustments.join(", ")
      }`,
    );
  }
  return {
    factory,
    rateLimit,
    request: {
      provider: providerName,
      feed,
      adjustment,
      timeframe,
      symbols,
      start,
      end,
      params,
      workers,
      batchSize,
      force: input.force ?? false,
    },
  };
}

/**
 * Validate every ingest option of the command line before anything is written (see
 * {@link buildIngestRequest}); also reads `--symbols-file`.
 */
export async function prepareIngest(invocation: Invocation): Promise<PreparedIngest> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const input: IngestInput = { force: invocation.flag("force") };
  for (const name of INGEST_INPUT_NAMES) input[name] = invocation.string(name);
  const built = await buildIngestRequest(input, {
    onResume: () => {
      for (const name of ["symbols", "symbols-file", "start", "end"]) {
        if (invocation.options.sources[name] === "flag") {
          throw new UsageError(
            `Cannot combine --resume with --${name}: the job already records it`,
          );
        }
      }
    },
    readSymbols: async () => {
      const symbolsText = invocation.string("symbols");
      const symbolsFile = invocation.string("symbols-file");
      if (symbolsText !== undefined && symbolsFile !== undefined) {
        throw new UsageError("Use either --symbols or --symbols-file, not both");
      }
      if (symbolsFile !== undefined) {
        let text: string;
        try {
          text = await Deno.readTextFile(symbolsFile);
        } catch (error) {
          throw new UsageError(
            `Cannot read --symbols-file ${symbolsFile}: ${(error as Error).message}`,
            { cause: error },
          );
        }
        return parseSymbolsFile(text, symbolsFile);
      }
      if (symbolsText !== undefined) return parseSymbols(symbolsText);
      throw new UsageError(
        "Missing --symbols (or --symbols-file): which symbols to ingest, e.g. --symbols AAPL,MSFT",
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
  return { dataDir, ...built, validation: validationOption(invocation), aggregate };
}

function _checkCalendarYear(date: string, name: string): void {
  const year = Number(date.slice(0, 4));
  if (!isValidDate(date) || year < 1990 || year > 2100) {
    throw new UsageError(`Invalid ${name} ${date}: expected a date from 1990-01-01 to 2100-12-31`);
  }
}

/** `marketpipe ingest`. */
export async function runIngest(invocation: Invocation, context: CommandContext): Promise<number> {
  const prepared = await prepareIngest(invocation);
  // Provider credentials and source options are refused before the data directory is touched.
  prepared.factory.check?.(
    { env: context.env, params: prepared.request.params, rateLimit: prepared.rateLimit },
    prepared.request.resumeJobId === undefined ? prepared.request : undefined,
  );
  const summary = await runPreparedIngest(prepared, context);
  return exitCodeOf(summary, context);
}

/** Exit code of an ingest: 0 done, 3 partial, 1 failed, 130 interrupted. */
export function exitCodeOf(summary: IngestSummary, context: CommandContext): number {
  if (summary.status === "cancelled" || context.signal.aborted) return EXIT.interrupted;
  if (summary.status === "partial") return EXIT.partial;
  if (summary.status === "failed") return EXIT.failure;
  return EXIT.ok;
}

/** Open the store, run the ingest with progress, print the summary. */
export async function runPreparedIngest(
  prepared: PreparedIngest,
  context: CommandContext,
): Promise<IngestSummary> {
  const { request, dataDir } = prepared;
  const store = await openStore(dataDir, { command: "ingest" });
  let closeTelemetry = () => Promise.resolve();
  try {
    if (store.applied.length > 0 && context.verbose) {
      context.err(`Applied ${store.applied.length} metadata migration(s) in ${dataDir}`);
    }
    let jobParams = request.params;
    if (request.resumeJobId) {
      const job = store.getJob(request.resumeJobId);
      if (!job) {
        throw new UsageError(
          `Cannot resume job "${request.resumeJobId}": no such job in ${dataDir}`,
        );
      }
      const jobFactory = providerFactory(job.provider);
      if (!jobFactory) {
        throw new UsageError(`Cannot resume job "${job.id}": unknown provider "${job.provider}"`);
      }
      jobParams = job.params as Record<string, number>;
      request.resumeJobId = job.id;
      prepared = { ...prepared, factory: jobFactory };
    }
    const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
    closeTelemetry = () => telemetry.close();
    const metrics = telemetry.metrics;
    const provider = prepared.factory.create({
      env: context.env,
      params: jobParams,
      metrics,
      rateLimit: prepared.rateLimit,
    });
    const validator = createValidator({ rules: prepared.validation, metrics });
    const report = progressReporter({ status: context.status, err: context.err });
    const summary = await ingest({ provider, store, validator, metrics }, request, {
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
            `task ${task.seq} ${task.symbol} ${task.start}..${task.end}: ${
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
    });
    let aggregation: AggregationSummary | undefined;
    const job = summary.job;
    const timeframe = job?.timeframe ?? request.timeframe;
    if (prepared.aggregate && !context.signal.aborted && summary.status !== "failed") {
      if (timeframe !== "1m") {
        context.err(`Not aggregating: aggregation rolls up 1m bars, this ingest is ${timeframe}`);
      } else {
        const report = progressReporter({ status: context.status, err: context.err });
        const started = Date.now();
        // The same roll-up as web jobs with `aggregate: true`.
        aggregation = await aggregateIngested(store, job ?? request, {
          metrics,
          signal: context.signal,
          onProgress: (done, total) =>
            report(done, total, `${done}/${total} partition(s) checked`, Date.now() - started),
        });
      }
    }
    printSummary(summary, request, dataDir, context, aggregation);
    return summary;
  } finally {
    await closeTelemetry();
    store.close();
  }
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
    context.out(JSON.stringify(
      {
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
      },
      null,
      2,
    ));
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
  if (summary.status === "up-to-date") {
    const days = summary.symbols.reduce((n, s) => n + s.daysSkipped, 0);
    context.out(
      `Nothing to do: all ${formatCount(days)} symbol-day(s) of ${
        request.symbols.join(",")
      } ${request.start}..${request.end} ` +
        `are already stored from ${request.provider}/${request.feed} (use --force to fetch them again). Nothing was written.`,
    );
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
    s.tasksFailed === 0 ? "ok" : `FAILED: ${s.errors.join("; ")}`,
  ]);
  for (
    const line of renderTable(
      ["symbol", "new bars", "updated", "days", "days skipped", "status"],
      rows,
      {
        right: [1, 2, 3, 4],
      },
    )
  ) context.out(line);
  const job = summary.job!;
  const failedSymbols = summary.symbols.filter((s) => s.tasksFailed > 0).length;
  const verdict = {
    succeeded: "succeeded",
    partial: `finished partially: ${failedSymbols} symbol(s) failed`,
    failed: "failed",
    cancelled: `was interrupted; resume it with: marketpipe ingest --resume ${job.id}`,
    running: "is still running",
    pending: "is pending",
  }[job.status];
  context.out("");
  context.out(
    `Job ${job.id} ${verdict}. ${formatCount(summary.barsWritten)} new and ${
      formatCount(summary.barsReplaced)
    } updated bar(s) in ${formatDuration(summary.elapsedMs)} under ${dataDir}/bars`,
  );
  if (job.status === "succeeded" || job.status === "partial") {
    context.out(
      `Query them: marketpipe query "SELECT symbol, count(*) FROM bars_${job.timeframe} GROUP BY symbol"${
        dataDir === "./data" || dataDir === "data" ? "" : ` --data-dir ${dataDir}`
      }`,
    );
  }
  if (job.status === "partial" || job.status === "failed") {
    context.out(`Retry the failed tasks: marketpipe ingest --resume ${job.id}`);
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
      `Audit them: marketpipe validate ${job.id}${
        dataDir === "./data" || dataDir === "data" ? "" : ` --data-dir ${dataDir}`
      }`,
    );
  }
  printAfter();
}
