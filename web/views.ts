/**
 * Server-rendered HTML of the dashboard: the page layout and the fragments htmx swaps in. Pure
 * functions from plain data to {@link Html}; every value goes through the escaping template.
 *
 * @module
 */
import type { JobProgress } from "../app/mod.ts";
import { formatBytes, formatCount, formatDuration, zoneParts } from "../core/format.ts";
import { EXCHANGE_TIME_ZONE, exchangeDate, tradingSession } from "../core/calendar.ts";
import type { JobRecord, TaskRecord } from "../core/jobs.ts";
import type { JobAggregation } from "./jobs.ts";
import type { SymbolVersion } from "../core/reference.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import {
  EXPORT_FORMATS,
  type PruneSummary,
  type StoredBarSeries,
  type ValidationReportRecord,
} from "../storage/mod.ts";
import { href, type Html, html, type HtmlValue } from "./html.ts";

/** Pages of the navigation bar. */
export type Section =
  | "overview"
  | "symbols"
  | "universes"
  | "jobs"
  | "schedules"
  | "data"
  | "validation"
  | "query"
  | "none";

/**
 * Where timestamps are shown: `exchange` (America/New_York, the default), `utc`, or `local` (the
 * browser's zone: the server writes exchange time and web/static/pages.js re-renders it).
 */
export type TimeZoneSetting = "exchange" | "utc" | "local";

/** The values of {@link TimeZoneSetting}, the default first. */
export const TIME_ZONE_SETTINGS: readonly TimeZoneSetting[] = ["exchange", "utc", "local"];

/** Name of the cookie that keeps the time zone setting. */
export const TZ_COOKIE = "mp_tz";

/** The request-dependent part of a page: its time zone and its own path (for the switch). */
export interface ViewSettings {
  tz: TimeZoneSetting;
  /** Path and query of the page (without `tz`): where the switch sends the browser back. */
  path: string;
}

/** The settings of a page when a route gives none. */
export const DEFAULT_VIEW: ViewSettings = { tz: "exchange", path: "/" };

/**
 * An instant as text with its zone named: `2024-01-02 09:30 ET` (exchange, also the server's
 * text for `local`) or `2024-01-02 14:30 UTC`; with `date` the New York trading date alone
 * (`2024-01-02`), as daily bars are labelled. `-` for no time.
 *
 * @example
 * ```ts
 * formatTime(Date.parse("2024-01-02T14:30:00Z"), "exchange"); // "2024-01-02 09:30 ET"
 * ```
 */
export function formatTime(
  ms: number | null | undefined,
  tz: TimeZoneSetting,
  { date = false }: { date?: boolean } = {},
): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (date) return exchangeDate(ms);
  if (tz === "utc") return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  const part = zoneParts(ms, EXCHANGE_TIME_ZONE);
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} ET`;
}

/**
 * {@link formatTime} wrapped as `<time datetime="ISO" data-ts="ms">` so that scripts can show it
 * in the browser's zone; a trading date gets `data-date` and is left as it is.
 */
export function timeTag(
  ms: number | null | undefined,
  tz: TimeZoneSetting,
  options: { date?: boolean } = {},
): Html {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return html`-`;
  const text = formatTime(ms, tz, options);
  return options.date
    ? html`<time datetime="${text}" data-ts="${ms}" data-date="1">${text}</time>`
    : html`<time datetime="${new Date(ms).toISOString()}" data-ts="${ms}">${text}</time>`;
}

/** The header's time zone switch: a form that sets the cookie and comes back (no script needed). */
function _tzSwitch(view: ViewSettings): Html {
  const labels: Record<TimeZoneSetting, string> = {
    exchange: "New York (ET)",
    utc: "UTC",
    local: "my time zone",
  };
  return html`
    <form class="tz-switch" method="get" action="/settings/tz">
      <input type="hidden" name="next" value="${view.path}">
      <label>times in<select name="tz">${TIME_ZONE_SETTINGS.map((tz) =>
        _option(tz, labels[tz], tz === view.tz)
      )}</select></label>
      <button class="secondary" type="submit">Set</button>
    </form>
  `;
}

/** An `<option>` of a select, `selected` when it is the current value. */
function _option(value: string, label: string, selected: boolean): Html {
  return html`
    <option value="${value}" ${selected
      ? html`
        selected
      `
      : ""}>${label}</option>
  `;
}

/** What the layout needs besides the page body. */
export interface LayoutContext {
  /** URL of an embedded asset, with its content hash for caching. */
  asset(name: string): string;
  version: string;
  /** Whether the server asks for a token (shows log in / log out). */
  authEnabled: boolean;
}

const _HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
  refreshOnHistoryMiss: true,
  responseHandling: [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true },
    { code: "5..", swap: true, error: true },
  ],
});

/** A complete page. */
export function page(
  context: LayoutContext,
  options: { title: string; section: Section; body: Html; view?: ViewSettings },
): Html {
  const view = options.view ?? DEFAULT_VIEW;
  const nav: [Section, string, string][] = [
    ["overview", "/", "Overview"],
    ["symbols", "/symbols", "Symbols"],
    ["universes", "/universes", "Universes"],
    ["jobs", "/jobs", "Jobs"],
    ["schedules", "/schedules", "Schedules"],
    ["data", "/data", "Data"],
    ["validation", "/validation", "Validation"],
    ["query", "/query", "Query"],
  ];
  return html`
    <!doctype html>
    <html lang="en" data-tz="${view.tz}">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="htmx-config" content="${_HTMX_CONFIG}">
        <title>${options.title} · MarketPipe</title>
        <link rel="icon" type="image/svg+xml" href="${context.asset("favicon.svg")}">
        <link rel="stylesheet" href="${context.asset("app.css")}">
        <script src="${context.asset("htmx.min.js")}" defer></script>
        <script src="${context.asset("lightweight-charts.js")}" defer></script>
        <script src="${context.asset("app.js")}" defer></script>
        <script src="${context.asset("console.js")}" defer></script>
        <script src="${context.asset("pages.js")}" defer></script>
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/"><img src="${context.asset("favicon.svg")}" alt="">MarketPipe</a>
          <nav>${nav.map(([section, path, label]) =>
            html`<a href="${path}" class="${
              section === options.section ? "active" : ""
            }">${label}</a>`
          )}${context.authEnabled
            ? html`
              <form class="logout" method="post"
                action="/logout"><button class="secondary" type="submit">Log out</button></form>
            `
            : ""}</nav>
          ${_tzSwitch(view)}
        </header>
        <main>
    ${options.body}
        </main>
        <footer>MarketPipe ${context.version} · times are ${view.tz === "utc"
          ? "UTC"
          : view.tz === "local"
          ? "in your time zone"
          : "New York (ET)"} unless marked otherwise; daily bars show their trading date · charts by
    <a href="https://www.tradingview.com/lightweight-charts/" rel="noopener noreferrer">TradingView Lightweight Charts™</a></footer>
      </body>
    </html>
  `;
}

/** A table head: a `<th>` per column, `{ num }` for a right-aligned column of numbers. */
export function tableHead(columns: readonly (string | { num: string })[]): Html {
  const cells = columns.map((column) =>
    typeof column === "string" ? html`<th>${column}</th>` : html`<th class="num">${column.num}</th>`
  );
  return html`
    <thead>
      <tr>${cells}</tr>
    </thead>
  `;
}

/** A card of a `.cards` row: a label over a value, then `note` (a small line, say). */
export function card(label: HtmlValue, value: HtmlValue, note: HtmlValue = ""): Html {
  const labelHtml = html`<div class="label">${label}</div>`;
  const valueHtml = html`<div class="value">${value}</div>`;
  return html`<div class="card">${labelHtml}${valueHtml}${note}</div>`;
}

/** Table rows of a header and its value each; `wrap` lets a long value wrap. */
export function fieldRows(rows: readonly (readonly [string, HtmlValue, "wrap"?])[]): Html {
  return html`${
    rows.map(([name, value, wrap]) => {
      const cell = wrap ? html`<td class="wrap">${value}</td>` : html`<td>${value}</td>`;
      return html`<tr><th>${name}</th>${cell}</tr>`;
    })
  }`;
}

/** A link to a job's page, named by its id. */
export function jobAnchor(id: string): Html {
  return html`<a href="${href(`/jobs/${encodeURIComponent(id)}`)}">${id}</a>`;
}

/** A message box; `error` styles it as a failure. */
export function notice(message: HtmlValue, kind: "info" | "error" | "ok" = "info"): Html {
  return html`<div class="notice ${kind === "info" ? "" : kind}" role="${
    kind === "error" ? "alert" : "status"
  }">${message}</div>`;
}

