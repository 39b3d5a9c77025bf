/**
 * Dashboard pages and the htmx partials they swap in.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { formatBytes, formatCount } from "../core/format.ts";
import { addDays, exchangeDate, previousTradingDay } from "../core/calendar.ts";
import type { JobRecord } from "../core/jobs.ts";
import { PROVIDER_NAMES } from "../providers/mod.ts";
import type { WebContext } from "./context.ts";
import type { StartResult } from "./jobs.ts";
import { readSeriesFreshness } from "../app/status.ts";
import { scheduleBanner } from "./schedules.ts";
import { badRequest, conflict, notFound } from "./errors.ts";
import { type Html, html } from "./html.ts";
import { checkKnownParams, safeNext, shown } from "./params.ts";
import { parseQuery } from "./queries.ts";
import {
  clientKey,
  hasValidCredentials,
  SESSION_COOKIE,
  SESSION_COOKIE_OPTIONS,
  sessionValue,
} from "./security.ts";
import {
  byTimeframe,
  findJob,
  groupBySymbol,
  heavy,
  jobProgress,
  listUniverseViews,
  masterRows,
  parseReportId,
  parseUniverseName,
  prepareJob,
  prepareRetry,
  removeBars,
  responders,
  startBackfill,
  startExport,
  startUpdate,
  timeZoneOf,
  universeView,
} from "./services.ts";
import {
  card,
  corruptFilesNotice,
  deleteForm,
  empty,
  exportForm,
  exportStatus,
  fieldRows,
  findingCounts,
  jobAnchor,
  jobDetail,
  jobForm,
  jobsTable,
  type LayoutContext,
  notice,
  pruneForm,
  removalPlan,
  removalStarted,
  seriesTable,
  startedJobLink,
  startedJobs,
  statusBadge,
  symbolResults,
  timeTag,
  type TimeZoneSetting,
  TZ_COOKIE,
  universeMembers,
  universesTable,
  updateButton,
  validationDetail,
  validationList,
} from "./views.ts";

/** Registers the dashboard pages and partials. */
export function registerPages(app: Hono, ctx: WebContext, layout: LayoutContext): void {
  const { deps } = ctx;
  const { render, fragment } = responders(layout);

  app.get("/", async (c) => {
    const { q, page: pageNumber } = parseQuery(c.req.query(), "GET /");
    const tz = timeZoneOf(c);
    const series = await heavy(ctx, () => deps.data.series());
    const corrupt = await deps.data.corruptFiles();
    const jobs = deps.store.meta.listJobs({ limit: 8 });
    const symbols = new Set(series.map((s) => s.symbol));
    const timeframes = [...new Set(series.map((s) => s.timeframe))];
    const rows = series.reduce((n, s) => n + s.rows, 0);
    const bytes = series.reduce((n, s) => n + s.bytes, 0);
    const files = series.reduce((n, s) => n + s.files, 0);
    const running = deps.store.meta.listJobs({ status: "running", limit: 100 }).length;
    const reports = deps.validation ? await deps.validation.listReports({ limit: 5 }) : undefined;
    const names = _masterNames(ctx, symbols);
    // Stale: a series whose last stored session is older than the last one that has closed.
    const stale = readSeriesFreshness(deps.store.meta, ctx.now()).filter((s) => s.stale);
    const body = html`
      <h1>Overview</h1>
      ${scheduleBanner(deps.scheduler?.alerts() ?? [], tz)}
      ${stale.length === 0 ? "" : notice(
        html`
          ${formatCount(stale.length)} series stale since the last expected session: ${stale
            .slice(0, 5).map((s) => `${s.symbol} ${s.timeframe} (last ${s.last})`).join(
              ", ",
            )}${stale.length > 5 ? ", ..." : ""} · <a
            href="/api/status">status</a> · <a href="/schedules">schedules</a>
        `,
      )}
      <div class="cards">
        ${card("symbols", formatCount(symbols.size))}
        ${card("timeframes", timeframes.join(" ") || "-")}
        ${card("bars", formatCount(rows))}
        ${card(
          "on disk",
          formatBytes(bytes),
          html`<div class="small muted">${formatCount(files)} Parquet file(s)</div>`,
        )}
        ${card("jobs running", running)}
      </div>
      <h2>Stored data</h2>
      ${corruptFilesNotice(corrupt)}
      ${seriesTable(series, names, { q, page: pageNumber, tz })}
      <h2>Recent jobs <a class="small" href="/jobs">all jobs</a></h2>
      ${_jobsTable(ctx, jobs, tz)}
      <h2>Data quality</h2>
      ${dataQuality(ctx)}
      ${reports && reports.length > 0
        ? html`<h2>Validation reports <a class="small" href="/validation">all</a></h2>${
          validationList(reports, tz)
        }`
        : ""}
    `;
    return render(c, "Overview", "overview", body);
  });

  app.get("/partials/series", async (c) => {
    const { q, page: pageNumber } = parseQuery(c.req.query(), "GET /partials/series");
    const series = await heavy(ctx, () => deps.data.series());
    const names = _masterNames(ctx, series.map((s) => s.symbol));
    return fragment(
      c,
      seriesTable(series, names, { q, page: pageNumber, tz: timeZoneOf(c), resultsOnly: true }),
    );
  });

  app.get("/symbols", async (c) => {
    const { q } = parseQuery(c.req.query(), "GET /symbols");
    const tz = timeZoneOf(c);
    const results = await searchSymbols(ctx, q);
    const body = html`
      <h1>Symbols</h1>
      <form class="inline" action="/symbols" method="get" role="search">
        <label>search<input type="search" name="q" value="${q}" placeholder="AAPL" autocomplete="off" spellcheck="false"
      hx-get="/partials/symbols" hx-trigger="input changed delay:200ms, search" hx-target="#symbol-results" hx-push-url="false"></label>
        <button type="submit" class="secondary">Search</button>
      </form>
      <div id="symbol-results">${symbolResults(results, q, tz)}</div>
    `;
    return render(c, "Symbols", "symbols", body);
  });

  app.get("/partials/symbols", async (c) => {
    const { q } = parseQuery(c.req.query(), "GET /partials/symbols");
    return fragment(c, symbolResults(await searchSymbols(ctx, q), q, timeZoneOf(c)));
  });

  app.get("/universes", async (c) => {
    parseQuery(c.req.query(), "GET /universes");
    const views = await listUniverseViews(ctx);
    const body = html`
      <h1>Universes</h1>
      <p
        class="muted small">Named sets of symbols for <code>--universe NAME</code>: a list with membership history, or a filter over the symbol master evaluated point in time. Members and coverage are today's (New York).</p>
      ${universesTable(views.map((view) => ({ ...view.info, coverage: view.coverage })))}
    `;
    return render(c, "Universes", "universes", body);
  });

  app.get("/universes/:name", async (c) => {
    const { as_of } = parseQuery(c.req.query(), "GET /universes/{name}");
    const view = await universeView(ctx, parseUniverseName(c.req.param("name")), as_of);
    const { info } = view;
    const body = html`
      <h1>Universe ${info.name}</h1>
      <p><a href="/universes">All universes</a></p>
      <div class="table-wrap">
        <table>
          <tbody>${fieldRows([
            ["kind", info.kind],
            ...info.filter === null
              ? []
              : [["filter", html`<code>${info.filter}</code>`, "wrap"] as const],
            ["description", info.description ?? "-", "wrap"],
            ["created", timeTag(info.createdAt, timeZoneOf(c))],
            ["updated", timeTag(info.updatedAt, timeZoneOf(c))],
          ])}</tbody>
        </table>
      </div>
      <h2>Members</h2>
      ${universeMembers({ name: info.name, ...view })}
    `;
    return render(c, `Universe ${info.name}`, "universes", body);
  });

  app.get("/partials/universes/:name", async (c) => {
    const { as_of } = parseQuery(c.req.query(), "GET /partials/universes/{name}");
    const view = await universeView(ctx, parseUniverseName(c.req.param("name")), as_of);
    return fragment(c, universeMembers({ name: view.info.name, ...view }));
  });

  app.get("/jobs", (c) => {
    parseQuery(c.req.query(), "GET /jobs");
    const jobs = deps.store.meta.listJobs({ limit: 50 });
    const lastDay = previousTradingDay(exchangeDate(ctx.now()));
    const body = html`<h1>Jobs</h1>
<h2>Update stored data</h2>
${updateButton()}
<h2>Start an ingest</h2>
${
      jobForm({
        providers: PROVIDER_NAMES,
        defaults: {
          start: lastDay,
          end: lastDay,
          aggregate: deps.ingestDefaults?.aggregate ?? false,
        },
      })
    }
<h2>Jobs</h2>
${_jobsTable(ctx, jobs, timeZoneOf(c))}`;
    return render(c, "Jobs", "jobs", body);
  });

  app.get("/partials/jobs", (c) => {
    checkKnownParams(c.req.query(), []);
    return fragment(
      c,
      _jobsTable(ctx, deps.store.meta.listJobs({ limit: 50 }), timeZoneOf(c)),
    );
  });

  app.post("/partials/jobs", async (c) => {
    checkKnownParams(c.req.query(), []);
    const fields = await _formFields(c);
    const result = await deps.jobs.start(await prepareJob(ctx, fields));
    c.header("HX-Trigger", "jobs-changed");
    if (result.kind === "up-to-date") {
      return fragment(
        c,
        notice(
          `Nothing to do: all ${result.daysSkipped} symbol-day(s) are already stored (tick force to fetch them again)`,
        ),
      );
    }
    if (result.kind === "already-succeeded") return fragment(c, notice(_succeeded(result.job)));
    return fragment(c, _startedNotice(result));
  });

  app.get("/jobs/:id", (c) => {
    parseQuery(c.req.query(), "GET /jobs/{id}");
    const job = findJob(ctx, c.req.param("id"));
    const body = html`<h1>Job ${job.id}</h1>
<p><a href="/jobs">All jobs</a></p>
${_jobPanel(ctx, c, job)}`;
    return render(c, `Job ${job.id}`, "jobs", body);
  });

  app.get("/partials/jobs/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = findJob(ctx, c.req.param("id"));
    return fragment(c, _jobPanel(ctx, c, job));
  });

  app.post("/partials/jobs/:id/cancel", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = deps.jobs.cancel(findJob(ctx, c.req.param("id")).id);
    c.header("HX-Trigger", "jobs-changed");
    const message = job.kind === "ingest"
      ? "Cancelling: the tasks in flight finish, then the job ends cancelled and can be resumed."
      : job.kind === "export"
      ? "Cancelling: the export stops and leaves no file."
      : "Cancelling: the partition in flight finishes, then the job ends cancelled; run it again to finish.";
    return fragment(
      c,
      _jobPanel(ctx, c, job, { cancellable: false, message: notice(message) }),
    );
  });

  // Resume continues the same job (its unfinished tasks); retry starts its request again.
  for (const action of ["resume", "retry"] as const) {
    app.post(`/partials/jobs/:id/${action}`, async (c) => {
      checkKnownParams(c.req.query(), []);
      const job = findJob(ctx, c.req.param("id"));
      if (job.kind !== "ingest") {
        throw conflict(`Cannot ${action} job ${job.id}: it is a ${job.kind} job, not an ingest`);
      }
      if (job.status === "running" || job.status === "pending" || job.status === "succeeded") {
        throw conflict(`Cannot ${action} job ${job.id}: it is ${job.status}`);
      }
      const prepared = action === "resume"
        ? await prepareJob(ctx, { resume: job.id })
        : await prepareRetry(ctx, job);
      const result = await deps.jobs.start(prepared);
      c.header("HX-Trigger", "jobs-changed");
      if (result.kind !== "started") {
        const message = result.kind === "up-to-date"
          ? `Nothing to do: all ${result.daysSkipped} symbol-day(s) are already stored`
          : _succeeded(result.job);
        return fragment(
          c,
          _jobPanel(ctx, c, findJob(ctx, job.id), {
            cancellable: false,
            message: notice(message),
          }),
        );
      }
      const startedId = result.job.id;
      // Resuming shows this job running again; a retry is a new job, whose page htmx opens (the
      // fragment, with its link, is what a client without htmx gets).
      if (startedId !== job.id) c.header("HX-Redirect", `/jobs/${encodeURIComponent(startedId)}`);
      return fragment(
        c,
        _jobPanel(ctx, c, findJob(ctx, startedId), { message: _startedNotice(result) }),
      );
    });
  }

  app.post("/partials/update", async (c) => {
    checkKnownParams(c.req.query(), []);
    const fields = await _formFields(c, { dropEmpty: true });
    const { jobs } = await startUpdate(ctx, fields);
    c.header("HX-Trigger", "jobs-changed");
    return fragment(
      c,
      startedJobs(jobs, "Everything is up to date: every series has the last closed session."),
    );
  });

  app.post("/partials/backfill", async (c) => {
    checkKnownParams(c.req.query(), []);
    const { symbols, ...fields } = await _formFields(c, { dropEmpty: true });
    const { jobs } = await startBackfill(ctx, { ...fields, symbols: _list(symbols) });
    c.header("HX-Trigger", "jobs-changed");
    return fragment(c, startedJobs(jobs, "Nothing to backfill: no missing or partial days."));
  });

  app.get("/data", async (c) => {
    parseQuery(c.req.query(), "GET /data");
    const series = await heavy(ctx, () => deps.data.series());
    const lastDay = previousTradingDay(exchangeDate(ctx.now()));
    const options = {
      providers: PROVIDER_NAMES,
      timeframes: [...new Set(byTimeframe(series).map((s) => s.timeframe))],
      defaults: { before: addDays(lastDay, -365), start: lastDay, end: lastDay },
    };
    const body = html`
      <h1>Data</h1>
      <h2>Prune old bars</h2>
      <p
        class="muted small">Removes the bars of trading dates before a date, as <code>marketpipe prune --before</code>. The plan is shown first; nothing changes until you confirm it.</p>
      ${pruneForm(options)}
      <h2>Delete symbols</h2>
      <p
        class="muted small">Removes every bar of the symbols, as <code>marketpipe delete</code>. The plan is shown first; nothing changes until you confirm it.</p>
      ${deleteForm(options)}
      <h2>Export</h2>
      <p
        class="muted small">Writes the bars to one file on the server, as <code>marketpipe export</code>, and offers it for download when done.</p>
      ${exportForm(options)}
    `;
    return render(c, "Data", "data", body);
  });

  for (const action of ["prune", "delete"] as const) {
    app.post(`/partials/${action}`, async (c) => {
      checkKnownParams(c.req.query(), []);
      const { confirm, ...fields } = await _formFields(c, { dropEmpty: true });
      const request: Record<string, unknown> = { ...fields, dry_run: confirm !== "true" };
      if (action === "delete") request.symbols = _list(fields.symbols);
      const result = await removeBars(ctx, action, request);
      if ("plan" in result) return fragment(c, removalPlan(action, result.plan, fields));
      c.header("HX-Trigger", "jobs-changed");
      return fragment(c, removalStarted(result.job));
    });
  }

  app.post("/partials/exports", async (c) => {
    checkKnownParams(c.req.query(), []);
    const { symbols, columns, ...fields } = await _formFields(c, { dropEmpty: true });
    const job = await startExport(ctx, {
      ...fields,
      symbols: _list(symbols),
      columns: columns === undefined ? undefined : _list(columns),
    });
    c.header("HX-Trigger", "jobs-changed");
    return fragment(c, exportStatus(job, jobProgress(ctx, job)));
  });

  app.get("/partials/exports/:id", (c) => {
    checkKnownParams(c.req.query(), []);
    const job = findJob(ctx, c.req.param("id"));
    if (job.kind !== "export") throw notFound(`No export job ${shown(job.id)}`);
    return fragment(c, exportStatus(job, jobProgress(ctx, job)));
  });

  app.get("/validation", async (c) => {
    parseQuery(c.req.query(), "GET /validation");
    const reports = deps.validation ? await deps.validation.listReports({ limit: 100 }) : undefined;
    return render(
      c,
      "Validation",
      "validation",
      html`<h1>Validation reports</h1>${validationList(reports, timeZoneOf(c))}`,
    );
  });

  app.get("/validation/:id", async (c) => {
    const { severity, rule } = parseQuery(c.req.query(), "GET /validation/{id}");
    const id = parseReportId(c.req.param("id"));
    const report = await deps.validation?.getReport(id);
    if (!report) throw notFound(`No validation report ${shown(id)}`);
    return render(
      c,
      `Report ${id}`,
      "validation",
      html`<h1>Validation report ${id}</h1><p><a href="/validation">All reports</a></p>${
        validationDetail(report, { severity, rule, tz: timeZoneOf(c) })
      }`,
    );
  });

  app.get("/login", (c) => {
    const { next } = parseQuery(c.req.query(), "GET /login");
    return render(c, "Log in", "none", loginBody(ctx, next));
  });

  // Guessing the token through the form is throttled per client address (shared with Bearer
  // tokens on the API): after TOKEN_GUESSES_ALLOWED wrong tokens within TOKEN_GUESS_WINDOW_MS,
  // that client's attempts get 429 until the window has passed; other clients can still log in.
  app.post("/login", async (c) => {
    checkKnownParams(c.req.query(), []);
    const client = clientKey(c.env);
    const retryAfter = ctx.guesses.retryAfter(client);
    if (retryAfter > 0) {
      c.header("Retry-After", String(retryAfter));
      return render(
        c,
        "Log in",
        "none",
        notice(`Too many wrong tokens: try again in ${retryAfter} s`, "error"),
        429,
      );
    }
    const form = await c.req.parseBody();
    const next = safeNext(typeof form.next === "string" ? form.next : undefined);
    if (deps.token === undefined) return c.redirect(next, 303);
    const token = typeof form.token === "string" ? form.token : "";
    if (!hasValidCredentials(`Bearer ${token}`, undefined, deps.token)) {
      ctx.guesses.fail(client);
      return render(
        c,
        "Log in",
        "none",
        html`${notice("Wrong token", "error")}${loginBody(ctx, next)}`,
        401,
      );
    }
    setCookie(c, SESSION_COOKIE, sessionValue(deps.token), {
      ...SESSION_COOKIE_OPTIONS,
      maxAge: 604800,
    });
    return c.redirect(next, 303);
  });

  // The header's time zone switch: keeps the choice in a cookie and goes back to the page. A GET
  // form: it changes only how times read, and a form POST navigation carries `Origin: null`
  // under the no-referrer policy, which the same-origin check of writes refuses.
  app.get("/settings/tz", (c) => {
    const { tz, next } = parseQuery(c.req.query(), "GET /settings/tz");
    setCookie(c, TZ_COOKIE, tz, { sameSite: "Strict", path: "/", maxAge: 31_536_000 });
    return c.redirect(next, 303);
  });

  app.post("/logout", (c) => {
    checkKnownParams(c.req.query(), []);
    deleteCookie(c, SESSION_COOKIE, SESSION_COOKIE_OPTIONS);
    return c.redirect("/login", 303);
  });
}

