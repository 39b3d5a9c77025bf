/**
 * The REST API under `/api`: symbols, bars, coverage, jobs, validation reports and read-only SQL.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import {
  buildIngestRequest,
  type IngestInput,
  type PreparedIngest,
} from "../providers/ingest_request.ts";
import { addDays, exchangeDate } from "../core/calendar.ts";
import { JOB_STATUSES, type JobRecord, type JobStatus, type TaskRecord } from "../core/jobs.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { CorruptFileError } from "../core/errors.ts";
import {
  corruptFileMessage,
  formatCsv,
  QueryTimeoutError,
  readKnownEmptyDays,
  readStoredDayCounts,
  runQuery,
  type StoredBarSeries,
} from "../storage/mod.ts";
import { BAR_FORMATS, barsPage, formatFromAccept } from "./bars.ts";
import type { WebContext } from "./context.ts";
import { coverageCalendar, type CoverageDay, summarizeCoverage } from "./coverage.ts";
import { badRequest, HttpError, notFound } from "./errors.ts";
import { href } from "./html.ts";
import {
  checkKnownParams,
  checkRange,
  checkSingleParams,
  encodeCursor,
  parseChoice,
  parseCursor,
  parseDate,
  parseInteger,
  parseSymbol,
  parseTimeframe,
  shown,
} from "./params.ts";
import { progressBySymbol, type ValidationReportSummary } from "./views.ts";

/** Longest coverage range one request may ask for, in days. */
const MAX_COVERAGE_DAYS = 7_400;