/** An empty state. */
export function empty(message: HtmlValue): Html {
  return html`<div class="empty">${message}</div>`;
}

/** A job status as a coloured badge. */
export function statusBadge(status: string): Html {
  return html`<span class="status status-${status}">${status}</span>`;
}

/** Milliseconds to add to a UTC instant to get New York wall-clock time on a trading date. */
export function nyOffsetMs(tradingDate: string): number {
  const session = tradingSession(tradingDate);
  if (!session) return 0;
  return Date.parse(`${tradingDate}T04:00:00Z`) - session.preOpen;
}

function _symbolsText(symbols: readonly string[]): string {
  return symbols.length <= 4
    ? symbols.join(",")
    : `${symbols.slice(0, 3).join(",")} +${symbols.length - 3}`;
}

/** Tasks of a job that have ended (done or failed), of all its tasks. */
export interface TaskCounts {
  ended: number;
  total: number;
}

function _took(job: JobRecord): string {
  return job.startedAt && job.finishedAt ? formatDuration(job.finishedAt - job.startedAt) : "-";
}

/**
 * How long a job took; for a live one, how long it has run, its tasks ended, its pace in bars
 * written per second and the time left at the pace of the tasks ended so far.
 */
function _tookOrPace(job: JobRecord, now: number, tasks: TaskCounts | undefined): Html | string {
  const live = job.status === "running" || job.status === "pending";
  if (!live || job.startedAt === null) return _took(job);
  const pace = _pace(job, { now, bars: job.barsWritten, ...tasks ?? { ended: 0, total: 0 } });
  const parts = [formatDuration(pace.elapsedMs!)];
  if (tasks !== undefined && tasks.total > 0) {
    parts.push(`${formatCount(tasks.ended)}/${formatCount(tasks.total)} tasks`);
    if (pace.barsPerSecond !== null) {
      parts.push(`${formatCount(Math.round(pace.barsPerSecond))} bars/s`);
    }
    if (pace.etaMs !== null && tasks.ended < tasks.total) {
      parts.push(`ETA ${formatDuration(pace.etaMs)}`);
    }
  }
  return html`<span data-pace="${job.id}">${parts.join(" · ")}</span>`;
}

/**
 * The jobs table. It refreshes itself every second while a job is pending or running, and
 * whenever a `jobs-changed` event fires (after a start or cancel). A live job shows its pace
 * when `tasks` has its task counts.
 */
export function jobsTable(
  jobs: readonly JobRecord[],
  options: {
    poll: boolean;
    tz?: TimeZoneSetting;
    tasks?: ReadonlyMap<string, TaskCounts>;
    now?: number;
  },
): Html {
  const now = options.now ?? Date.now();
  const tz = options.tz ?? "exchange";
  const live = jobs.some((job) => job.status === "running" || job.status === "pending");
  const trigger = `jobs-changed from:body${options.poll && live ? ", every 1s" : ""}`;
  return html`
    <div id="jobs-table" hx-get="/partials/jobs" hx-trigger="${trigger}"
      hx-swap="outerHTML">${jobs.length === 0
        ? empty("No jobs yet. Start one with the form above or `marketpipe ingest`.")
        : html`
          <div class="table-wrap">
            <table>
              ${tableHead([
                "job",
                "kind",
                "status",
                "provider",
                "tf",
                "symbols",
                "dates",
                { num: "bars" },
                "created",
                "took",
              ])}
              <tbody>${jobs.map((job) =>
                html`
                  <tr data-job="${job.id}">
                    <td>${jobAnchor(job.id)}</td>
                    <td>${job.kind}</td>
                    <td>${statusBadge(job.status)}</td>
                    <td>${job.provider}</td>
                    <td>${job.timeframe}</td>
                    <td>${_symbolsText(job.symbols)}</td>
                    <td>${job.start}..${job.end}</td>
                    <td class="num">${formatCount(job.barsWritten)}</td>
                    <td>${timeTag(job.createdAt, tz)}</td>
                    <td>${_tookOrPace(job, now, options.tasks?.get(job.id))}</td>
                  </tr>
                `
              )}</tbody>
            </table>
          </div>
        `}</div>
  `;
}

/** Per-symbol progress of a job, from its tasks. */
export interface SymbolProgress {
  symbol: string;
  tasks: number;
  done: number;
  failed: number;
  running: number;
  barsWritten: number;
  barsReplaced: number;
  quarantined: number;
  errors: string[];
}

/** Groups a job's tasks by symbol. */
export function progressBySymbol(tasks: readonly TaskRecord[]): SymbolProgress[] {
  const bySymbol = new Map<string, SymbolProgress>();
  for (const task of tasks) {
    const entry = bySymbol.get(task.symbol) ?? {
      symbol: task.symbol,
      tasks: 0,
      done: 0,
      failed: 0,
      running: 0,
      barsWritten: 0,
      barsReplaced: 0,
      quarantined: 0,
      errors: [],
    };
    bySymbol.set(task.symbol, entry);
    entry.tasks++;
    if (task.status === "done") entry.done++;
    if (task.status === "failed") entry.failed++;
    if (task.status === "running") entry.running++;
    entry.barsWritten += task.barsWritten;
    entry.barsReplaced += task.barsReplaced;
    entry.quarantined += task.quarantined;
    if (task.error && !entry.errors.includes(task.error)) entry.errors.push(task.error);
  }
  return [...bySymbol.values()];
}

/** Validation findings of a job's tasks, counted per rule. */
export function findingCounts(tasks: readonly TaskRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const task of tasks) {
    for (const [rule, n] of Object.entries(task.findings)) {
      counts.set(rule, (counts.get(rule) ?? 0) + n);
    }
  }
  return counts;
}