/** The notice of an ingest that started or resumed: its link and the tasks it has to run. */
function _startedNotice(result: Extract<StartResult, { kind: "started" }>): Html {
  const started = `${result.resumed ? "Resumed" : "Started"} job`;
  return notice(
    html`${started} ${startedJobLink(result.job)}: ${result.tasksLeft} task(s) to run.`,
    "ok",
  );
}

/** That the job an ingest asked for had already succeeded, with its link. */
function _succeeded(job: JobRecord): Html {
  return html`Job ${jobAnchor(job.id)} had already succeeded.`;
}

/** The symbol master's name of each of `symbols` it knows. */
/** The jobs table, with the task counts of its live jobs for their pace. */
function _jobsTable(ctx: WebContext, jobs: readonly JobRecord[], tz: TimeZoneSetting): Html {
  const live = jobs.filter((job) => job.status === "running" || job.status === "pending");
  const tasks = new Map(live.map((job) => [job.id, ctx.deps.store.meta.countTasks(job.id)]));
  return jobsTable(jobs, { poll: true, tz, tasks, now: ctx.now() });
}

function _masterNames(ctx: WebContext, symbols: Iterable<string>): Map<string, string | null> {
  return new Map([...masterRows(ctx, [...symbols])].map(([symbol, row]) => [symbol, row.name]));
}