/** Registers the `/api` routes. */
export function registerApi(app: Hono, ctx: WebContext): void {
  const { deps, limits } = ctx;

  // Every API parameter is single-valued; a repeated one is ambiguous, not "the first wins".
  app.use("/api/*", async (c, next) => {
    checkSingleParams(c.req.queries());
    await next();
  });

  app.get("/api/symbols", async (c) => {
    checkKnownParams(c.req.query(), []);
    const series = await heavy(ctx, () => deps.data.series());
    return c.json({ symbols: groupBySymbol(series).map(symbolJson) });
  });

  app.get("/api/symbols/:symbol", async (c) => {
    checkKnownParams(c.req.query(), []);
    const symbol = parseSymbol(c.req.param("symbol"));
    const series = await heavy(ctx, () => deps.data.series());
    const mine = series.filter((s) => s.symbol === symbol);
    if (mine.length === 0) throw await noBarsError(ctx, symbol);
    // From the stored bars of every timeframe, aggregated and provider ones alike.
    const coverage = [];
    for (const s of _byTimeframe(mine)) {
      const range = { start: exchangeDate(s.firstTs), end: exchangeDate(s.lastTs) };
      const counts = await heavy(
        ctx,
        () =>
          deps.data.withEngine((engine) => readStoredDayCounts(engine, s.timeframe, symbol, range)),
      );
      coverage.push({
        timeframe: s.timeframe,
        first_day: range.start,
        last_day: range.end,
        days_with_bars: counts.filter((count) => count.bars > 0).length,
      });
    }
    return c.json({ ...symbolJson(groupBySymbol(mine)[0]), coverage });
  });

  app.get("/api/bars", async (c) => {
    const query = c.req.query();
    checkKnownParams(query, ["symbol", "timeframe", "start", "end", "limit", "cursor", "format"]);
    const symbol = parseSymbol(query.symbol);
    const timeframe = parseTimeframe(query.timeframe, "1m");
    const start = parseDate(query.start, "start");
    const end = parseDate(query.end, "end");
    checkRange(start, end);
    const limit = parseInteger(query.limit, "limit", {
      min: 1,
      max: limits.maxBarsLimit,
      fallback: limits.defaultBarsLimit,
    });
    const after = parseCursor(query.cursor);
    const format = query.format === undefined
      ? formatFromAccept(c.req.header("accept")) ?? "json"
      : parseChoice(query.format, "format", BAR_FORMATS, "json");
    const release = await ctx.heavy.acquire();
    let page;
    try {
      page = await deps.data.withEngine((engine) =>
        barsPage(engine, { symbol, timeframe, start, end, after, limit }, format, {
          timeoutMs: limits.queryTimeoutMs,
          onDone: release,
        })
      );
    } catch (error) {
      release();
      throw error;
    }
    const headers: Record<string, string> = {
      "Content-Type": page.contentType,
      "Cache-Control": "no-store",
    };
    if (page.nextCursor !== undefined) {
      const cursor = encodeCursor(page.nextCursor);
      headers["X-Next-Cursor"] = cursor;
      headers["Link"] = `<${href("/api/bars", { ...query, cursor })}>; rel="next"`;
    }
    if (format !== "json") {
      const extension = {
        csv: "csv",
        arrow: "arrows",
        "arrow-file": "arrow",
        parquet: "parquet",
      }[format];
      headers["Content-Disposition"] = `attachment; filename="${symbol}_${timeframe}${
        start ? `_${start}` : ""
      }${end ? `_${end}` : ""}.${extension}"`;
    }
    return new Response(page.body, { status: 200, headers });
  });

  app.get("/api/coverage", async (c) => {
    const query = c.req.query();
    checkKnownParams(query, ["symbol", "timeframe", "start", "end"]);
    const symbol = parseSymbol(query.symbol);
    const result = await coverageOf(ctx, symbol, {
      timeframe: parseTimeframe(query.timeframe),
      start: parseDate(query.start, "start"),
      end: parseDate(query.end, "end"),
    });
    return c.json({
      symbol,
      timeframe: result.timeframe,
      start: result.start,
      end: result.end,
      summary: summarizeCoverage(result.days),
      days: result.days,
    });
  });

  app.get("/api/jobs", (c) => {
    const query = c.req.query();
    checkKnownParams(query, ["status", "limit"]);
    const status = query.status === undefined
      ? undefined
      : parseChoice(query.status, "status", JOB_STATUSES, "running");
    const limit = parseInteger(query.limit, "limit", { min: 1, max: 1000, fallback: 50 });
    const jobs = deps.store.meta.listJobs({ status: status as JobStatus | undefined, limit });
    return c.json({ jobs: jobs.map((job) => jobJson(ctx, job)) });
  });

  app.get("/api/jobs/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = findJob(ctx, c.req.param("id"));
    const tasks = deps.store.meta.listTasks(job.id);
    return c.json({
      ...jobJson(ctx, job),
      progress: deps.jobs.progress(job.id) ?? null,
      symbols: progressBySymbol(tasks).map((s) => ({
        symbol: s.symbol,
        tasks: s.tasks,
        done: s.done,
        failed: s.failed,
        running: s.running,
        bars_written: s.barsWritten,
        bars_replaced: s.barsReplaced,
        quarantined: s.quarantined,
        errors: s.errors,
      })),
      tasks: tasks.map(taskJson),
    });
  });

  app.post("/api/jobs", async (c) => {
    checkKnownParams(c.req.query(), []);
    const result = await deps.jobs.start(await prepareJob(ctx, await jsonBody(c)));
    if (result.kind === "up-to-date") {
      return c.json({
        status: "up-to-date",
        job: null,
        message: `Nothing to do: all ${result.daysSkipped} symbol-day(s) are already stored`,
      });
    }
    if (result.kind === "already-succeeded") {
      return c.json({
        status: "succeeded",
        job: jobJson(ctx, result.job),
        message: "Already done",
      });
    }
    const location = `/api/jobs/${result.job.id}`;
    c.header("Location", location);
    return c.json({
      status: result.resumed ? "resumed" : "started",
      job: jobJson(ctx, result.job),
      tasks_left: result.tasksLeft,
      links: { self: location, page: `/jobs/${result.job.id}` },
    }, 202);
  });

  app.delete("/api/jobs/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = deps.jobs.cancel(findJob(ctx, c.req.param("id")).id);
    return c.json({
      status: "cancelling",
      job: jobJson(ctx, job),
      message:
        `Cancelling job ${job.id}: tasks in flight finish, then it ends cancelled and can be resumed`,
    }, 202);
  });

  app.get("/api/validation/reports", async (c) => {
    const query = c.req.query();
    checkKnownParams(query, ["limit"]);
    const limit = parseInteger(query.limit, "limit", { min: 1, max: 1000, fallback: 50 });
    if (!deps.validation) return c.json({ available: false, reports: [] });
    const reports = await deps.validation.listReports({ limit });
    return c.json({ available: true, reports: reports.map(reportJson) });
  });

  app.get("/api/validation/reports/:id", async (c) => {
    checkKnownParams(c.req.query(), []);
    const id = parseReportId(c.req.param("id"));
    const report = await deps.validation?.getReport(id);
    if (!report) throw notFound(`No validation report ${shown(id)}`);
    return c.json({
      ...reportJson(report),
      rules: report.rules,
      bars: report.bars,
      bars_total: report.barsTotal,
      files: report.files,
    });
  });

  app.post("/api/query", async (c) => {
    const query = c.req.query();
    checkKnownParams(query, ["format"]);
    const format = query.format === undefined
      ? (/\btext\/csv\b/.test(c.req.header("accept") ?? "") ? "csv" : "json")
      : parseChoice(query.format, "format", ["json", "csv"] as const, "json");
    const { sql, limit, timeoutMs } = await queryInput(ctx, c);
    const started = performance.now();
    const result = await heavy(
      ctx,
      () => deps.data.withEngine((engine) => runQuery(engine, sql, { limit, timeoutMs })),
    );
    if (format === "csv") {
      return c.body(formatCsv(result), 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="query.csv"',
      });
    }
    return c.json({
      columns: result.columns,
      rows: result.rows,
      row_count: result.rowCount,
      truncated: result.truncated,
      elapsed_ms: Math.round(performance.now() - started),
    });
  });
}

