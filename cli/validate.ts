import { join } from "node:path";
import { reportJson } from "../app/mod.ts";
import { tradingDays } from "../core/calendar.ts";
import { parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import type { JobRecord } from "../core/jobs.ts";
import type { Timeframe } from "../core/types.ts";
import {
  type EffectiveRule,
  effectiveRules,
  type Finding,
  RULE_IDS,
  type Severity,
  validateBars,
  VALIDATION_RULES,
  type ValidationSettings,
} from "../core/validate.ts";
import { crossCheckBars } from "../core/validate_cross.ts";
import type { Metrics } from "../core/metrics.ts";
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
  formatIsoTime,
  formatTime,
  printJson,
  printTable,
  progressReporter,
  shellCommand,
  type TimeZoneSetting,
} from "./format.ts";
import {
  choiceOption,
  dataDirOf,
  historyDirOf,
  positionals,
  rangeOption,
  sessionOption,
  symbolsOption,
  timeframeOption,
  todayOf,
  tzOption,
  unknownJobError,
  validationOption,
} from "./options.ts";

/** `marketpipe validate`: re-check stored bars, list or show reports, list the rules. */
export async function runValidate(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const mode = checkValidateOptions(invocation);
  if (mode === "rules") return _printRules(validationOption(invocation), context);
  if (mode === "list") return await _listReports(invocation, context);
  if (mode === "show") return await _showReport(invocation, context);
  return await _validate(invocation, context);
}

/**
 * What `validate` refuses before it reads anything (also checked for a schedule when the server
 * starts): modes used together, options a mode or a JOB_ID excludes, a run without symbols or
 * dates. Returns the mode (`list`, `rules`, `show`), undefined for a run.
 */
export function checkValidateOptions(invocation: Invocation): string | undefined {
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
    positionals(invocation, []);
    return mode;
  }
  const [jobRef] = invocation.positionals;
  if (jobRef !== undefined) {
    if (!/^[\w-]{4,64}$/.test(jobRef)) {
      throw new UsageError(
        `Invalid JOB_ID "${jobRef}": expected a job id like 20241125-191500-ab12`,
      );
    }
    for (
      const name of ["symbols", "symbols-file", "universe", "as-of", "start", "end", "timeframe"]
    ) {
      if (invocation.options.sources[name] === "flag") {
        throw new UsageError(`Cannot combine JOB_ID with --${name}: the job records it`);
      }
    }
    return undefined;
  }
  const symbolsGiven = ["symbols", "symbols-file", "universe"].some((name) =>
    invocation.string(name) !== undefined
  );
  if (!symbolsGiven) {
    throw new UsageError(
      "Missing --symbols (or --symbols-file, --universe, or a JOB_ID): what to validate, e.g. validate --symbols AAPL --start 2024-03-01 --end 2024-03-31",
    );
  }
  rangeOption(invocation, { required: true });
  timeframeOption(invocation.string("timeframe") ?? "1m");
  return undefined;
}

function _printRules(settings: ValidationSettings, context: CommandContext): number {
  const rules = effectiveRules(settings);
  if (context.json) {
    printJson(
      context,
      rules.map((r) => ({
        id: r.id,
        severity: r.severity,
        enabled: r.enabled,
        threshold: r.threshold ?? null,
        thresholdMeaning: r.thresholdMeaning ?? null,
        description: r.description,
      })),
    );
    return EXIT.ok;
  }
  printTable(
    context,
    ["rule", "severity", "on", "threshold", "checks that"],
    rules.map((r) => [
      r.id,
      r.severity,
      r.enabled ? "yes" : "no",
      r.threshold === undefined ? "-" : String(r.threshold),
      r.threshold === undefined ? r.description : `${r.description} [${r.thresholdMeaning}]`,
    ]),
  );
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

async function _listReports(invocation: Invocation, context: CommandContext): Promise<number> {
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 100_000);
  const tz = tzOption(invocation);
  const dataDir = dataDirOf(invocation);
  const db = await openExistingMigrated(join(dataDir, META_FILE));
  const reports = db ? listValidationReports(db, { limit }) : [];
  db?.close();
  if (context.json) {
    printJson(context, reports.map((r) => reportJson(r, dataDir)));
    return EXIT.ok;
  }
  if (reports.length === 0) {
    context.out(`No validation reports in ${dataDir}; create one with marketpipe validate`);
    return EXIT.ok;
  }
  printTable(
    context,
    ["report", "created", "job", "tf", "symbols", "dates", "bars", "errors", "warn", "info"],
    reports.map((r) => [
      r.id,
      formatTime(r.createdAt, tz),
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
  );
  return EXIT.ok;
}

async function _showReport(invocation: Invocation, context: CommandContext): Promise<number> {
  const ref = invocation.string("show")!;
  const failOn = _failOnOption(invocation);
  const limit = parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 10_000_000);
  const tz = tzOption(invocation);
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
    printJson(context, {
      ...reportJson(record, dataDir),
      fail_on: failOn ?? null,
      failed: _fails(record, failOn),
      rows,
    });
    return _failExit(record, failOn, context);
  }
  _printReportHeader(record, { dataDir, tz }, context);
  _printRuleSummary(rows, context);
  if (rows.length > 0) {
    context.out("");
    context.out(
      rows.length > limit ? `First ${limit} of ${formatCount(rows.length)} findings:` : "Findings:",
    );
    printTable(
      context,
      ["symbol", "ts", "rule", "severity", "detail"],
      rows.slice(0, limit).map((r) => [
        r.symbol,
        formatIsoTime(r.ts, tz),
        r.rule,
        r.severity,
        r.detail,
      ]),
    );
    if (rows.length > limit) {
      context.out(`... ${formatCount(rows.length - limit)} more (--limit N)`);
    }
  }
  return _failExit(record, failOn, context);
}