/** What a job page shows besides the job: the time zone, the clock and what this server knows. */
export interface JobDetailOptions {
  cancellable: boolean;
  message?: Html;
  progress?: JobProgress;
  tz?: TimeZoneSetting;
  /** Now, for elapsed time, rate and ETA of a running job (default `Date.now()`). */
  now?: number;
  /** Whether the ingest rolled its bars up (known for jobs this server ran). */
  aggregation?: JobAggregation;
}

/** Elapsed time, bars per second and the time left of an ingest, from its tasks. */
export interface JobPace {
  elapsedMs: number | null;
  barsPerSecond: number | null;
  etaMs: number | null;
}

/**
 * The pace of an ingest: elapsed since it started (to its end when it ended), bars fetched per
 * second, and for a running job the time left at the pace of the tasks done so far.
 */
export function jobPace(job: JobRecord, tasks: readonly TaskRecord[], now: number): JobPace {
  return _pace(job, {
    now,
    bars: tasks.reduce((n, task) => n + task.barsFetched, 0),
    ended: tasks.filter((task) => task.status === "done" || task.status === "failed").length,
    total: tasks.length,
  });
}

/** {@link JobPace} at `now` from the `bars` handled so far and the tasks ended of all. */
function _pace(
  job: JobRecord,
  work: { now: number; bars: number; ended: number; total: number },
): JobPace {
  const { now } = work;
  if (job.startedAt === null) return { elapsedMs: null, barsPerSecond: null, etaMs: null };
  const live = job.status === "running" || job.status === "pending";
  const elapsedMs = Math.max(0, (live ? now : job.finishedAt ?? now) - job.startedAt);
  return {
    elapsedMs,
    barsPerSecond: elapsedMs > 0 ? work.bars / (elapsedMs / 1000) : null,
    etaMs: live && work.ended > 0 ? elapsedMs * (work.total - work.ended) / work.ended : null,
  };
}

function _aggregationText(job: JobRecord, aggregation: JobAggregation | undefined): string {
  if (aggregation === undefined) {
    return job.timeframe === "1m" ? "not known (run by another process)" : "no (not 1m bars)";
  }
  const label = {
    off: "no (not asked)",
    pending: "asked: after the ingest",
    running: "running",
    done: "done",
    skipped: "not run",
    failed: "failed",
  }[aggregation.state];
  return aggregation.detail ? `${label}: ${aggregation.detail}` : label;
}

/** The job statuses an ingest can be resumed or retried from. */
const _RESTARTABLE = new Set(["cancelled", "failed", "partial"]);

/** Resume (continue this job) and Retry (start its request again) for an ended ingest. */
function _restartButtons(job: JobRecord): Html {
  const path = `/partials/jobs/${encodeURIComponent(job.id)}`;
  return html`
    <div class="controls job-actions">
      <button type="button" hx-post="${href(`${path}/resume`)}" hx-target="#job-detail"
        hx-swap="outerHTML" data-action="resume"
        title="Continue this job: its unfinished tasks run, done ones are kept">Resume</button>
      <button type="button" class="secondary" hx-post="${href(`${path}/retry`)}"
        hx-target="#job-detail" hx-swap="outerHTML" data-action="retry"
        title="Start the same request again as a new job that fetches every day again">Retry</button>
      <span class="small muted">or <code>marketpipe ingest --resume ${job.id}</code></span>
    </div>
  `;
}

/** The body of a job page; polls itself while the job is live. */
export function jobDetail(
  job: JobRecord,
  tasks: readonly TaskRecord[],
  options: JobDetailOptions,
): Html {
  const live = job.status === "running" || job.status === "pending";
  if (job.kind !== "ingest") return _operationDetail(job, live, options);
  const tz = options.tz ?? "exchange";
  const done = tasks.filter((task) => task.status === "done").length;
  const failed = tasks.filter((task) => task.status === "failed").length;
  const pace = jobPace(job, tasks, options.now ?? Date.now());
  const elapsed = pace.elapsedMs === null ? "-" : formatDuration(pace.elapsedMs);
  const symbols = progressBySymbol(tasks);
  const findings = findingCounts(tasks);
  return html`
    <section id="job-detail" ${_jobPoll(job, live)} data-status="${job.status}">
    ${options.message ?? ""}
    <div class="job-progress">
      <progress class="full" max="${Math.max(tasks.length, 1)}" value="${done +
        failed}"></progress>
      <p class="small" id="job-pace">${done}/${tasks.length} task(s) done${failed
        ? `, ${failed} failed`
        : ""} · elapsed <span data-pace="elapsed">${elapsed}</span> · <span data-pace="rate">${pace
          .barsPerSecond ===
          null
        ? "-"
        : formatCount(Math.round(pace.barsPerSecond))}</span> bars/s${live
        ? html`
          · ETA <span data-pace="eta">${pace.etaMs === null
            ? "-"
            : formatDuration(pace.etaMs)}</span>
        `
        : ""}</p>
    </div>
    <div class="cards">
    ${card("status", statusBadge(job.status))}
    ${card("tasks", `${done}/${tasks.length}`)}
    ${card("new bars", formatCount(job.barsWritten))}
    ${card(live ? "elapsed" : "took", elapsed)}
    </div>
    ${job.error ? notice(job.error, job.status === "cancelled" ? "info" : "error") : ""}
    ${options.cancellable && live
      ? _cancelButton(job, "Tasks in flight finish; resume it later.")
      : ""}
    ${!live && _RESTARTABLE.has(job.status) ? _restartButtons(job) : ""}
    <div class="table-wrap"><table>
    <tbody>
    <tr><th>provider</th><td>${job.provider} (feed ${job.feed}, adjustment ${job
      .adjustment})</td></tr>
    <tr><th>timeframe</th><td>${job.timeframe}</td></tr>
    <tr><th>dates</th><td>${job.start}..${job.end}</td></tr>
    <tr><th>symbols</th><td class="wrap">${job.symbols.join(", ")}</td></tr>
    <tr><th>aggregation</th><td class="wrap" id="job-aggregation">${_aggregationText(
      job,
      options.aggregation,
    )}</td></tr>
    <tr><th>created</th><td>${timeTag(job.createdAt, tz)}</td></tr>
    <tr><th>started</th><td>${timeTag(job.startedAt, tz)}</td></tr>
    <tr><th>finished</th><td>${timeTag(job.finishedAt, tz)}</td></tr>
    <tr><th>findings</th><td class="wrap">${findings.size === 0
      ? "none"
      : [...findings].map(([rule, count]) => `${rule}: ${formatCount(count)}`).join(", ")}</td></tr>
    </tbody></table></div>
    <h2>Per symbol</h2>
    <div class="table-wrap"><table>
    <thead><tr><th>symbol</th><th>tasks</th><th class="num">new</th><th class="num">updated</th><th class="num">quarantined</th><th>errors</th></tr></thead>
    <tbody>${symbols.map((s) =>
      html`
        <tr>
          <td><a href="${href(`/symbols/${encodeURIComponent(s.symbol)}`)}">${s.symbol}</a></td>
          <td>${s.done}/${s.tasks}${s.running ? ` (${s.running} running)` : ""}${s.failed
            ? `, ${s.failed} failed`
            : ""}</td>
          <td class="num">${formatCount(s.barsWritten)}</td>
          <td class="num">${formatCount(s.barsReplaced)}</td>
          <td class="num">${formatCount(s.quarantined)}</td>
          <td class="wrap">${s.errors.join("; ")}</td>
        </tr>
      `
    )}</tbody></table></div>
    </section>
  `;
}