/**
 * Runs `fn` holding a heavy-request slot. Request signals are not used: with Deno.serve's legacy
 * abort behaviour they fire after every response (and listening to them prints a warning); a
 * client that leaves a streamed body cancels the stream instead, and timeouts bound the rest.
 */
export async function heavy<T>(ctx: WebContext, fn: () => Promise<T>): Promise<T> {
  const release = await ctx.heavy.acquire();
  let held = false;
  try {
    return await fn();
  } catch (error) {
    // A query DuckDB could not stop in time still runs: its slot stays taken until it ends, so
    // timed-out queries cannot pile up beyond the cap.
    if (error instanceof QueryTimeoutError && error.settled !== undefined) {
      held = true;
      error.settled.finally(release);
    }
    throw error;
  } finally {
    if (!held) release();
  }
}

/** A job as the API shows it. */
export function jobJson(ctx: WebContext, job: JobRecord) {
  return {
    id: job.id,
    status: job.status,
    provider: job.provider,
    feed: job.feed,
    adjustment: job.adjustment,
    timeframe: job.timeframe,
    symbols: job.symbols,
    start: job.start,
    end: job.end,
    params: job.params,
    bars_written: job.barsWritten,
    created_at: _iso(job.createdAt),
    started_at: _iso(job.startedAt),
    finished_at: _iso(job.finishedAt),
    pid: job.pid,
    error: job.error,
    cancellable: ctx.deps.jobs.isRunningHere(job.id),
    aggregating: ctx.deps.jobs.isAggregating(job.id),
  };
}

function reportJson(report: ValidationReportSummary) {
  return {
    id: report.id,
    created_at: new Date(report.createdAt).toISOString(),
    job_id: report.jobId,
    timeframe: report.timeframe,
    symbols: report.symbols,
    start: report.start,
    end: report.end,
    bars_checked: report.barsChecked,
    findings: report.findings,
    errors: report.errors,
    warnings: report.warnings,
    infos: report.infos,
    quarantined: report.quarantined,
  };
}

