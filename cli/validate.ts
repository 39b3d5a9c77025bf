import { join } from "node:path";
import { tradingDays } from "../core/calendar.ts";
import { parseIntOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import type { JobRecord } from "../core/jobs.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import {
  effectiveRules,
  type Finding,
  parseValidationSettings,
  RULE_IDS,
  type Severity,
  validateBars,
  VALIDATION_RULES,
  type ValidationSettings,
} from "../core/validate.ts";
import { crossCheckBars } from "../core/validate_cross.ts";
import {
  findValidationReport,
  listPartitionFiles,
  listValidationReports,
  META_FILE,
  openExistingMigrated,
  openStore,
  openTelemetry,
  pathExists,
  readBarRows,
  readCrossCheckBars,
  readDayCounts,
  readQuarantine,
  readValidationReport,
  type ReportRow,
  saveValidationReport,
  type Store,
  timeframeDir,
  type ValidationReportRecord,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import {
  dataDirArgs,
  formatCount,
  formatDuration,
  formatTime,
  renderTable,
  shellCommand,
} from "./format.ts";
import { historyDirOf } from "./metrics.ts";
import { dataDirOf, parseDateOption, positionals, symbolsOption } from "./options.ts";

/** `--start`/`--end` as a checked range (end defaults to start), or undefined when unset. */
export function rangeOption(
  invocation: Invocation,
  options: { required?: boolean } = {},
): { start: string; end: string } | undefined {
  const startText = invocation.string("start");
  const endText = invocation.string("end");
  if (startText === undefined) {
    if (endText !== undefined) throw new UsageError("Missing --start: --end needs a first date");
    if (options.required) {
      throw new UsageError("Missing --start: the first trading date, YYYY-MM-DD");
    }
    return undefined;
  }
  const start = parseDateOption(startText, "--start");
  const end = parseDateOption(endText ?? start, "--end");
  if (start > end) throw new UsageError(`Invalid range: --start ${start} is after --end ${end}`);
  for (const [date, name] of [[start, "--start"], [end, "--end"]]) {
    const year = Number(date.slice(0, 4));
    if (year < 1990 || year > 2100) {
      throw new UsageError(
        `Invalid ${name} ${date}: expected a date from 1990-01-01 to 2100-12-31`,
      );
    }
  }
  return { start, end };
}

/** A timeframe option checked against {@link TIMEFRAMES}. */
export function timeframeOption(text: string, name = "--timeframe"): Timeframe {
  if (!isTimeframe(text)) {
    throw new UsageError(
      `Invalid ${name} "${text}"${didYouMean(text, TIMEFRAMES)}: expected one of ${
        TIMEFRAMES.join(" ")
      }`,
    );
  }
  return text;
}

/** `--session regular|extended`. */
export function sessionOption(invocation: Invocation): "regular" | "extended" | undefined {
  const text = invocation.string("session");
  if (text === undefined) return undefined;
  if (text !== "regular" && text !== "extended") {
    throw new UsageError(
      `Invalid --session "${text}"${
        didYouMean(text, ["regular", "extended"])
      }: expected regular or extended`,
    );
  }
  return text;
}

/** Rule settings from `--validation` (or the config file's `validation:` mapping). */
export function validationOption(invocation: Invocation): ValidationSettings {
  const text = invocation.string("validation");
  if (text === undefined) return {};
  const source = invocation.options.sources.validation === "config"
    ? "config key validation"
    : "--validation";
  return parseValidationSettings(text, source);
}

/** `marketpipe validate`: re-check stored bars, list or show reports, list the rules. */
export async function runValidate(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const modes = ["list", "rules"].filter((name) => invocation.flag(name));
  if (invocation.string("show") !== undefined) modes.push("show");
  if (modes.length > 1) {
    throw new UsageError(`Use one of --${modes.join(", --")}, not several`);
  }
  const mode = modes[0];
  if (mode !== undefined) {
    const excluded = ["symbols", "symbols-file", "start", "end", "cross-check"];
    // --show sets its exit code from the report shown; --list and --rules check nothing.
    if (mode !== "show") excluded.push("fail-on");
    for (const name of excluded) {
      if (invocation.options.sources[name] === "flag") {
        throw new UsageError(`Cannot combine --${mode} with --${name}`);
      }
    }
  }
  if (mode === "rules") {
    positionals(invocation, []);
    return _printRules(validationOption(invocation), context);
  }
  if (mode === "list") {
    positionals(invocation, []);
    return await _listReports(invocation, context);
  }
  if (mode === "show") {
    positionals(invocation, []);
    return await _showReport(invocation, context);
  }
  return await _validate(invocation, context);
}

function _printRules(settings: ValidationSettings, context: CommandContext): number {
  const rules = effectiveRules(settings);
  if (context.json) {
    context.out(JSON.stringify(
      rules.map((r) => ({
        id: r.id,
        severity: r.severity,
        enabled: r.enabled,
        threshold: r.threshold ?? null,
        thresholdMeaning: r.thresholdMeaning ?? null,
        description: r.description,
      })),
      null,
      2,
    ));
    return EXIT.ok;
  }
  for (
    const line of renderTable(
      ["rule", "severity", "on", "threshold", "checks that"],
      rules.map((r) => [
        r.id,
        r.severity,
        r.enabled ? "yes" : "no",
        r.threshold === undefined ? "-" : String(r.threshold),
        r.threshold === undefined ? r.description : `${r.description} [${r.thresholdMeaning}]`,
      ]),
    )
  ) context.out(line);
  context.out("");
  context.out(
    "Errors are quarantined during ingest (<data>/quarantine/), warnings and info only reported.",
  );
  context.out(
    "Change a rule with --validation RULE.enabled=false,RULE.threshold=N or in the config file:",
  );
  context.out("  validation: { rules: { extreme_move: { threshold: 0.3 } } }");
  return EXIT.ok;
}

function _reportJson(record: ValidationReportRecord, dataDir: string) {
  return {
    id: record.id,
    createdAt: new Date(record.createdAt).toISOString(),
    jobId: record.jobId,
    timeframe: record.timeframe,
    symbols: record.symbols,
    start: record.start,
    end: record.end,
    crossCheck: record.crossCheck,
    bars: record.bars,
    errors: record.errors,
    warnings: record.warnings,
    infos: record.infos,
    quarantined: record.quarantined,
    rules: record.rules,
    settings: record.settings,
    path: join(dataDir, record.path),
  };
}

async function _listReports(invocation: Invocation, context: CommandContext): Promise<number> {
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 100_000);
  const dataDir = dataDirOf(invocation);
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  const reports = db ? listValidationReports(db, { limit }) : [];
  db?.close();
  if (context.json) {
    context.out(JSON.stringify(reports.map((r) => _reportJson(r, dataDir)), null, 2));
    return EXIT.ok;
  }
  if (reports.length === 0) {
    context.out(`No validation reports in ${dataDir}; create one with marketpipe validate`);
    return EXIT.ok;
  }
  for (
    const line of renderTable(
      ["report", "created", "job", "tf", "symbols", "dates", "bars", "errors", "warn", "info"],
      reports.map((r) => [
        r.id,
        formatTime(r.createdAt),
        r.jobId ?? "-",
        r.timeframe,
        r.symbols.length <= 3
          ? r.symbols.join(",")
          : `${r.symbols.slice(0, 2).join(",")},+${r.symbols.length - 2}`,
        `${r.start}..${r.end}`,
        formatCount(r.bars),
        formatCount(r.errors),
        formatCount(r.warnings),
        formatCount(r.infos),
      ]),
      { right: [6, 7, 8, 9] },
    )
  ) context.out(line);
  return EXIT.ok;
}