/** The attributes that make a live section reload itself from `path` every second. */
function _poll(live: boolean, path: string): Html {
  return live
    ? html`
      hx-get="${href(path)}" hx-trigger="every 1s" hx-swap="outerHTML"
    `
    : html``;
}

function _jobPoll(job: JobRecord, live: boolean): Html {
  return _poll(live, `/partials/jobs/${encodeURIComponent(job.id)}`);
}

function _cancelButton(job: JobRecord, what: string): Html {
  return html`
    <button class="danger" hx-post="${href(
      `/partials/jobs/${encodeURIComponent(job.id)}/cancel`,
    )}" hx-target="#job-detail" hx-swap="outerHTML"
      hx-confirm="Cancel job ${job.id}? ${what}">Cancel job</button>
  `;
}

/** The job page of a prune, delete or export: its progress, options and result. */
function _operationDetail(job: JobRecord, live: boolean, options: JobDetailOptions): Html {
  const { progress } = options;
  const tz = options.tz ?? "exchange";
  const result = job.result ?? {};
  const params = Object.entries(job.params).map(([key, value]) => `${key} ${value}`).join(", ");
  return html`
    <section id="job-detail" ${_jobPoll(job, live)} data-status="${job.status}">
    ${options.message ?? ""}
    <div class="job-progress"><progress class="full" max="${Math.max(
      progress?.total ?? 0,
      1,
    )}" value="${progress?.done ?? 0}"></progress></div>
    <div class="cards">
    ${card("status", statusBadge(job.status))}
    ${card(
      progress?.unit ?? "progress",
      progress ? `${formatCount(progress.done)}/${formatCount(progress.total)}` : "-",
    )}
    ${card("took", _took(job))}
    </div>
    ${job.error ? notice(job.error, job.status === "cancelled" ? "info" : "error") : ""}
    ${options.cancellable && live
      ? _cancelButton(
        job,
        job.kind === "export"
          ? "No file is left."
          : "The partition in flight finishes; run it again to finish.",
      )
      : ""}
    ${job.status !== "succeeded" ? "" : job.kind === "export"
      ? notice(
        html`Exported ${formatCount(Number(result.rows))} bar(s), ${
          formatBytes(Number(result.bytes))
        }: ${_downloadButton(job)}`,
        "ok",
      )
      : notice(
        `Removed ${formatCount(Number(result.bars))} bar(s) from ${
          Array.isArray(result.partitions) ? result.partitions.length : 0
        } partition(s) and forgot ${formatCount(Number(result.days))} ingested day record(s).`,
        "ok",
      )}
    <div class="table-wrap"><table>
    <tbody>
    <tr><th>kind</th><td>${job.kind}</td></tr>
    <tr><th>timeframe</th><td>${job.timeframe || "all"}</td></tr>
    <tr><th>dates</th><td>${job.start || job.end ? `${job.start}..${job.end}` : "all"}</td></tr>
    <tr><th>symbols</th><td class="wrap">${job.symbols.length === 0
      ? "all"
      : job.symbols.join(", ")}</td></tr>
    <tr><th>options</th><td class="wrap">${params || "none"}</td></tr>
    <tr><th>created</th><td>${timeTag(job.createdAt, tz)}</td></tr>
    <tr><th>started</th><td>${timeTag(job.startedAt, tz)}</td></tr>
    <tr><th>finished</th><td>${timeTag(job.finishedAt, tz)}</td></tr>
    </tbody></table></div>
    </section>
  `;
}

/** What the job form offers. */
export interface JobFormOptions {
  providers: readonly string[];
  /** Prefilled values; `aggregate` is the server's default (config `aggregate`). */
  defaults: { start: string; end: string; aggregate?: boolean };
}

/** The form that starts an ingest from the browser. */
export function jobForm(options: JobFormOptions): Html {
  return html`
    <form class="inline" hx-post="/partials/jobs" hx-target="#job-start-result" hx-swap="innerHTML">
      ${_select("provider", options.providers)}
      <label>symbols<input type="text" name="symbols" required placeholder="AAPL,MSFT" autocomplete="off" spellcheck="false"></label>
      <label>start<input type="date" name="start" required value="${options.defaults
        .start}"></label>
      <label>end<input type="date" name="end" value="${options.defaults.end}"></label>
      ${_select("timeframe", TIMEFRAMES)}
      <label class="check"><input type="checkbox" name="force" value="true"> force</label>
      <label
        title="Afterwards roll the 1m bars up to 5m ... 1d (marketpipe aggregate)">aggregate<select name="aggregate">
        <option value="false"${options.defaults.aggregate ? "" : " selected"}>no</option>
        <option value="true"${options.defaults.aggregate ? " selected" : ""}>yes (1m only)</option>
      </select></label>
      <button type="submit">Start ingest</button>
    </form>
    <div id="job-start-result"></div>
  `;
}

/** A link to a job that just started, marked with `data-started-job`. */
export function startedJobLink(job: JobRecord): Html {
  return html`<a href="${
    href(`/jobs/${encodeURIComponent(job.id)}`)
  }" data-started-job="${job.id}">${job.id}</a>`;
}

/** The button that downloads the file of a succeeded export job. */
function _downloadButton(job: JobRecord): Html {
  return html`<a class="button" href="${
    href(`/api/exports/${encodeURIComponent(job.id)}`)
  }" download>Download</a>`;
}

/** The button that runs `marketpipe update` from the jobs page. */
export function updateButton(): Html {
  return html`
    <div class="controls">
      <button type="button" hx-post="/partials/update" hx-target="#update-result"
        hx-swap="innerHTML">Update all series</button>
      <span
        class="small muted">Brings every stored series up to the last closed session, as <code>marketpipe update</code>.</span>
    </div>
    <div id="update-result"></div>
  `;
}

/** What an update or backfill started: its jobs, or that nothing needed fetching. */
export function startedJobs(jobs: readonly JobRecord[], upToDate: string): Html {
  if (jobs.length === 0) return notice(upToDate);
  return notice(
    html`Started ${jobs.length} job(s): ${
      jobs.map((job, i) =>
        html`${i > 0 ? ", " : ""}${startedJobLink(job)} (${job.timeframe} ${
          _symbolsText(job.symbols)
        } ${job.start}..${job.end})`
      )
    }.`,
    "ok",
  );
}

/** The choices of the Data page's forms. */
export interface DataFormOptions {
  providers: readonly string[];
  /** Timeframes that have stored bars (the export form offers these). */
  timeframes: readonly Timeframe[];
  /** Prefilled dates: the prune cutoff and the export range. */
  defaults: { before: string; start: string; end: string };
}

/** A select named and labelled `name` of `values`, after an empty choice labelled `empty`. */
function _select(name: string, values: readonly string[], empty?: string): Html {
  return html`<label>${name}<select name="${name}">${
    empty === undefined ? "" : html`<option value="">${empty}</option>`
  }${values.map((value) => html`<option value="${value}">${value}</option>`)}</select></label>`;
}