function taskJson(task: TaskRecord) {
  return {
    seq: task.seq,
    symbol: task.symbol,
    start: task.start,
    end: task.end,
    days: task.days,
    status: task.status,
    attempts: task.attempts,
    bars_fetched: task.barsFetched,
    bars_written: task.barsWritten,
    bars_replaced: task.barsReplaced,
    quarantined: task.quarantined,
    findings: task.findings,
    error: task.error,
    duration_ms: task.startedAt && task.finishedAt ? task.finishedAt - task.startedAt : null,
  };
}

function _iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** A job by id or unique prefix; 400 for a malformed id, 404 when there is none. */
export function findJob(ctx: WebContext, id: string): JobRecord {
  if (!/^[\w-]{1,64}$/.test(id)) {
    throw badRequest(`Invalid job id ${shown(id)}: expected an id like 20241125-191500-ab12`);
  }
  const job = ctx.deps.store.meta.getJob(id);
  if (!job) throw notFound(`No job ${shown(id)}`);
  return job;
}

/** A validation report id: letters, digits, `-`, `_` and `.`, at most 128 characters. */
export function parseReportId(id: string): string {
  if (!/^[\w.-]{1,128}$/.test(id) || id.includes("..")) {
    throw badRequest(`Invalid report id ${shown(id)}`);
  }
  return id;
}

/**
 * Why a symbol has no readable bars: a `CorruptFileError` naming its file that cannot be read
 * when it has one (so the page says what to repair), else a 404.
 */
export async function noBarsError(ctx: WebContext, symbol: string): Promise<Error> {
  const corrupt = (await ctx.deps.data.corruptFiles()).find((f) => f.symbol === symbol);
  if (corrupt === undefined) return notFound(`No bars stored for symbol ${symbol}`);
  return new CorruptFileError(
    corruptFileMessage(`Cannot read the ${corrupt.timeframe} bars of ${symbol} from`, corrupt),
    corrupt,
  );
}

/** The symbols summary grouped by symbol. */
export function groupBySymbol(
  series: readonly StoredBarSeries[],
): { symbol: string; series: StoredBarSeries[] }[] {
  const out = new Map<string, StoredBarSeries[]>();
  for (const s of series) {
    let list = out.get(s.symbol);
    if (!list) out.set(s.symbol, list = []);
    list.push(s);
  }
  return [...out].map(([symbol, list]) => ({ symbol, series: list }));
}

function symbolJson(group: { symbol: string; series: StoredBarSeries[] }) {
  return {
    symbol: group.symbol,
    rows: group.series.reduce((n, s) => n + s.rows, 0),
    bytes: group.series.reduce((n, s) => n + s.bytes, 0),
    timeframes: group.series.map((s) => ({
      timeframe: s.timeframe,
      rows: s.rows,
      first: new Date(s.firstTs).toISOString(),
      last: new Date(s.lastTs).toISOString(),
      files: s.files,
      bytes: s.bytes,
    })),
  };
}

/**
 * Coverage of a symbol with defaults: shortest stored timeframe, its first to last stored day.
 * Counted from the stored bars (so aggregated timeframes count too), as `marketpipe gaps` does.
 */
export async function coverageOf(
  ctx: WebContext,
  symbol: string,
  options: { timeframe?: Timeframe; start?: string; end?: string },
): Promise<{ timeframe: Timeframe; start: string; end: string; days: CoverageDay[] }> {
  checkRange(options.start, options.end);
  let { start, end } = options;
  let timeframe = options.timeframe;
  if (timeframe === undefined || start === undefined || end === undefined) {
    const mine = _byTimeframe(
      (await ctx.deps.data.series()).filter((s) => s.symbol === symbol),
    );
    timeframe ??= mine[0]?.timeframe ?? "1m";
    const stored = mine.find((s) => s.timeframe === timeframe);
    if (!stored && (start === undefined || end === undefined)) {
      throw notFound(
        `No ${timeframe} bars stored for ${symbol}; give start and end to see the calendar anyway`,
      );
    }
    end ??= exchangeDate(stored!.lastTs);
    start ??= exchangeDate(stored!.firstTs);
  }
  if (start > end) throw badRequest(`Invalid range: start ${start} is after end ${end}`);
  if (addDays(start, MAX_COVERAGE_DAYS) < end) {
    throw badRequest(`Invalid range ${start}..${end}: at most ${MAX_COVERAGE_DAYS} days at once`);
  }
  const days = await storedCoverage(ctx, symbol, { timeframe, start, end });
  return { timeframe, start, end, days };
}