async function _showReport(invocation: Invocation, context: CommandContext): Promise<number> {
  const ref = invocation.string("show")!;
  const failOn = _failOnOption(invocation);
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 10_000_000);
  const dataDir = dataDirOf(invocation);
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  if (!db) throw new UsageError(`No report "${ref}": ${dataDir} has no metadata database`);
  let record: ValidationReportRecord | undefined;
  try {
    record = findValidationReport(db, ref, {
      onAmbiguous: (ids) => {
        throw new UsageError(
          `Ambiguous report "${ref}": ${
            ids.length === 10 ? "10 or more" : ids.length
          } report ids start with it (${ids.join(", ")}); give more of the id`,
        );
      },
    });
  } finally {
    db.close();
  }
  if (!record) {
    throw new UsageError(
      `No validation report "${ref}" in ${dataDir}; see marketpipe validate --list`,
    );
  }
  const rows = await readValidationReport(dataDir, record);
  if (context.json) {
    context.out(JSON.stringify(
      {
        ..._reportJson(record, dataDir),
        failOn: failOn ?? null,
        failed: _fails(record, failOn),
        rows,
      },
      null,
      2,
    ));
    return _failExit(record, failOn, context);
  }
  _printReportHeader(record, dataDir, context);
  _printRuleSummary(rows, context);
  if (rows.length > 0) {
    context.out("");
    context.out(
      rows.length > limit ? `First ${limit} of ${formatCount(rows.length)} findings:` : "Findings:",
    );
    for (
      const line of renderTable(
        ["symbol", "ts", "rule", "severity", "detail"],
        rows.slice(0, limit).map((r) => [r.symbol, r.ts, r.rule, r.severity, r.detail]),
      )
    ) context.out(line);
    if (rows.length > limit) {
      context.out(`... ${formatCount(rows.length - limit)} more (--limit N)`);
    }
  }
  return _failExit(record, failOn, context);
}