/** `--fail-on warn|error`, checked; undefined when unset. */
function _failOnOption(invocation: Invocation): "warn" | "error" | undefined {
  const text = invocation.string("fail-on");
  return text === undefined
    ? undefined
    : choiceOption(text, "--fail-on", ["warn", "error"], "warn or error");
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
  { dataDir, tz }: { dataDir: string; tz: TimeZoneSetting },
  context: CommandContext,
): void {
  context.out(`Report ${record.id} (${formatTime(record.createdAt, tz)})`);
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
  printTable(
    context,
    ["rule", "severity", "findings"],
    [...counts].sort(([a], [b]) => order(a) - order(b))
      .map(([rule, { severity, n }]) => [rule, severity, formatCount(n)]),
    { right: [2] },
  );
}

/** What a validation run was asked for, checked before anything is opened. */
interface _ValidateRequest {
  jobRef?: string;
  /** Unset for a job: the job records them. */
  symbols?: string[];
  range?: { start: string; end: string };
  timeframe?: Timeframe;
  settings: ValidationSettings;
  rules: EffectiveRule[];
  failOn: "warn" | "error" | undefined;
  crossCheck: boolean;
  session: "regular" | "extended" | undefined;
  limit: number;
  /** Where printed times are shown (`--tz`). */
  tz: TimeZoneSetting;
  /** The symbols are a universe's members: one without bars in the range is no error. */
  fromUniverse: boolean;
}

/** The bars a run checks: a job's, or `--symbols` over `--start`/`--end`. */
interface _Scope {
  symbols: string[];
  range: { start: string; end: string };
  timeframe: Timeframe;
  job?: JobRecord;
}

/** What a run found for one symbol. */
interface _SymbolResult {
  symbol: string;
  bars: number;
  findings: Finding[];
  counts: Record<Severity, number>;
  quarantined: number;
}

type _DuckDB = Awaited<ReturnType<Store["duckdb"]>>;
type _Connection = Awaited<ReturnType<_DuckDB["connect"]>>;