/** The prune form: previews what goes before a date (the confirm button comes with the plan). */
export function pruneForm(options: DataFormOptions): Html {
  return html`
    <form class="inline" hx-post="/partials/prune" hx-target="#prune-result" hx-swap="innerHTML">
      <label>before<input type="date" name="before" required value="${options.defaults
        .before}"></label>
      ${_select("timeframe", TIMEFRAMES, "all")} ${_select("provider", options.providers, "any")}
      <button type="submit" class="secondary">Preview prune</button>
    </form>
    <div id="prune-result"></div>
  `;
}

/** The delete form: previews removing whole symbols (the confirm button comes with the plan). */
export function deleteForm(options: DataFormOptions): Html {
  return html`
    <form class="inline" hx-post="/partials/delete" hx-target="#delete-result" hx-swap="innerHTML">
      <label>symbols<input type="text" name="symbols" required placeholder="AAPL,MSFT" autocomplete="off" spellcheck="false"></label>
      ${_select("timeframe", TIMEFRAMES, "all")} ${_select("provider", options.providers, "any")}
      <button type="submit" class="secondary">Preview delete</button>
    </form>
    <div id="delete-result"></div>
  `;
}

/** The export form: starts an export job whose status polls until the file can be downloaded. */
export function exportForm(options: DataFormOptions): Html {
  const timeframes = options.timeframes.length > 0 ? options.timeframes : TIMEFRAMES;
  return html`
    <form class="inline" hx-post="/partials/exports" hx-target="#export-result" hx-swap="innerHTML">
      <label>symbols<input type="text" name="symbols" required placeholder="AAPL,MSFT" autocomplete="off" spellcheck="false"></label>
      ${_select("timeframe", timeframes)}
      <label>start<input type="date" name="start" required value="${options.defaults
        .start}"></label>
      <label>end<input type="date" name="end" value="${options.defaults.end}"></label>
      ${_select("format", EXPORT_FORMATS)}
      <label
        title="Comma separated; empty: all">columns<input type="text" name="columns" placeholder="all: symbol,ts,open,..." autocomplete="off" spellcheck="false"></label>
      <button type="submit">Start export</button>
    </form>
    <div id="export-result"></div>
  `;
}

/**
 * What a prune or delete would remove (its dry run), and a button that runs exactly that:
 * `fields` are the previewed form fields, sent again with `confirm`.
 */
export function removalPlan(
  action: "prune" | "delete",
  plan: PruneSummary,
  fields: Readonly<Record<string, string>>,
): Html {
  if (plan.partitions.length === 0) {
    return notice("Nothing to remove: no stored bars match.");
  }
  return html`
    <p>Would remove <strong>${formatCount(plan.rows)}</strong> bar(s) from ${plan.partitions
      .length} partition(s) and forget ${formatCount(plan.days)} ingested day record(s):</p>
    <div class="table-wrap">
      <table>
        ${tableHead([
          "tree",
          "tf",
          "symbol",
          "year",
          "dates",
          { num: "bars removed" },
          { num: "bars kept" },
          { num: "files removed" },
          { num: "files rewritten" },
        ])}
        <tbody>${plan.partitions.map((p) =>
          html`
            <tr>
              <td>${p.tree}</td>
              <td>${p.timeframe}</td>
              <td>${p.symbol}</td>
              <td>${p.year}</td>
              <td>${p.firstDate}..${p.lastDate}</td>
              <td class="num">${formatCount(p.rows)}</td>
              <td class="num">${formatCount(p.kept)}</td>
              <td class="num">${p.removed}</td>
              <td class="num">${p.rewritten}</td>
            </tr>
          `
        )}</tbody>
      </table>
    </div>
    <form class="inline" hx-post="/partials/${action}" hx-target="#${action}-result"
      hx-swap="innerHTML">${Object.entries(fields).map(([name, value]) =>
        html`<input type="hidden" name="${name}" value="${value}">`
      )}<input type="hidden" name="confirm" value="true">
      <button type="submit" class="danger">Remove ${formatCount(plan.rows)} bar(s) for good</button>
    </form>
  `;
}

/** A prune or delete job that started after its confirmation. */
export function removalStarted(job: JobRecord): Html {
  return notice(
    html`Started ${job.kind} job ${startedJobLink(job)}; its page shows the partitions done.`,
    "ok",
  );
}

/** An export job: polls itself while it runs, then links its file (or says why it failed). */
export function exportStatus(job: JobRecord, progress: JobProgress | undefined): Html {
  const live = job.status === "running" || job.status === "pending";
  return html`
    <div id="export-status" ${_poll(
      live,
      `/partials/exports/${encodeURIComponent(job.id)}`,
    )} data-status="${job.status}">
    ${live
      ? html`<p>Export job ${startedJobLink(job)} ${statusBadge(job.status)}${
        progress
          ? html`
            ${formatCount(progress.done)} of ${formatCount(progress.total)} ${progress.unit}
                      <progress max="${Math.max(progress.total, 1)}" value="${progress
                        .done}"></progress>
          `
          : ""
      }</p>`
      : job.status === "succeeded"
      ? notice(
        html`Export job ${startedJobLink(job)} is done: ${_downloadButton(job)}`,
        "ok",
      )
      : notice(html`Export job ${startedJobLink(job)} ${job.status}: ${job.error ?? ""}`, "error")}
    </div>
  `;
}

/** Symbols per page of the overview's stored data table. */
export const SERIES_PAGE_SIZE = 50;

/** What the overview's stored data table shows: a filter and a page of it. */
export interface SeriesTableOptions {
  /** Symbol text filter (upper case); empty: every symbol. */
  q?: string;
  /** 1-based page number. */
  page?: number;
  pageSize?: number;
  tz?: TimeZoneSetting;
  /** Only the results (table, count and page links), for the htmx partial. */
  resultsOnly?: boolean;
}

/**
 * The stored data table of the overview: a row per symbol, a column per stored timeframe (bars,
 * first and last bar), filtered by symbol text and cut into pages, with its filter form. The
 * form and page links reload only this section with htmx and the whole page without scripts.
 */