/**
 * The coverage calendar of a symbol's stored `timeframe` over [start, end]: regular-session bars
 * per day from its Parquet files, days the provider answered empty from the ingest records.
 */
export async function storedCoverage(
  ctx: WebContext,
  symbol: string,
  options: { timeframe: Timeframe; start: string; end: string },
): Promise<CoverageDay[]> {
  const { timeframe, start, end } = options;
  const counts = await heavy(
    ctx,
    () =>
      ctx.deps.data.withEngine((engine) =>
        readStoredDayCounts(engine, timeframe, symbol, { start, end })
      ),
  );
  const knownEmpty = readKnownEmptyDays(ctx.deps.data.meta.db, timeframe, [symbol], start, end);
  return coverageCalendar(counts, {
    timeframe,
    start,
    end,
    today: exchangeDate(ctx.now()),
    knownEmpty: knownEmpty.get(symbol),
  });
}

/** Series in timeframe order, shortest first. */
function _byTimeframe(series: readonly StoredBarSeries[]): StoredBarSeries[] {
  return [...series].sort((a, b) =>
    TIMEFRAMES.indexOf(a.timeframe) - TIMEFRAMES.indexOf(b.timeframe)
  );
}

const _JSON_KEYS: Record<string, keyof IngestInput> = {
  provider: "provider",
  symbols: "symbols",
  start: "start",
  end: "end",
  timeframe: "timeframe",
  workers: "workers",
  batch_size: "batch-size",
  rate_limit: "rate-limit",
  feed: "feed",
  adjustment: "adjustment",
  force: "force",
  resume: "resume",
  fake_seed: "fake-seed",
  fake_gap_rate: "fake-gap-rate",
};

/** Reads a JSON object body; 415 when it is not JSON, 400 when it does not parse. */
async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      "Expected a JSON body with Content-Type: application/json",
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text());
  } catch (error) {
    throw badRequest(`Invalid JSON body: ${(error as Error).message}`, error);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("Invalid JSON body: expected an object");
  }
  return body as Record<string, unknown>;
}

/**
 * The ingest a job request asks for (JSON body or form fields), validated by the same builder
 * the CLI uses; `aggregate` defaults to the server's (config `aggregate`). 400 for an explicit
 * `aggregate` of an ingest that is not 1m, as `ingest --aggregate` refuses it.
 */
export async function prepareJob(
  ctx: WebContext,
  body: Record<string, unknown>,
): Promise<Omit<PreparedIngest, "dataDir">> {
  const { aggregate, ...input } = ingestInputFromJson(body);
  const prepared = await buildIngestRequest(input, {
    label: (name) => name.replaceAll("-", "_"),
  });
  const timeframe = prepared.request.timeframe;
  if (aggregate === true && prepared.request.resumeJobId === undefined && timeframe !== "1m") {
    throw badRequest(`Cannot aggregate a ${timeframe} ingest: aggregation rolls up 1m bars`);
  }
  return { ...prepared, aggregate: aggregate ?? ctx.deps.ingestDefaults?.aggregate ?? false };
}

/**
 * Ingest options from a JSON object or form fields (snake_case keys), checked for type; the
 * values are then validated by the same builder the CLI uses.
 */
