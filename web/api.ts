/**
 * The REST API under `/api`: symbols (with the symbol master's fields), universes, bars,
 * coverage, jobs (ingest, update, backfill, prune, delete, export and its download), validation
 * reports and read-only SQL.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { exchangeDate } from "../core/calendar.ts";
import { exchangeIso } from "../core/format.ts";
import {
  exportFile,
  jobJson as jobRecordJson,
  masterJson,
  pruneJson,
  reportJson,
  taskJson,
  universeJson,
} from "../app/mod.ts";
import type { JobKind, JobRecord } from "../core/jobs.ts";
import type { SymbolVersion } from "../core/reference.ts";
import {
  type ExportFormat,
  formatCsv,
  readStoredDayCounts,
  runQuery,
  type StoredBarSeries,
} from "../storage/mod.ts";
import { BAR_MEDIA_TYPES, barsPage, formatFromAccept } from "./bars.ts";
import type { WebContext } from "./context.ts";
import { summarizeCoverage } from "./coverage.ts";
import { conflict, notFound } from "./errors.ts";
import { href } from "./html.ts";
import {
  checkKnownParams,
  checkRange,
  checkSingleParams,
  encodeCursor,
  parseSymbol,
  shown,
} from "./params.ts";
import { parseQuery } from "./queries.ts";
import {
  byTimeframe,
  coverageOf,
  findJob,
  groupBySymbol,
  heavy,
  jobProgress,
  jsonBody,
  listUniverseViews,
  masterRows,
  noBarsError,
  parseReportId,
  parseUniverseName,
  prepareJob,
  queryInput,
  removeBars,
  startBackfill,
  startExport,
  startUpdate,
  type UniverseView,
  universeView,
} from "./services.ts";
import { progressBySymbol, type UniverseCoverageView } from "./views.ts";

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
    const groups = groupBySymbol(series);
    const master = masterRows(ctx, groups.map((group) => group.symbol));
    return c.json({
      symbols: groups.map((group) => _storedSymbolJson(group, master.get(group.symbol))),
    });
  });

  app.get("/api/symbols/:symbol", async (c) => {
    checkKnownParams(c.req.query(), []);
    const symbol = parseSymbol(c.req.param("symbol"));
    const series = await heavy(ctx, () => deps.data.series());
    const mine = series.filter((s) => s.symbol === symbol);
    if (mine.length === 0) throw await noBarsError(ctx, symbol);
    // From the stored bars of every timeframe, aggregated and provider ones alike.
    const coverage = [];
    for (const s of byTimeframe(mine)) {
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
    const master = masterRows(ctx, [symbol]).get(symbol);
    return c.json({ ..._storedSymbolJson(groupBySymbol(mine)[0], master), coverage });
  });

  app.get("/api/universes", async (c) => {
    checkKnownParams(c.req.query(), []);
    return c.json({ universes: (await listUniverseViews(ctx)).map(_universeJson) });
  });

  app.get("/api/universes/:name", async (c) => {
    const { as_of } = parseQuery(c.req.query(), "GET /api/universes/{name}");
    const view = await universeView(ctx, parseUniverseName(c.req.param("name")), as_of);
    return c.json({
      ..._universeJson(view),
      as_of: view.asOf,
      member_count: view.members.length,
      members: view.members.map((member) => ({
        symbol: member.symbol,
        ...masterJson(member.master),
        stored_as: member.storedAs,
        coverage: member.series.map((s) => ({
          timeframe: s.timeframe,
          rows: s.rows,
          first_date: s.firstDate,
          last_date: s.lastDate,
        })),
      })),
    });
  });

  app.get("/api/bars", async (c) => {
    const query = c.req.query();
    const { symbol, timeframe, start, end, limit, cursor: after, ...q } = parseQuery(
      query,
      "GET /api/bars",
      limits,
    );
    checkRange(start, end);
    const format = q.format ?? formatFromAccept(c.req.header("accept")) ?? "json";
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
    const { symbol, ...range } = parseQuery(c.req.query(), "GET /api/coverage");
    // Spread in its order: timeframe, start, end, then summary and days.
    const { days, ...coverage } = await coverageOf(ctx, symbol, range);
    return c.json({ symbol, ...coverage, summary: summarizeCoverage(days), days });
  });

  app.get("/api/jobs", (c) => {
    const { status, limit } = parseQuery(c.req.query(), "GET /api/jobs");
    const jobs = deps.store.meta.listJobs({ status, limit });
    return c.json({ jobs: jobs.map((job) => jobJson(ctx, job)) });
  });

  app.get("/api/jobs/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = findJob(ctx, c.req.param("id"));
    const tasks = deps.store.meta.listTasks(job.id);
    return c.json({
      ...jobJson(ctx, job),
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
    return _started(ctx, c, result.job, {
      status: result.resumed ? "resumed" : "started",
      tasks_left: result.tasksLeft,
    });
  });

  app.delete("/api/jobs/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = deps.jobs.cancel(findJob(ctx, c.req.param("id")).id);
    return c.json({
      status: "cancelling",
      job: jobJson(ctx, job),
      message: `Cancelling job ${job.id}: ${_CANCELLING[job.kind]}`,
    }, 202);
  });

  // Update and backfill start ordinary ingest jobs, as `marketpipe update` and `backfill` plan them.
  app.post("/api/update", async (c) => {
    checkKnownParams(c.req.query(), []);
    return _jobsStarted(ctx, c, await startUpdate(ctx, await jsonBody(c)));
  });

  app.post("/api/backfill", async (c) => {
    checkKnownParams(c.req.query(), []);
    return _jobsStarted(ctx, c, await startBackfill(ctx, await jsonBody(c)));
  });

  for (const action of ["prune", "delete"] as const) {
    app.post(`/api/${action}`, async (c) => {
      checkKnownParams(c.req.query(), []);
      const result = await removeBars(ctx, action, await jsonBody(c));
      if ("plan" in result) return c.json({ dry_run: true, plan: pruneJson(result.plan) });
      return _started(ctx, c, result.job);
    });
  }

  app.post("/api/exports", async (c) => {
    checkKnownParams(c.req.query(), []);
    return _started(ctx, c, await startExport(ctx, await jsonBody(c)));
  });

  app.get("/api/exports/:id", async (c) => {
    checkKnownParams(c.req.query(), []);
    const job = findJob(ctx, c.req.param("id"));
    const file = exportFile(deps.store.dataDir, job);
    if (file === undefined) throw notFound(`No export job ${shown(job.id)}`);
    if (job.status !== "succeeded") {
      const why = job.status === "running" || job.status === "pending"
        ? `it is still running; poll /api/jobs/${job.id}`
        : `it is ${job.status}${job.error ? `: ${job.error}` : ""}`;
      throw conflict(`Cannot download export ${job.id}: ${why}`);
    }
    let opened: Deno.FsFile;
    try {
      opened = await Deno.open(file.path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw notFound(`The file of export ${job.id} is gone from the exports folder`);
    }
    const { size } = await opened.stat();
    return new Response(opened.readable, {
      status: 200,
      headers: {
        "Content-Type": _EXPORT_TYPES[file.format],
        "Content-Length": String(size),
        "Content-Disposition": `attachment; filename="marketpipe-${job.id}.${file.format}"`,
        "Cache-Control": "no-store",
      },
    });
  });

  app.get("/api/validation/reports", async (c) => {
    const { limit } = parseQuery(c.req.query(), "GET /api/validation/reports");
    if (!deps.validation) return c.json({ available: false, reports: [] });
    const reports = await deps.validation.listReports({ limit });
    return c.json({ available: true, reports: reports.map((r) => reportJson(r.record)) });
  });

  app.get("/api/validation/reports/:id", async (c) => {
    checkKnownParams(c.req.query(), []);
    const id = parseReportId(c.req.param("id"));
    const report = await deps.validation?.getReport(id);
    if (!report) throw notFound(`No validation report ${shown(id)}`);
    // The offending bars as `validate --show --json` lists them, at most MAX_REPORT_ROWS.
    return c.json({
      ...reportJson(report.record),
      rows: report.bars,
      rows_total: report.barsTotal,
      files: report.files,
    });
  });

  app.post("/api/query", async (c) => {
    const format = parseQuery(c.req.query(), "POST /api/query").format ??
      (/\btext\/csv\b/.test(c.req.header("accept") ?? "") ? "csv" : "json");
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

/** A job as the API shows it: the shared record plus whether this server runs it and progress. */
export function jobJson(ctx: WebContext, job: JobRecord) {
  return {
    ...jobRecordJson(job),
    cancellable: ctx.deps.jobs.isRunningHere(job.id),
    aggregating: ctx.deps.jobs.isAggregating(job.id),
    // Known for ingests this server ran since it started; null for others.
    aggregation: ctx.deps.jobs.aggregation(job.id) ?? null,
    progress: jobProgress(ctx, job) ?? null,
  };
}