export function seriesTable(
  series: readonly StoredBarSeries[],
  names: ReadonlyMap<string, string | null> = new Map(),
  options: SeriesTableOptions = {},
): Html {
  const q = options.q ?? "";
  const tz = options.tz ?? "exchange";
  const pageSize = options.pageSize ?? SERIES_PAGE_SIZE;
  if (series.length === 0) {
    return html`<section id="series-table">${
      empty(html`
        No bars stored yet. Run <code>marketpipe ingest</code> or start a job on the <a
          href="/jobs">jobs page</a>.
      `)
    }</section>`;
  }
  const timeframes = TIMEFRAMES.filter((tf) => series.some((s) => s.timeframe === tf));
  const bySymbol = new Map<string, Map<Timeframe, StoredBarSeries>>();
  for (const s of series) {
    let row = bySymbol.get(s.symbol);
    if (!row) bySymbol.set(s.symbol, row = new Map());
    row.set(s.timeframe, s);
  }
  const symbols = [...bySymbol.keys()].filter((symbol) => symbol.includes(q)).sort((a, b) =>
    Number(!a.startsWith(q)) - Number(!b.startsWith(q)) || a.localeCompare(b)
  );
  const pages = Math.max(1, Math.ceil(symbols.length / pageSize));
  const current = Math.min(Math.max(1, options.page ?? 1), pages);
  const shown = symbols.slice((current - 1) * pageSize, current * pageSize);
  const link = (page: number) => ({
    page: href("/", { q, page: page === 1 ? undefined : page }),
    partial: href("/partials/series", { q, page }),
  });
  const pager = pages <= 1 ? html`` : html`
    <nav class="pager" aria-label="pages of stored data">${Array.from(
      { length: pages },
      (_, i) => i + 1,
    ).map((n) =>
      n === current ? html`<span class="current" aria-current="page">${n}</span>` : html`
        <a href="${link(n).page}" hx-get="${link(n).partial}" hx-target="#series-results"
          hx-swap="outerHTML" hx-push-url="${link(n).page}">${n}</a>
      `
    )}</nav>
  `;
  const results = html`
    <div id="series-results" data-page="${current}" data-pages="${pages}">
      <p class="small muted">${formatCount(symbols.length)} of ${formatCount(
        bySymbol.size,
      )} symbol(s)${pages > 1 ? `, page ${current} of ${pages}` : ""}</p>
      ${shown.length === 0 ? empty(html`No stored symbol matches “${q}”.`) : html`
        <div class="table-wrap">
          <table class="pivot">
            ${tableHead([
              "symbol",
              "name",
              ...timeframes.map((num) => ({ num })),
              { num: "on disk" },
            ])}
            <tbody>${shown.map((symbol) => {
              const row = bySymbol.get(symbol)!;
              const bytes = [...row.values()].reduce((n, s) => n + s.bytes, 0);
              const files = [...row.values()].reduce((n, s) => n + s.files, 0);
              return html`
                <tr data-symbol="${symbol}">
                  <th scope="row"><a href="${href(
                    `/symbols/${encodeURIComponent(symbol)}`,
                  )}">${symbol}</a></th>
                  <td class="wrap">${names.get(symbol) ?? ""}</td>
                  ${timeframes.map((tf) => {
                    const s = row.get(tf);
                    if (!s) return html`<td class="num muted">-</td>`;
                    const date = tf === "1d";
                    return html`
                      <td class="num"
                        data-timeframe="${tf}"><a href="${href(
                          `/symbols/${encodeURIComponent(symbol)}`,
                          { timeframe: tf },
                        )}">${formatCount(s.rows)}</a><div class="small muted">${timeTag(
                          s.firstTs,
                          tz,
                          { date },
                        )}</div><div class="small muted">to ${timeTag(s.lastTs, tz, {
                          date,
                        })}</div></td>
                    `;
                  })}
                  <td class="num">${formatBytes(bytes)}<div class="small muted">${formatCount(
                    files,
                  )} file(s)</div></td>
                </tr>
              `;
            })}</tbody>
          </table>
        </div>
      `}
      ${pager}
    </div>
  `;
  if (options.resultsOnly) return results;
  return html`
    <section id="series-table">
      <form class="inline" action="/" method="get" role="search" hx-get="/partials/series"
        hx-target="#series-results" hx-swap="outerHTML" hx-trigger="input delay:250ms, submit">
        <label>filter symbols<input type="search" name="q" value="${q}" placeholder="AA" autocomplete="off" spellcheck="false"></label>
        <button type="submit" class="secondary">Filter</button>
      </form>
      ${results}
    </section>
  `;
}

/** The overview's alert for stored files that cannot be read: each file, its series and why. */
export function corruptFilesNotice(
  files: readonly { path: string; reason: string; symbol: string; timeframe: string }[],
): Html {
  if (files.length === 0) return html``;
  return notice(
    html`<strong>${files.length} stored file(s) cannot be read</strong>; their bars are left out below.
      Run <code>marketpipe repair</code> to check every file and <code>marketpipe repair --move</code>
      to move them aside (their days become missing, so an ingest fetches them again).
      <ul>${
      files.map((f) =>
        html`<li><a href="${
          href(`/symbols/${encodeURIComponent(f.symbol)}`, { timeframe: f.timeframe })
        }">${f.symbol}</a> ${f.timeframe}: <code>${f.path}</code>: ${f.reason}</li>`
      )
    }</ul>`,
    "error",
  );
}

/** Symbol search results. */
export function symbolResults(
  symbols: readonly {
    symbol: string;
    /** The symbol master's name and exchange, when it knows the symbol. */
    name?: string | null;
    exchange?: string | null;
    timeframes: string[];
    rows: number;
    lastTs: number;
    /** Whether the symbol has daily bars only (its last bar shows as a trading date). */
    lastDaily?: boolean;
  }[],
  query: string,
  tz: TimeZoneSetting = "exchange",
): Html {
  if (symbols.length === 0) {
    return empty(
      query === "" ? "No symbols stored yet." : html`No stored symbol matches “${query}”.`,
    );
  }
  return html`<ul class="result-list">${
    symbols.map((s) =>
      html`<li><a class="sym" href="${
        href(`/symbols/${encodeURIComponent(s.symbol)}`)
      }">${s.symbol}</a>${
        s.name
          ? html`
            <span class="small">${s.name}</span>
          `
          : ""
      }
<div class="small muted">${s.exchange ? `${s.exchange} · ` : ""}${s.timeframes.join(" ")} · ${
        formatCount(s.rows)
      } bars · last ${timeTag(s.lastTs, tz, { date: s.lastDaily })}</div></li>`
    )
  }</ul>`;
}

/** A validation report as listed. */
export interface ValidationReportSummary {
  id: string;
  createdAt: number;
  jobId: string | null;
  timeframe: string;
  symbols: string[];
  start: string;
  end: string;
  /** Stored bars checked. */
  barsChecked: number;
  findings: number;
  errors: number;
  warnings: number;
  infos: number;
  /** Bars the job quarantined, listed in the report. */
  quarantined: number;
  /** The stored record, which the API shows as `reportJson()` (app/records.ts) gives it. */
  record: ValidationReportRecord;
}

/** A validation report with its rule counts and offending bars. */
export interface ValidationReportDetail extends ValidationReportSummary {
  rules: { rule: string; severity: string; count: number }[];
  /** Offending bars (at most a bounded number; `barsTotal` counts all). */
  bars: { symbol: string; ts: string; rule: string; severity: string; detail: string }[];
  barsTotal: number;
  /** Report CSVs, relative to the data directory. */
  files: string[];
}

/** The list of validation reports, or a clear state when there are none. */
export function validationList(
  reports: readonly ValidationReportSummary[] | undefined,
  tz: TimeZoneSetting = "exchange",
): Html {
  if (reports === undefined) {
    return empty(
      html`No validation reports: this build stores none. Findings counted during ingests are shown on each job's page.`,
    );
  }
  if (reports.length === 0) {
    return empty(
      html`No validation reports yet. Run <code>marketpipe validate JOB_ID</code> (or with <code>--symbols</code> and dates) to write one.`,
    );
  }
  return html`
    <div class="table-wrap">
      <table>
        ${tableHead([
          "report",
          "created",
          "job",
          "tf",
          "symbols",
          "dates",
          { num: "bars checked" },
          { num: "errors" },
          { num: "warnings" },
          { num: "quarantined" },
        ])}
        <tbody>${reports.map((r) =>
          html`
            <tr>
              <td><a href="${href(`/validation/${encodeURIComponent(r.id)}`)}">${r.id}</a></td>
              <td>${timeTag(r.createdAt, tz)}</td>
              <td>${r.jobId ? jobAnchor(r.jobId) : "-"}</td>
              <td>${r.timeframe}</td>
              <td>${_symbolsText(r.symbols)}</td>
              <td>${r.start}..${r.end}</td>
              <td class="num">${formatCount(r.barsChecked)}</td>
              <td class="num">${formatCount(r.errors)}</td>
              <td class="num">${formatCount(r.warnings)}</td>
              <td class="num">${formatCount(r.quarantined)}</td>
            </tr>
          `
        )}</tbody>
      </table>
    </div>
  `;
}