async function _validate(invocation: Invocation, context: CommandContext): Promise<number> {
  if (invocation.positionals.length > 1) positionals(invocation, ["JOB_ID"]);
  const dataDir = dataDirOf(invocation);
  const request = await _validateRequest(invocation, todayOf(context));
  if (!(await pathExists(join(dataDir, META_FILE)))) {
    throw new UsageError(`Nothing to validate: ${dataDir} holds no MarketPipe data (ingest first)`);
  }
  const store = await openStore(dataDir, { command: "validate" });
  let closeTelemetry = () => Promise.resolve();
  try {
    const scope = _scopeOf(request, store, dataDir);
    const { symbols, range, timeframe, job } = scope;
    if (request.crossCheck && timeframe === "1m") {
      throw new UsageError(
        "Cannot --cross-check 1m bars: it compares a provider's 5m-1d bars with our aggregation of 1m bars (use --timeframe 1d, or a job of a longer timeframe)",
      );
    }
    const { rules } = request;
    const disabled = new Set(rules.filter((r) => !r.enabled).map((r) => r.id));
    const duckdb = await store.duckdb();
    await _checkSomethingStored(duckdb, dataDir, {
      ...scope,
      jobId: job?.id,
      disabled,
      // A job's symbol may legitimately have no bars, and so may a universe's member (listed
      // later, or not ingested); a symbol asked for by name must have some.
      every: !job && !request.fromUniverse,
    });
    if (tradingDays(range.start, range.end).length === 0 && !job) {
      context.err(`Note: ${range.start}..${range.end} has no NYSE trading days`);
    }
    const telemetry = await openTelemetry(dataDir, { historyDir: historyDirOf(context) });
    closeTelemetry = () => telemetry.close();
    const crossRule = rules.find((r) => r.id === "cross_check")!;
    const check = {
      scope,
      settings: request.settings,
      disabled,
      metrics: telemetry.metrics,
      crossCheck: request.crossCheck && crossRule.enabled ? crossRule.threshold : undefined,
      session: request.session,
    };
    const connection = await duckdb.connect();
    const started = performance.now();
    const results: _SymbolResult[] = [];
    // A redrawn bar on a terminal only: piped output and logs get the result alone.
    const report = context.status
      ? progressReporter({ status: context.status, err: context.err })
      : undefined;
    let bars = 0;
    const progress = (done: number, current = "") =>
      report?.(
        done,
        symbols.length,
        `${done}/${symbols.length} symbols, ${formatCount(bars)} bars checked${current}`,
        performance.now() - started,
      );
    try {
      for (const [index, symbol] of symbols.entries()) {
        context.signal.throwIfAborted();
        progress(index, ` (${symbol})`);
        const result = await _checkSymbol(connection, dataDir, symbol, check);
        results.push(result);
        bars += result.bars;
      }
      progress(symbols.length);
    } finally {
      report?.finish();
      connection.closeSync();
    }
    const record = await _saveReport(store, dataDir, { request, scope, results });
    const elapsedMs = performance.now() - started;
    if (context.json) {
      printJson(context, {
        ...reportJson(record, dataDir),
        elapsed_ms: Math.round(elapsedMs),
        fail_on: request.failOn ?? null,
        failed: _fails(record, request.failOn),
        per_symbol: results.map((r) => ({
          symbol: r.symbol,
          bars: r.bars,
          errors: r.counts.error,
          warnings: r.counts.warn,
          infos: r.counts.info,
          quarantined: r.quarantined,
        })),
      });
    } else {
      _printRun(
        results,
        record,
        { dataDir, elapsedMs, limit: request.limit, tz: request.tz },
        context,
      );
    }
    return _failExit(record, request.failOn, context);
  } finally {
    await closeTelemetry();
    store.close();
  }
}

/** Write the CSV files and the summary row of a run's report. */
async function _saveReport(
  store: Store,
  dataDir: string,
  run: { request: _ValidateRequest; scope: _Scope; results: readonly _SymbolResult[] },
): Promise<ValidationReportRecord> {
  const { request, scope, results } = run;
  const ruleCounts: Record<string, number> = {};
  for (const r of results) {
    for (const f of r.findings) ruleCounts[f.rule] = (ruleCounts[f.rule] ?? 0) + 1;
  }
  const sum = (count: (r: _SymbolResult) => number) => results.reduce((n, r) => n + count(r), 0);
  return await saveValidationReport(store.meta.db, dataDir, {
    createdAt: Date.now(),
    jobId: scope.job?.id ?? null,
    timeframe: scope.timeframe,
    symbols: scope.symbols,
    start: scope.range.start,
    end: scope.range.end,
    crossCheck: request.crossCheck,
    bars: sum((r) => r.bars),
    errors: sum((r) => r.counts.error),
    warnings: sum((r) => r.counts.warn),
    infos: sum((r) => r.counts.info),
    quarantined: sum((r) => r.quarantined),
    rules: ruleCounts,
    settings: request.settings as Record<string, unknown>,
    findings: new Map(results.map((r) => [r.symbol, r.findings])),
  });
}

/** Read and check the options of a run; a JOB_ID excludes the options the job records. */
async function _validateRequest(
  invocation: Invocation,
  today: string,
): Promise<_ValidateRequest> {
  const [jobRef] = invocation.positionals;
  const settings = validationOption(invocation);
  const request: _ValidateRequest = {
    jobRef,
    settings,
    rules: effectiveRules(settings),
    failOn: _failOnOption(invocation),
    crossCheck: invocation.flag("cross-check"),
    session: sessionOption(invocation),
    limit: parseIntOption(invocation.string("limit") ?? "20", "--limit", 1, 10_000_000),
    tz: tzOption(invocation),
    fromUniverse: false,
  };
  // Its options were checked by checkValidateOptions.
  if (jobRef !== undefined) return request;
  request.range = rangeOption(invocation, { required: true })!;
  request.symbols = await symbolsOption(invocation, { range: request.range, today });
  request.fromUniverse = invocation.string("universe") !== undefined &&
    invocation.options.sources.universe === "flag";
  request.timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  return request;
}