export function ingestInputFromJson(
  body: Record<string, unknown>,
): IngestInput & { aggregate?: boolean } {
  const input: IngestInput & { aggregate?: boolean } = {};
  for (const [key, value] of Object.entries(body)) {
    // Own keys only: `constructor` or `valueOf` must not find Object.prototype's members.
    const name = key === "aggregate"
      ? "aggregate"
      : Object.hasOwn(_JSON_KEYS, key)
      ? _JSON_KEYS[key]
      : undefined;
    if (name === undefined) {
      throw badRequest(
        `Unknown field ${shown(key)}: expected ${
          [...Object.keys(_JSON_KEYS), "aggregate"].join(", ")
        }`,
      );
    }
    if (value === null || value === undefined || value === "") continue;
    if (name === "force" || name === "aggregate") {
      if (typeof value === "boolean") input[name] = value;
      else if (value === "true" || value === "on") input[name] = true;
      else if (value === "false") input[name] = false;
      else {
        // JSON.stringify, not String(): {"toString": 0} has no callable toString.
        const text = typeof value === "string" ? value : JSON.stringify(value);
        throw badRequest(`Invalid ${name} ${shown(text)}: expected true or false`);
      }
    } else if (name === "symbols") {
      if (typeof value === "string") input.symbols = value;
      else if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
        input.symbols = value as string[];
      } else throw badRequest("Invalid symbols: expected a string or a list of strings");
    } else if (typeof value === "string" || typeof value === "number") {
      input[name] = String(value);
    } else {
      throw badRequest(`Invalid ${key}: expected a string or a number`);
    }
  }
  if (input.resume !== undefined) {
    for (const key of ["symbols", "start", "end"] as const) {
      if (input[key] !== undefined) {
        throw badRequest(`Cannot combine resume with ${key}: the job already records it`);
      }
    }
  }
  return input;
}

/** The SQL, row limit and timeout of a query request (JSON body or form fields). */
export async function queryInput(
  ctx: WebContext,
  c: Context,
): Promise<{ sql: string; limit: number; timeoutMs: number }> {
  const { limits } = ctx;
  const type = c.req.header("content-type") ?? "";
  let sql: unknown;
  let limitText: string | undefined;
  let timeoutMs = limits.queryTimeoutMs;
  if (/^application\/json\b/i.test(type)) {
    const body = await jsonBody(c);
    for (const key of Object.keys(body)) {
      if (!["sql", "limit", "timeout_ms"].includes(key)) {
        throw badRequest(`Unknown field ${shown(key)}: expected sql, limit, timeout_ms`);
      }
    }
    sql = body.sql;
    // Only numbers and strings: String() of an object calls its (maybe own, maybe not callable)
    // toString, and would accept [10] as 10.
    for (const key of ["limit", "timeout_ms"] as const) {
      const value = body[key];
      if (value !== undefined && typeof value !== "number" && typeof value !== "string") {
        throw badRequest(`Invalid ${key}: expected a whole number`);
      }
    }
    if (body.limit !== undefined) limitText = String(body.limit);
    if (body.timeout_ms !== undefined) {
      timeoutMs = parseInteger(String(body.timeout_ms), "timeout_ms", {
        min: 1,
        max: limits.queryTimeoutMs,
        fallback: limits.queryTimeoutMs,
      });
    }
  } else if (/^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(type)) {
    const form = await c.req.parseBody();
    for (const key of Object.keys(form)) {
      if (!["sql", "limit", "timeout"].includes(key)) {
        throw badRequest(`Unknown field ${shown(key)}: expected sql, limit, timeout`);
      }
    }
    sql = form.sql;
    limitText = typeof form.limit === "string" ? form.limit : undefined;
    if (typeof form.timeout === "string" && form.timeout !== "") {
      timeoutMs = parseInteger(form.timeout, "timeout", {
        min: 1,
        max: Math.ceil(limits.queryTimeoutMs / 1000),
        fallback: 0,
      }) * 1000;
    }
  } else {
    throw new HttpError(
      415,
      "unsupported_media_type",
      'Expected a JSON body ({"sql": "..."}) or form fields',
    );
  }
  if (typeof sql !== "string" || sql.trim() === "") {
    throw badRequest("Missing sql: the query to run, e.g. SELECT count(*) FROM bars");
  }
  const limit = parseInteger(limitText, "limit", {
    min: 1,
    max: limits.maxQueryRows,
    fallback: Math.min(1000, limits.maxQueryRows),
  });
  return { sql, limit, timeoutMs };
}