/**
 * The body of a job page: its tasks (an ingest) or its progress (other kinds); cancellable by
 * default when this server runs the job.
 */
function _jobPanel(
  ctx: WebContext,
  c: Context,
  job: JobRecord,
  { cancellable = ctx.deps.jobs.isRunningHere(job.id), message }: {
    cancellable?: boolean;
    message?: Html;
  } = {},
): Html {
  return jobDetail(job, ctx.deps.store.meta.listTasks(job.id), {
    cancellable,
    message,
    progress: jobProgress(ctx, job),
    tz: timeZoneOf(c),
    now: ctx.now(),
    aggregation: ctx.deps.jobs.aggregation(job.id),
  });
}

/**
 * The text fields of a form post; with `dropEmpty` the empty ones are left out (so the API's
 * defaults apply, as for a JSON body without them). No prototype: a field named __proto__ is
 * kept (and refused as unknown), not swallowed.
 */
async function _formFields(
  c: Context,
  { dropEmpty = false }: { dropEmpty?: boolean } = {},
): Promise<Record<string, string>> {
  const form = await c.req.parseBody();
  const fields: Record<string, string> = Object.create(null);
  for (const [key, value] of Object.entries(form)) {
    if (typeof value !== "string") throw badRequest(`Invalid ${shown(key)}: expected text`);
    if (value !== "" || !dropEmpty) fields[key] = value;
  }
  return fields;
}