/** The scope of `request`: its own, or that of the job it names. */
function _scopeOf(request: _ValidateRequest, store: Store, dataDir: string): _Scope {
  if (request.jobRef === undefined) {
    return { symbols: request.symbols!, range: request.range!, timeframe: request.timeframe! };
  }
  const job = store.getJob(request.jobRef);
  if (!job) {
    const ids = store.meta.listJobs({ limit: 1_000_000 }).map((j) => j.id);
    throw unknownJobError(request.jobRef, dataDir, ids);
  }
  return {
    symbols: job.symbols,
    range: { start: job.start, end: job.end },
    timeframe: job.timeframe,
    job,
  };
}

/**
 * Check one symbol's stored bars against the rules, add what its job (or any job) quarantined
 * and, with a cross-check tolerance, the differences between provided and aggregated bars.
 */
async function _checkSymbol(
  connection: _Connection,
  dataDir: string,
  symbol: string,
  check: {
    scope: _Scope;
    settings: ValidationSettings;
    disabled: ReadonlySet<string>;
    metrics: Metrics;
    /** The cross-check tolerance, or undefined for no cross-check. */
    crossCheck: number | undefined;
    session: "regular" | "extended" | undefined;
  },
): Promise<_SymbolResult> {
  const { range, timeframe, job } = check.scope;
  const files = await listPartitionFiles(dataDir, "bars", timeframe, symbol, range);
  const stored = (await readBarRows(connection, files, range)).map((row) => row.bar);
  const findings = validateBars(stored, { rules: check.settings, metrics: check.metrics });
  // A rejection by a rule switched off now is not a finding of this run.
  const quarantined = (await readQuarantine(connection, dataDir, timeframe, symbol, {
    ...range,
    jobId: job?.id,
  })).filter((q) => !check.disabled.has(q.rule));
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
  if (check.crossCheck !== undefined) {
    const sides = await readCrossCheckBars(connection, dataDir, {
      symbol,
      timeframe,
      ...range,
      session: check.session,
    });
    const result = crossCheckBars(sides.provided, sides.derived, {
      tolerance: check.crossCheck,
      minuteDays: sides.minuteDays,
    });
    findings.push(...result.findings);
    for (const f of result.findings) {
      check.metrics.validationErrors.inc({ rule: f.rule, severity: f.severity });
    }
  }
  findings.sort((a, b) => a.ts - b.ts || RULE_IDS.indexOf(a.rule) - RULE_IDS.indexOf(b.rule));
  const counts: Record<Severity, number> = { error: 0, warn: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  return { symbol, bars: stored.length, findings, counts, quarantined: quarantined.length };
}

/** The text output of a run: per-symbol counts, the rule summary, the first findings. */
function _printRun(
  results: readonly _SymbolResult[],
  record: ValidationReportRecord,
  options: { dataDir: string; elapsedMs: number; limit: number; tz: TimeZoneSetting },
  context: CommandContext,
): void {
  printTable(
    context,
    ["symbol", "bars", "errors", "quarantined", "warnings", "info"],
    results.map((r) => [
      r.symbol,
      formatCount(r.bars),
      formatCount(r.counts.error),
      formatCount(r.quarantined),
      formatCount(r.counts.warn),
      formatCount(r.counts.info),
    ]),
    { right: [1, 2, 3, 4, 5] },
  );
  const all = results.flatMap((r) => r.findings);
  _printRuleSummary(all, context);
  const shown = all.filter((f) => f.severity !== "info").slice(0, options.limit);
  if (shown.length > 0) {
    context.out("");
    context.out(`First ${shown.length} error(s) and warning(s):`);
    printTable(
      context,
      ["symbol", "ts", "rule", "detail"],
      shown.map((f) => [f.symbol, formatTime(f.ts, options.tz), f.rule, f.detail]),
    );
  }
  const { dataDir } = options;
  context.out("");
  context.out(
    `Validated ${formatCount(record.bars)} ${record.timeframe} bar(s) in ${
      formatDuration(options.elapsedMs)
    }: ${formatCount(record.errors)} error(s), ${formatCount(record.warnings)} warning(s), ${
      formatCount(record.infos)
    } info.`,
  );
  context.out(`Report ${record.id}: ${join(dataDir, record.path)}/<symbol>.csv`);
  context.out(
    `Show it: ${
      shellCommand(["marketpipe", "validate", "--show", record.id, ...dataDirArgs(dataDir)])
    }`,
  );
}

/**
 * Refuse to validate what is not there, before anything is written: the symbols (all of them, or
 * with `every` each one) without stored or quarantined bars of `timeframe` in `range`.
 */
async function _checkSomethingStored(
  duckdb: _DuckDB,
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