/** 202 with the started ingests, or 200 up to date when there are none. */
function _jobsStarted(ctx: WebContext, c: Context, { jobs }: { jobs: JobRecord[] }) {
  if (jobs.length === 0) return c.json({ status: "up-to-date", jobs: [] });
  return c.json({ status: "started", jobs: jobs.map((job) => jobJson(ctx, job)) }, 202);
}

/** 202 with the started job, `extra` (which may set another status) and where to poll it. */
function _started(
  ctx: WebContext,
  c: Context,
  job: JobRecord,
  extra: Record<string, unknown> = {},
) {
  const location = `/api/jobs/${job.id}`;
  c.header("Location", location);
  return c.json({
    status: "started",
    job: jobJson(ctx, job),
    ...extra,
    links: { self: location, page: `/jobs/${job.id}` },
  }, 202);
}

const _CANCELLING: Record<JobKind, string> = {
  ingest: "tasks in flight finish, then it ends cancelled and can be resumed",
  prune: "the partition in flight finishes, then it ends cancelled; prune again to finish it",
  delete: "the partition in flight finishes, then it ends cancelled; delete again to finish it",
  export: "it stops and leaves no file",
};

const _EXPORT_TYPES: Record<ExportFormat, string> = {
  parquet: BAR_MEDIA_TYPES.parquet,
  csv: "text/csv; charset=utf-8",
  arrow: BAR_MEDIA_TYPES["arrow-file"],
};