/** `--fail-on warn|error`, checked; undefined when unset. */
function _failOnOption(invocation: Invocation): "warn" | "error" | undefined {
  const text = invocation.string("fail-on");
  if (text !== undefined && text !== "warn" && text !== "error") {
    throw new UsageError(
      `Invalid --fail-on "${text}"${didYouMean(text, ["warn", "error"])}: expected warn or error`,
    );
  }
  return text;
}

/** Whether `record` has findings at or above `failOn`. */
function _fails(
  record: Pick<ValidationReportRecord, "errors" | "warnings">,
  failOn: "warn" | "error" | undefined,
): boolean {
  return failOn === "error"
    ? record.errors > 0
    : failOn === "warn"
    ? record.errors + record.warnings > 0
    : false;
}

/** The exit code `--fail-on` gives `record`, saying why on stderr when it fails. */
function _failExit(
  record: Pick<ValidationReportRecord, "id" | "errors" | "warnings">,
  failOn: "warn" | "error" | undefined,
  context: CommandContext,
): number {
  if (!_fails(record, failOn)) return EXIT.ok;
  context.err(
    `Failing (--fail-on ${failOn}): ${
      failOn === "error"
        ? `${record.errors} error(s)`
        : `${record.errors} error(s) and ${record.warnings} warning(s)`
    } in report ${record.id}`,
  );
  return EXIT.failure;
}

function _printReportHeader(
  record: ValidationReportRecord,
  dataDir: string,
  context: CommandContext,
): void {
  context.out(`Report ${record.id} (${formatTime(record.createdAt)})`);
  context.out(
    `  ${record.jobId ? `job ${record.jobId}, ` : ""}${record.timeframe} bars of ${
      record.symbols.join(",")
    } ${record.start}..${record.end}${record.crossCheck ? ", with cross-check" : ""}`,
  );
  context.out(
    `  ${formatCount(record.bars)} stored bar(s) checked: ${formatCount(record.errors)} error(s) (${
      formatCount(record.quarantined)
    } quarantined), ${formatCount(record.warnings)} warning(s), ${formatCount(record.infos)} info`,
  );
  context.out(`  CSV files: ${join(dataDir, record.path)}/`);
}

function _printRuleSummary(
  rows: readonly Pick<ReportRow, "rule" | "severity">[],
  context: CommandContext,
): void {
  if (rows.length === 0) {
    context.out("");
    context.out("No findings.");
    return;
  }
  const counts = new Map<string, { severity: string; n: number }>();
  for (const row of rows) {
    const entry = counts.get(row.rule) ?? { severity: row.severity, n: 0 };
    entry.n++;
    counts.set(row.rule, entry);
  }
  const order = (rule: string) => {
    const i = RULE_IDS.indexOf(rule);
    return i < 0 ? RULE_IDS.length : i;
  };
  context.out("");
  for (
    const line of renderTable(
      ["rule", "severity", "findings"],
      [...counts].sort(([a], [b]) => order(a) - order(b)).map((
        [rule, { severity, n }],
      ) => [rule, severity, formatCount(n)]),
      { right: [2] },
    )
  ) context.out(line);
}