/** A comma or space separated form field as the list the API takes. */
function _list(text: string | undefined): string[] | undefined {
  return text?.split(/[\s,]+/).filter((item) => item !== "");
}

function loginBody(ctx: WebContext, next: string): Html {
  if (ctx.deps.token === undefined) {
    return html`<h1>Log in</h1>${
      notice(
        "This server needs no token: it listens on loopback only and MARKETPIPE_API_TOKEN is unset.",
      )
    }<p><a href="/">Go to the overview</a></p>`;
  }
  return html`
    <h1>Log in</h1>
    <form class="inline" method="post" action="/login">
      <input type="hidden" name="next" value="${next}">
      <label>API token<input type="password" name="token" required autocomplete="current-password"></label>
      <button type="submit">Log in</button>
    </form>
    <p
      class="muted small">The token is MARKETPIPE_API_TOKEN of the server. The browser keeps an HttpOnly session cookie derived from it.</p>
  `;
}

async function searchSymbols(ctx: WebContext, q: string) {
  const series = await heavy(ctx, () => ctx.deps.data.series());
  const groups = groupBySymbol(series).filter((g) => g.symbol.includes(q));
  groups.sort((a, b) =>
    Number(!a.symbol.startsWith(q)) - Number(!b.symbol.startsWith(q)) ||
    a.symbol.localeCompare(b.symbol)
  );
  const top = groups.slice(0, 100);
  const master = masterRows(ctx, top.map((g) => g.symbol));
  return top.map((g) => ({
    symbol: g.symbol,
    name: master.get(g.symbol)?.name,
    exchange: master.get(g.symbol)?.exchange,
    timeframes: g.series.map((s) => s.timeframe),
    rows: g.series.reduce((n, s) => n + s.rows, 0),
    lastTs: Math.max(...g.series.map((s) => s.lastTs)),
    // Only daily bars: the last one is a trading date, not a time.
    lastDaily: g.series.every((s) => s.timeframe === "1d"),
  }));
}

/** Findings and quarantined bars of the latest finished job. */
function dataQuality(ctx: WebContext): Html {
  const meta = ctx.deps.store.meta;
  const job = meta.listJobs({ limit: 20 }).find((j) =>
    j.status === "succeeded" || j.status === "partial"
  );
  if (!job) return empty("No finished ingest yet.");
  const tasks = meta.listTasks(job.id);
  const findings = findingCounts(tasks);
  const quarantined = tasks.reduce((n, task) => n + task.quarantined, 0);
  const failed = tasks.filter((task) => task.status === "failed").length;
  const total = [...findings.values()].reduce((a, b) => a + b, 0);
  return html`<p>Latest finished job ${jobAnchor(job.id)} ${statusBadge(job.status)}: ${
    formatCount(job.barsWritten)
  } new bars, ${
    total === 0
      ? "no validation findings"
      : `${formatCount(total)} validation finding(s) (${
        [...findings].map(([rule, n]) => `${rule}: ${formatCount(n)}`).join(", ")
      })`
  }, ${formatCount(quarantined)} bar(s) quarantined${
    failed ? `, ${failed} task(s) failed` : ""
  }.</p>`;
}