/** A universe as app/records.ts shows it, with its members' stored coverage. */
function _universeJson(view: UniverseView) {
  return { ...universeJson(view.info), coverage: _coverageJson(view.coverage) };
}

function _coverageJson(coverage: UniverseCoverageView) {
  return {
    members: coverage.members,
    with_bars: coverage.withBars,
    timeframes: coverage.timeframes.map((tf) => ({
      timeframe: tf.timeframe,
      symbols: tf.symbols,
      first_date: tf.firstDate,
      last_date: tf.lastDate,
    })),
  };
}

function _storedSymbolJson(
  group: { symbol: string; series: StoredBarSeries[] },
  master: SymbolVersion | undefined,
) {
  return {
    symbol: group.symbol,
    ...masterJson(master),
    rows: group.series.reduce((n, s) => n + s.rows, 0),
    bytes: group.series.reduce((n, s) => n + s.bytes, 0),
    timeframes: group.series.map((s) => ({
      timeframe: s.timeframe,
      rows: s.rows,
      first: new Date(s.firstTs).toISOString(),
      last: new Date(s.lastTs).toISOString(),
      first_exchange: exchangeIso(s.firstTs),
      last_exchange: exchangeIso(s.lastTs),
      files: s.files,
      bytes: s.bytes,
    })),
  };
}