async function _validate(invocation: Invocation, context: CommandContext): Promise<number> {
  const [jobRef] = invocation.positionals;
  if (invocation.positionals.length > 1) positionals(invocation, ["JOB_ID"]);
  const dataDir = dataDirOf(invocation);
  const settings = validationOption(invocation);
  const rules = effectiveRules(settings);
  const disabled = new Set(rules.filter((r) => !r.enabled).map((r) => r.id));
  const failOn = _failOnOption(invocation);
  const crossCheck = invocation.flag("cross-check");
  const session = sessionOption(invocation);
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 10_000_000);
  let symbols: string[] | undefined;
  let range: { start: string; end: string } | undefined;
  let timeframe: Timeframe | undefined;
  if (jobRef !== undefined) {
    if (!/^[\w-]{4,64}$/.test(jobRef)) {
      throw new UsageError(
        `Invalid JOB_ID "${jobRef}": expected a job id like 20241125-191500-ab12`,
      );
    }
    for (const name of ["symbols", "symbols-file", "start", "end"]) {
      if (invocation.options.sources[name] === "flag") {
        throw new UsageError(`Cannot combine JOB_ID with --${name}: the job records it`);
      }
    }
    if (invocation.options.sources.timeframe === "flag") {
      throw new UsageError("Cannot combine JOB_ID with --timeframe: the job records it");
    }
  } else {
    symbols = await symbolsOption(invocation);
    if (symbols === undefined) {
      throw new UsageError(
        "Missing --symbols (or --symbols-file, or a JOB_ID): what to validate, e.g. validate --symbols AAPL --start 2024-03-01 --end 2024-03-31",
      );
    }
    range = rangeOption(invocation, { required: true })!;
    timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  }
  if (!(await pathExists(join(dataDir, META_FILE)))) {
    throw new UsageError(`Nothing to validate: ${dataDir} holds no MarketPipe data (ingest first)`);
  }

  const store = await openStore(dataDir, { command: "validate" });
  let closeTelemetry = () => Promise.resolve();
  try {
    let job: JobRecord | undefined;
    if (jobRef !== undefined) {
      job = store.getJob(jobRef);
      if (!job) throw new UsageError(`No job "${jobRef}" in ${dataDir}; see marketpipe jobs list`);
      symbols = job.symbols;
      range = { start: job.start, end: job.end };
      timeframe = job.timeframe;
    }
    if (crossCheck && timeframe === "1m") {
      throw new UsageError(
        "Cannot --cross-check 1m bars: it compares a provider's 5m-1d bars with our aggregation of 1m bars (use --timeframe 1d, or a job of a longer timeframe)",
      );
    }
    const duckdb = await store.duckdb();
    await _checkSomethingStored(duckdb, dataDir, {
      symbols: symbols!,
      timeframe: timeframe!,
      range: range!,
      jobId: job?.id,
      disabled,
      // A job's symbol may legitimately have no bars; a symbol asked for by name must have some.
      every: !job,
    });
    if (tradingDays(range!.start, range!.end).length === 0 && !job) {
      context.err(`Note: ${range!.start}..${range!.end} has no NYSE trading days`);
    }
    const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
    closeTelemetry = () => telemetry.close();
    const metrics = telemetry.metrics;
    const connection = await duckdb.connect();
    const started = performance.now();
    const findingsBySymbol = new Map<string, Finding[]>();
    const perSymbol: {
      symbol: string;
      bars: number;
      counts: Record<Severity, number>;
      quarantined: number;
    }[] = [];
    const crossThreshold = rules.find((r) => r.id === "cross_check")!;
    let bars = 0;
    try {
      for (const symbol of symbols!) {
        context.signal.throwIfAborted();
        const files = await listPartitionFiles(dataDir, "bars", timeframe!, symbol, range);
        const stored = (await readBarRows(connection, files, range)).map((row) => row.bar);
        const findings = validateBars(stored, { rules: settings, metrics });
        // A rejection by a rule switched off now is not a finding of this run.
        const quarantined = (await readQuarantine(connection, dataDir, timeframe!, symbol, {
          ...range,
          jobId: job?.id,
        })).filter((q) => !disabled.has(q.rule));
        for (const q of quarantined) {
          const rule = VALIDATION_RULES.find((r) => r.id === q.rule);
          findings.push({
            symbol,
            timeframe: q.bar.timeframe,
            ts: q.bar.ts,
            tradingDate: q.bar.tradingDate,
            rule: q.rule,
            severity: rule?.severity ?? "error",
            detail: `quarantined by job ${q.jobId}: ${q.detail}`,
          });
        }
        if (crossCheck && crossThreshold.enabled) {
          const sides = await readCrossCheckBars(connection, dataDir, {
            symbol,
            timeframe: timeframe!,
            ...range!,
            session,
          });
          const result = crossCheckBars(sides.provided, sides.derived, {
            tolerance: crossThreshold.threshold,
            minuteDays: sides.minuteDays,
          });
          findings.push(...result.findings);
          for (const f of result.findings) {
            metrics.validationErrors.inc({ rule: f.rule, severity: f.severity });
          }
        }
        findings.sort((a, b) => a.ts - b.ts || RULE_IDS.indexOf(a.rule) - RULE_IDS.indexOf(b.rule));
        findingsBySymbol.set(symbol, findings);
        const counts: Record<Severity, number> = { error: 0, warn: 0, info: 0 };
        for (const f of findings) counts[f.severity]++;
        perSymbol.push({ symbol, bars: stored.length, counts, quarantined: quarantined.length });
        bars += stored.length;
      }
    } finally {
      connection.closeSync();
    }
    const all = [...findingsBySymbol.values()].flat();
    const ruleCounts: Record<string, number> = {};
    for (const f of all) ruleCounts[f.rule] = (ruleCounts[f.rule] ?? 0) + 1;
    const total = (severity: Severity) => perSymbol.reduce((n, s) => n + s.counts[severity], 0);
    const record = await saveValidationReport(store.meta.db, dataDir, {
      createdAt: Date.now(),
      jobId: job?.id ?? null,
      timeframe: timeframe!,
      symbols: symbols!,
      start: range!.start,
      end: range!.end,
      crossCheck,
      bars,
      errors: total("error"),
      warnings: total("warn"),
      infos: total("info"),
      quarantined: perSymbol.reduce((n, s) => n + s.quarantined, 0),
      rules: ruleCounts,
      settings: settings as Record<string, unknown>,
      findings: findingsBySymbol,
    });
    const elapsedMs = performance.now() - started;
    const failed = _fails(record, failOn);
    if (context.json) {
      context.out(JSON.stringify(
        {
          ..._reportJson(record, dataDir),
          elapsedMs: Math.round(elapsedMs),
          failOn: failOn ?? null,
          failed,
          perSymbol: perSymbol.map((s) => ({
            symbol: s.symbol,
            bars: s.bars,
            errors: s.counts.error,
            warnings: s.counts.warn,
            infos: s.counts.info,
            quarantined: s.quarantined,
          })),
        },
        null,
        2,
      ));
    } else {
      for (
        const line of renderTable(
          ["symbol", "bars", "errors", "quarantined", "warnings", "info"],
          perSymbol.map((s) => [
            s.symbol,
            formatCount(s.bars),
            formatCount(s.counts.error),
            formatCount(s.quarantined),
            formatCount(s.counts.warn),
            formatCount(s.counts.info),
          ]),
          { right: [1, 2, 3, 4, 5] },
        )
      ) context.out(line);
      _printRuleSummary(all, context);
      const shown = all.filter((f) => f.severity !== "info").slice(0, limit);
      if (shown.length > 0) {
        context.out("");
        context.out(`First ${shown.length} error(s) and warning(s):`);
        for (
          const line of renderTable(
            ["symbol", "ts", "rule", "detail"],
            shown.map((f) => [f.symbol, new Date(f.ts).toISOString(), f.rule, f.detail]),
          )
        ) context.out(line);
      }
      context.out("");
      context.out(
        `Validated ${formatCount(bars)} ${timeframe} bar(s) in ${formatDuration(elapsedMs)}: ${
          formatCount(record.errors)
        } error(s), ${formatCount(record.warnings)} warning(s), ${formatCount(record.infos)} info.`,
      );
      context.out(`Report ${record.id}: ${join(dataDir, record.path)}/<symbol>.csv`);
      context.out(
        `Show it: ${
          shellCommand(["marketpipe", "validate", "--show", record.id, ...dataDirArgs(dataDir)])
        }`,
      );
    }
    return _failExit(record, failOn, context);
  } finally {
    await closeTelemetry();
    store.close();
  }
}