/** Severities of findings, the worst first. */
export const SEVERITIES = ["error", "warn", "info"] as const;

function _severityRank(severity: string): number {
  const rank = (SEVERITIES as readonly string[]).indexOf(severity);
  return rank === -1 ? SEVERITIES.length : rank;
}

/** What a validation report page shows of its findings. */
export interface ValidationDetailOptions {
  /** Only findings of this severity. */
  severity?: string;
  /** Only findings of this rule. */
  rule?: string;
  tz?: TimeZoneSetting;
}

/**
 * One validation report: its counts per rule (errors first), and its offending bars filtered by
 * severity and rule, errors first, each linked to the chart of its symbol on its trading date.
 */
export function validationDetail(
  report: ValidationReportDetail,
  options: ValidationDetailOptions = {},
): Html {
  const tz = options.tz ?? "exchange";
  const path = `/validation/${encodeURIComponent(report.id)}`;
  const rules = [...report.rules].sort((a, b) =>
    _severityRank(a.severity) - _severityRank(b.severity) || b.count - a.count ||
    a.rule.localeCompare(b.rule)
  );
  const bars = report.bars.filter((b) =>
    (options.severity === undefined || b.severity === options.severity) &&
    (options.rule === undefined || b.rule === options.rule)
  ).sort((a, b) =>
    _severityRank(a.severity) - _severityRank(b.severity) || a.symbol.localeCompare(b.symbol) ||
    a.ts.localeCompare(b.ts)
  );
  const filtered = options.severity !== undefined || options.rule !== undefined;
  const ruleNames = [...new Set([...rules.map((r) => r.rule), ...report.bars.map((b) => b.rule)])];
  return html`
    <div class="cards">
      ${card("bars checked", formatCount(report.barsChecked))}
      ${card("errors", formatCount(report.errors))}
      ${card("warnings", formatCount(report.warnings))}
      ${card("quarantined", formatCount(report.quarantined))}
    </div>
    <div class="table-wrap">
      <table>
        <tbody>${fieldRows([
          ["created", timeTag(report.createdAt, tz)],
          ["job", report.jobId ? jobAnchor(report.jobId) : "-"],
          ["timeframe", report.timeframe],
          ["dates", `${report.start}..${report.end}`],
          ["symbols", report.symbols.join(", "), "wrap"],
        ])}</tbody>
      </table>
    </div>
    <h2>Per rule</h2>
    ${rules.length === 0 ? empty("No findings.") : html`
      <div class="table-wrap">
        <table id="report-rules">
          ${tableHead(["rule", "severity", { num: "count" }])}
          <tbody>${rules.map((r) =>
            html`
              <tr data-rule="${r.rule}">
                <td><a href="${href(path, { rule: r.rule })}">${r.rule}</a></td>
                <td><span class="severity severity-${r.severity}">${r.severity}</span></td>
                <td class="num">${formatCount(r.count)}</td>
              </tr>
            `
          )}</tbody>
        </table>
      </div>
    `}
    <h2>Offending bars${report.barsTotal > report.bars.length
      ? html`
        <span class="small muted">(of the first ${formatCount(report.bars.length)} of ${formatCount(
          report.barsTotal,
        )})</span>
      `
      : ""}</h2>
    <form class="inline" method="get" action="${path}" id="report-filter">
      <label>severity<select name="severity"><option value="">all</option>${SEVERITIES.map((
        severity,
      ) => _option(severity, severity, severity === options.severity))}</select></label>
      <label>rule<select name="rule"><option value="">all</option>${ruleNames.map((rule) =>
        _option(rule, rule, rule === options.rule)
      )}</select></label>
      <button type="submit" class="secondary">Filter</button>
      ${filtered ? html`<a href="${path}">clear</a>` : ""}
      <span class="small muted">${formatCount(bars.length)} shown, errors first</span>
    </form>
    ${bars.length === 0
      ? empty(filtered ? "No offending bars match the filter." : "No offending bars.")
      : html`
        <div class="table-wrap">
          <table id="report-bars">
            ${tableHead(["symbol", "bar", "rule", "severity", "detail"])}
            <tbody>${bars.map((b) => {
              const ms = Date.parse(b.ts);
              const day = Number.isFinite(ms) ? exchangeDate(ms) : undefined;
              const chart = href(`/symbols/${encodeURIComponent(b.symbol)}`, {
                timeframe: report.timeframe,
                start: day,
                end: day,
              });
              return html`
                <tr data-severity="${b.severity}">
                  <td><a href="${chart}">${b.symbol}</a></td>
                  <td>${Number.isFinite(ms)
                    ? html`<a href="${chart}" class="finding-link">${
                      timeTag(ms, tz, { date: report.timeframe === "1d" })
                    }</a>`
                    : b.ts}</td>
                  <td>${b.rule}</td>
                  <td><span class="severity severity-${b.severity}">${b.severity}</span></td>
                  <td class="wrap">${b.detail}</td>
                </tr>
              `;
            })}</tbody>
          </table>
        </div>
      `}
    <p class="small muted">Files: ${report.files.join(", ")}</p>
  `;
}

/**
 * One line under a symbol page's title: exchange, asset class, status and listing dates from the
 * symbol master, and the tickers the instrument had before; nothing when the master does not
 * know the symbol.
 */
export function masterSummary(
  row: SymbolVersion | undefined,
  history: readonly SymbolVersion[] = [],
): Html {
  if (row === undefined) return html``;
  const former = [
    ...new Set(
      history.filter((h) =>
        h.source === row.source && h.instrumentId === row.instrumentId && h.ticker !== row.ticker
      ).map((h) => h.ticker),
    ),
  ];
  const parts = [
    row.exchange,
    row.assetClass,
    row.status,
    row.listDate === null ? null : `listed ${row.listDate}`,
    row.delistDate === null ? null : `delisted ${row.delistDate}`,
    former.length === 0 ? null : `formerly ${former.join(", ")}`,
  ].filter((part) => part !== null);
  return html`<p class="small muted" id="symbol-summary">${parts.join(" · ")}</p>`;
}

/**
 * What the symbol master says of a symbol (its row valid now) and, when the instrument traded
 * under other tickers, the history of its rows; an empty state when the master does not know it.
 */