/**
 * Refuse to validate what is not there, before anything is written: the symbols (all of them, or
 * with `every` each one) without stored or quarantined bars of `timeframe` in `range`.
 */
async function _checkSomethingStored(
  duckdb: Awaited<ReturnType<Store["duckdb"]>>,
  dataDir: string,
  scope: {
    symbols: readonly string[];
    timeframe: Timeframe;
    range: { start: string; end: string };
    jobId?: string;
    disabled: ReadonlySet<string>;
    every: boolean;
  },
): Promise<void> {
  const { symbols, timeframe, range } = scope;
  const connection = await duckdb.connect();
  const empty: string[] = [];
  try {
    for (const symbol of symbols) {
      const days = await readDayCounts(
        connection,
        dataDir,
        timeframe,
        symbol,
        range.start,
        range.end,
      );
      if (days.length > 0) continue;
      const quarantined = await readQuarantine(connection, dataDir, timeframe, symbol, {
        ...range,
        jobId: scope.jobId,
      });
      if (!quarantined.some((q) => !scope.disabled.has(q.rule))) empty.push(symbol);
    }
  } finally {
    connection.closeSync();
  }
  if (empty.length === 0 || (!scope.every && empty.length < symbols.length)) return;
  const dates = range.start === range.end ? `on ${range.start}` : `in ${range.start}..${range.end}`;
  throw new UsageError(
    `Nothing to validate: no stored ${timeframe} bars of ${empty.join(",")} ${dates}${
      tradingDays(range.start, range.end).length === 0 ? " (no NYSE trading days)" : ""
    } under ${timeframeDir(dataDir, timeframe)}`,
  );
}