export function masterPanel(
  symbol: string,
  row: SymbolVersion | undefined,
  history: readonly SymbolVersion[] = [],
): Html {
  if (row === undefined) {
    return empty(
      html`The symbol master does not know ${symbol}. Load reference data with <code>marketpipe symbols update --source S</code>.`,
    );
  }
  const rows = history.filter((h) =>
    h.source === row.source && h.instrumentId === row.instrumentId
  );
  const tickers = [...new Set(rows.map((h) => h.ticker))];
  return html`
    <div class="table-wrap" id="symbol-master">
      <table>
        <tbody>${fieldRows([
          ["name", row.name ?? "-", "wrap"],
          ["exchange", row.exchange ?? "-"],
          ["asset class", row.assetClass],
          ["status", statusBadge(row.status)],
          ["listed", row.listDate ?? "-"],
          ["delisted", row.delistDate ?? "-"],
          ["FIGI", row.figi ?? "-"],
          ["source", `${row.source} (as of ${row.asOf})`],
        ])}</tbody>
      </table>
    </div>
    ${tickers.length > 1
      ? html`
        <h3>Ticker history</h3>
        <div class="table-wrap">
          <table>
            ${tableHead(["from", "until", "ticker", "exchange", "status"])}
            <tbody>${rows.map((h) =>
              html`
                <tr>
                  <td>${h.validFrom}</td>
                  <td>${h.validTo ?? "now"}</td>
                  <td>${h.ticker}</td>
                  <td>${h.exchange ?? "-"}</td>
                  <td>${h.status}</td>
                </tr>
              `
            )}</tbody>
          </table>
        </div>
      `
      : ""}
  `;
}

/** A universe as the dashboard lists it (see `UniverseView` in web/services.ts). */
export interface UniverseRow {
  name: string;
  kind: "list" | "filter";
  filter: string | null;
  description: string | null;
  members: number;
  coverage: UniverseCoverageView;
}

/** A universe's stored bars: per timeframe, how many members have bars and their dates. */
export interface UniverseCoverageView {
  /** Members counted. */
  members: number;
  /** Members with bars of any timeframe. */
  withBars: number;
  timeframes: readonly {
    timeframe: string;
    symbols: number;
    firstDate: string;
    lastDate: string;
  }[];
}

function _coverageText(coverage: UniverseCoverageView): Html {
  if (coverage.timeframes.length === 0) return html`<span class="muted">no bars stored</span>`;
  return html`${
    coverage.timeframes.map((tf, i) =>
      html`${
        i > 0 ? html`<br>` : ""
      }${tf.timeframe}: ${tf.symbols}/${coverage.members}, ${tf.firstDate}..${tf.lastDate}`
    )
  }`;
}

/** The universes page's table, or how to create one when there are none. */
export function universesTable(universes: readonly UniverseRow[]): Html {
  if (universes.length === 0) {
    return empty(
      html`No universes yet. Create one with <code>marketpipe universe create NAME --symbols AAPL,MSFT</code> or <code>--filter "exchange = 'XNAS' and asset_class = 'etf'"</code>.`,
    );
  }
  return html`
    <div class="table-wrap">
      <table>
        ${tableHead([
          "universe",
          "kind",
          "definition",
          { num: "members" },
          { num: "with bars" },
          "coverage (members with bars, dates)",
        ])}
        <tbody>${universes.map((u) =>
          html`
            <tr data-universe="${u.name}">
              <td><a href="${href(`/universes/${encodeURIComponent(u.name)}`)}">${u
                .name}</a>${u.description
                ? html`<div class="small muted">${u.description}</div>`
                : ""}</td>
              <td>${u.kind}</td>
              <td class="wrap">${u.filter === null
                ? html`<span class="muted">list</span>`
                : html`<code>${u.filter}</code>`}</td>
              <td class="num">${formatCount(u.members)}</td>
              <td class="num">${formatCount(u.coverage.withBars)}</td>
              <td class="small">${_coverageText(u.coverage)}</td>
            </tr>
          `
        )}</tbody>
      </table>
    </div>
  `;
}

/** One member of a universe on a date: its master row then, and its stored bars. */
export interface UniverseMemberRow {
  symbol: string;
  /** The master's row valid on the date (undefined when the master does not know the ticker). */
  master: SymbolVersion | undefined;
  /**
   * The ticker its bars are stored under: the instrument's current ticker (META for a member
   * that was FB on the date), else `symbol`.
   */
  storedAs: string;
  /** Stored series of `storedAs`, shortest timeframe first. */
  series: readonly { timeframe: string; rows: number; firstDate: string; lastDate: string }[];
}

/**
 * The members of a universe on `asOf` with their listing dates and stored bars, and the date
 * form that reloads only this section (htmx) or the page (without scripts).
 */
export function universeMembers(
  data: {
    name: string;
    asOf: string;
    members: readonly UniverseMemberRow[];
    coverage: UniverseCoverageView;
  },
): Html {
  const path = `/universes/${encodeURIComponent(data.name)}`;
  return html`
    <section id="universe-members" data-as-of="${data.asOf}">
      <form class="inline" action="${path}" method="get" hx-get="${href(
        `/partials/universes/${encodeURIComponent(data.name)}`,
      )}"
        hx-target="#universe-members" hx-swap="outerHTML" hx-trigger="change, submit">
        <label>as of<input type="date" name="as_of" value="${data.asOf}" required></label>
        <button type="submit" class="secondary">Show</button>
      </form>
      <p class="small muted">${formatCount(data.members.length)} member(s) on ${data
        .asOf}; ${formatCount(data.coverage.withBars)} with stored bars.</p>
      ${data.members.length === 0 ? empty(html`No members on ${data.asOf}.`) : html`
        <div class="table-wrap">
          <table>
            ${tableHead([
              "symbol",
              "name",
              "exchange",
              "class",
              "status",
              "listed",
              "delisted",
              "stored bars",
            ])}
            <tbody>${data.members.map((m) =>
              html`
                <tr data-symbol="${m.symbol}">
                  <td>${m.series.length > 0
                    ? html`<a href="${
                      href(`/symbols/${encodeURIComponent(m.storedAs)}`)
                    }">${m.symbol}</a>`
                    : m.symbol}${m.storedAs !== m.symbol
                    ? html`
                      <span class="small muted">(now ${m.storedAs})</span>
                    `
                    : ""}</td>
                  <td class="wrap">${m.master?.name ?? "-"}</td>
                  <td>${m.master?.exchange ?? "-"}</td>
                  <td>${m.master?.assetClass ?? "-"}</td>
                  <td>${m.master ? statusBadge(m.master.status) : "-"}</td>
                  <td>${m.master?.listDate ?? "-"}</td>
                  <td>${m.master?.delistDate ?? "-"}</td>
                  <td class="small">${m.series.length === 0
                    ? html`<span class="muted">none</span>`
                    : m.series.map((s, i) =>
                      html`${i > 0 ? html`<br>` : ""}${s.timeframe}: ${
                        formatCount(s.rows)
                      } bars, ${s.firstDate}..${s.lastDate}`
                    )}</td>
                </tr>
              `
            )}</tbody>
          </table>
        </div>
      `}
    </section>
  `;
}
