/**
 * What the REST API and the dashboard pages share: reads holding a heavy-request slot, lookups
 * by id, coverage of a symbol, the symbol master and universes with their stored coverage, and
 * the parsing of job, update, backfill, prune, delete, export and query request bodies.
 *
 * @module
 */
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import {
  exportOperation,
  type JobProgress,
  planBackfill,
  type PlanSettings,
  planUpdate,
  previewPrune,
  pruneOperation,
  type SeriesPlan,
  storedProgress,
} from "../app/mod.ts";
import {
  buildIngestRequest,
  type IngestInput,
  type PreparedIngest,
} from "../providers/ingest_request.ts";
import { providers } from "../providers/mod.ts";
import { addDays, exchangeDate } from "../core/calendar.ts";
import {
  type Clock,
  includesExtendedHours,
  lastCompletedSession,
  systemClock,
} from "../core/clock.ts";
import type { JobRecord } from "../core/jobs.ts";
import { SOURCE_PRIORITY, type SymbolVersion } from "../core/reference.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { CorruptFileError, didYouMean } from "../core/errors.ts";
import {
  BAR_COLUMNS,
  corruptFileMessage,
  EXPORT_FORMATS,
  type ExportRequest,
  type PruneSelection,
  type PruneSummary,
  QueryTimeoutError,
  readKnownEmptyDays,
  readStoredDayCounts,
  ReferenceStore,
  type StoredBarSeries,
  type UniverseInfo,
} from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import type { Html } from "./html.ts";
import {
  type LayoutContext,
  page,
  type Section,
  TIME_ZONE_SETTINGS,
  type TimeZoneSetting,
  TZ_COOKIE,
  type UniverseCoverageView,
  type UniverseMemberRow,
  type ViewSettings,
} from "./views.ts";
import { coverageCalendar, type CoverageDay, judgeByMinutes } from "./coverage.ts";
import { badRequest, HttpError, notFound } from "./errors.ts";
import {
  checkRange,
  parseChoice,
  parseDate,
  parseInteger,
  parseSymbol,
  parseTimeframe,
  shown,
} from "./params.ts";

/** Header htmx requests carry the page's time zone in (web/static/pages.js sets it). */
export const TZ_HEADER = "MP-TZ";

/**
 * The time zone a request asks for: `?tz=` (400 when it is not a setting), else the page's
 * (header {@link TZ_HEADER} of htmx requests), else the `mp_tz` cookie, else `exchange`.
 */
export function timeZoneOf(c: Context): TimeZoneSetting {
  const query = c.req.query("tz");
  if (query !== undefined && query !== "") {
    return parseChoice(query, "tz", TIME_ZONE_SETTINGS, "exchange");
  }
  for (const text of [c.req.header(TZ_HEADER), getCookie(c, TZ_COOKIE)]) {
    if ((TIME_ZONE_SETTINGS as readonly string[]).includes(text ?? "")) {
      return text as TimeZoneSetting;
    }
  }
  return "exchange";
}

/** What `page()` needs of a request: its time zone and its path without `tz` (for the switch). */
export function viewOf(c: Context): ViewSettings {
  const url = new URL(c.req.url);
  url.searchParams.delete("tz");
  return { tz: timeZoneOf(c), path: url.pathname + url.search };
}

/**
 * The two answers of the dashboard's route files: `render`, a whole page in the layout with the
 * request's view settings, and `fragment`, an HTML fragment for htmx.
 */
export function responders(layout: LayoutContext): {
  render(c: Context, title: string, section: Section, body: Html, status?: number): Response;
  fragment(c: Context, body: Html, status?: number): Response;
} {
  return {
    render: (c, title, section, body, status = 200) =>
      c.html(page(layout, { title, section, body, view: viewOf(c) }).value, status as 200),
    fragment: (c, body, status = 200) => c.html(body.value, status as 200),
  };
}

/** Longest coverage range one request may ask for, in days. */
const MAX_COVERAGE_DAYS = 7_400;

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
  const groups = Map.groupBy(series, (s) => s.symbol);
  return [...groups].map(([symbol, list]) => ({ symbol, series: list }));
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
    const mine = byTimeframe(
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
 * per day from its Parquet files, days the provider answered empty from the ingest records. An
 * aggregated timeframe is judged by the 1m bars beneath it too ({@link judgeByMinutes}), so the
 * API and the chart's calendar agree.
 */
export async function storedCoverage(
  ctx: WebContext,
  symbol: string,
  options: { timeframe: Timeframe; start: string; end: string },
): Promise<CoverageDay[]> {
  const days = await _ownCoverage(ctx, symbol, options);
  if (options.timeframe === "1m") return days;
  return judgeByMinutes(days, await _ownCoverage(ctx, symbol, { ...options, timeframe: "1m" }));
}

/** {@link storedCoverage} by the timeframe's own bars alone. */
async function _ownCoverage(
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

/** The symbol master and universes of the server's metadata database. */
export function referenceStore(ctx: WebContext): ReferenceStore {
  return new ReferenceStore(ctx.deps.store.meta.db);
}

/**
 * The master's row of each of `symbols` that it knows: the current one (as `ReferenceStore`'s
 * `lookup` picks it), or with `asOf` the one valid then, by {@link SOURCE_PRIORITY}, a listed
 * instrument before a delisted one that had the ticker too, then the newest.
 */
export function masterRows(
  ctx: WebContext,
  symbols: readonly string[],
  { asOf }: { asOf?: string } = {},
): Map<string, SymbolVersion> {
  const store = referenceStore(ctx);
  const wanted = new Set(symbols);
  const out = new Map<string, SymbolVersion>();
  if (asOf === undefined) {
    for (const symbol of wanted) {
      const row = store.lookup(symbol);
      if (row !== undefined) out.set(symbol, row);
    }
  } else {
    for (const [ticker, row] of _rowsOn(store, asOf)) if (wanted.has(ticker)) out.set(ticker, row);
  }
  return out;
}

/** The preferred row of each ticker on `asOf` (see {@link masterRows}). */
function _rowsOn(store: ReferenceStore, asOf: string): Map<string, SymbolVersion> {
  const out = new Map<string, SymbolVersion>();
  for (const row of store.symbolsAsOf({ asOf })) {
    const held = out.get(row.ticker);
    if (held === undefined || _preferred(row, held)) out.set(row.ticker, row);
  }
  return out;
}

/** Whether `a` is the better row of a ticker than `b`. */
function _preferred(a: SymbolVersion, b: SymbolVersion): boolean {
  const priority = (row: SymbolVersion) =>
    (SOURCE_PRIORITY as readonly string[]).indexOf(row.source);
  if (priority(a) !== priority(b)) return priority(a) < priority(b);
  const delisted = (row: SymbolVersion) => row.status === "delisted" ? 1 : 0;
  if (delisted(a) !== delisted(b)) return delisted(a) < delisted(b);
  return a.validFrom > b.validFrom;
}

/** A universe name from a path, lower-cased; 400 when it cannot be one. */
export function parseUniverseName(text: string): string {
  if (!/^[a-z][a-z0-9_-]{0,63}$/i.test(text)) {
    throw badRequest(
      `Invalid universe name ${
        shown(text)
      }: expected a letter, then up to 63 letters, digits, "_" or "-"`,
    );
  }
  return text.toLowerCase();
}

/** A universe with its members on `asOf` and their coverage. */
export interface UniverseView {
  info: UniverseInfo;
  asOf: string;
  members: UniverseMemberRow[];
  coverage: UniverseCoverageView;
}

/** Every universe with its members today (New York) and their stored coverage, by name. */
export async function listUniverseViews(ctx: WebContext): Promise<UniverseView[]> {
  const asOf = _today(ctx);
  const store = referenceStore(ctx);
  const infos = store.listUniverses({ asOf });
  const series = await heavy(ctx, () => ctx.deps.data.series());
  if (infos.length === 0) return [];
  const lookup = _masterLookup(store, asOf);
  return infos.map((info) => _universeView(ctx, store, info, lookup, series));
}

/** One universe on `asOf` (default today, New York); 404 when there is no such universe. */
export async function universeView(
  ctx: WebContext,
  name: string,
  asOf: string = _today(ctx),
): Promise<UniverseView> {
  const store = referenceStore(ctx);
  const info = store.getUniverse(name);
  if (info === undefined) {
    const names = store.listUniverses().map((u) => u.name);
    throw notFound(`No universe ${shown(name)}${didYouMean(name, names)}`);
  }
  const series = await heavy(ctx, () => ctx.deps.data.series());
  return _universeView(ctx, store, info, _masterLookup(store, asOf), series);
}

/** Today in New York by the server's clock (MARKETPIPE_NOW when set), as the CLI has it. */
function _today(ctx: WebContext): string {
  return exchangeDate((ctx.deps.clock ?? ctx.now)());
}

/** The master's rows on one date by ticker, and every instrument's current ticker. */
interface _MasterLookup {
  asOf: string;
  then: Map<string, SymbolVersion>;
  /** Keyed by source and instrument id. */
  currentTicker: Map<string, string>;
}

function _masterLookup(store: ReferenceStore, asOf: string): _MasterLookup {
  const then = _rowsOn(store, asOf);
  const currentTicker = new Map<string, string>();
  for (const row of store.symbolsAsOf()) {
    currentTicker.set(_instrumentKey(row), row.ticker);
  }
  return { asOf, then, currentTicker };
}

/**
 * For a member whose ticker no row has on `asOf` (a list member FB after it became META): the
 * row on `asOf` (else the last one) of the instrument that had the ticker last.
 */
function _formerTicker(
  store: ReferenceStore,
  symbol: string,
  asOf: string,
): SymbolVersion | undefined {
  const rows = store.history(symbol);
  const named = rows.filter((row) => row.ticker === symbol);
  if (named.length === 0) return undefined;
  const last = named.reduce((a, b) => (b.validFrom > a.validFrom ? b : a));
  const mine = rows.filter((row) => _instrumentKey(row) === _instrumentKey(last));
  return mine.find((row) =>
    row.validFrom <= asOf && (row.validTo === null || row.validTo > asOf)
  ) ??
    mine[mine.length - 1];
}

function _instrumentKey(row: SymbolVersion): string {
  return `${row.source}\u0000${row.instrumentId}`;
}

function _universeView(
  ctx: WebContext,
  store: ReferenceStore,
  info: UniverseInfo,
  lookup: _MasterLookup,
  series: readonly StoredBarSeries[],
): UniverseView {
  const { asOf } = lookup;
  const symbols = store.members(info.name, { asOf, today: _today(ctx) });
  const stored = byTimeframe(series);
  const members = symbols.map((symbol): UniverseMemberRow => {
    const master = lookup.then.get(symbol) ?? _formerTicker(store, symbol, asOf);
    // Bars are stored under the instrument's current ticker (META for a member that was FB).
    const storedAs = master === undefined
      ? symbol
      : lookup.currentTicker.get(_instrumentKey(master)) ?? symbol;
    return {
      symbol,
      master,
      storedAs,
      series: stored.filter((s) => s.symbol === storedAs).map((s) => ({
        timeframe: s.timeframe,
        rows: s.rows,
        firstDate: exchangeDate(s.firstTs),
        lastDate: exchangeDate(s.lastTs),
      })),
    };
  });
  return {
    info: { ...info, members: symbols.length },
    asOf,
    members,
    coverage: _coverage(members),
  };
}

function _coverage(members: readonly UniverseMemberRow[]): UniverseCoverageView {
  const byTf = new Map<string, { symbols: number; firstDate: string; lastDate: string }>();
  for (const member of members) {
    for (const s of member.series) {
      const entry = byTf.get(s.timeframe);
      if (entry === undefined) {
        byTf.set(s.timeframe, { symbols: 1, firstDate: s.firstDate, lastDate: s.lastDate });
      } else {
        entry.symbols++;
        if (s.firstDate < entry.firstDate) entry.firstDate = s.firstDate;
        if (s.lastDate > entry.lastDate) entry.lastDate = s.lastDate;
      }
    }
  }
  return {
    members: members.length,
    withBars: members.filter((member) => member.series.length > 0).length,
    timeframes: TIMEFRAMES.filter((tf) => byTf.has(tf)).map((timeframe) => ({
      timeframe,
      ...byTf.get(timeframe)!,
    })),
  };
}

/** Series in timeframe order, shortest first. */
export function byTimeframe(series: readonly StoredBarSeries[]): StoredBarSeries[] {
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
export async function jsonBody(c: Context): Promise<Record<string, unknown>> {
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
  const prepared = await _buildIngest(ctx, input);
  const timeframe = prepared.request.timeframe;
  if (aggregate === true && prepared.request.resumeJobId === undefined && timeframe !== "1m") {
    throw badRequest(`Cannot aggregate a ${timeframe} ingest: aggregation rolls up 1m bars`);
  }
  return { ...prepared, aggregate: aggregate ?? ctx.deps.ingestDefaults?.aggregate ?? false };
}

/**
 * The ingest of `job` asked for again (`Retry` on a job page): its provider, symbols, dates,
 * timeframe, feed, adjustment and provider options, forced, so that it runs as a new job that
 * fetches every day again (unforced, the same request would resume the unfinished job).
 */
export async function prepareRetry(
  ctx: WebContext,
  job: JobRecord,
): Promise<Omit<PreparedIngest, "dataDir">> {
  const input: IngestInput = {
    provider: job.provider,
    symbols: job.symbols,
    start: job.start,
    end: job.end,
    timeframe: job.timeframe,
    feed: job.feed,
    adjustment: job.adjustment,
    force: true,
  };
  const { seed, gapRate, corruptRate } = job.params;
  if (seed !== undefined) input["fake-seed"] = String(seed);
  if (gapRate !== undefined) input["fake-gap-rate"] = String(gapRate);
  if (corruptRate !== undefined) input["fake-corrupt-rate"] = String(corruptRate);
  return {
    ...await _buildIngest(ctx, input),
    aggregate: ctx.deps.ingestDefaults?.aggregate ?? false,
  };
}

/** The ingest of `input` as the CLI's builder checks it, its errors naming the JSON fields. */
function _buildIngest(ctx: WebContext, input: IngestInput): Promise<PreparedIngest> {
  return buildIngestRequest(input, {
    label: (name) => name.replaceAll("-", "_"),
    clock: ctx.deps.clock,
  });
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
    const unknown = Object.keys(body).find((key) => !["sql", "limit", "timeout_ms"].includes(key));
    if (unknown !== undefined) {
      throw badRequest(`Unknown field ${shown(unknown)}: expected sql, limit, timeout_ms`);
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
    const unknown = Object.keys(form).find((key) => !["sql", "limit", "timeout"].includes(key));
    if (unknown !== undefined) {
      throw badRequest(`Unknown field ${shown(unknown)}: expected sql, limit, timeout`);
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

/**
 * `POST /api/prune` and `POST /api/delete`: with `dry_run` (the default) the plan of what would
 * go, nothing changed; else the started job.
 */
export async function removeBars(
  ctx: WebContext,
  action: "prune" | "delete",
  body: Record<string, unknown>,
): Promise<{ plan: PruneSummary } | { job: JobRecord }> {
  const { selection, dryRun } = action === "prune"
    ? _preparePrune(ctx, body)
    : _prepareDelete(body);
  const { store, jobs } = ctx.deps;
  if (dryRun) return { plan: await heavy(ctx, () => previewPrune(store, selection)) };
  return { job: await jobs.startOperation(pruneOperation(store, action, selection)) };
}

/** `POST /api/exports`: starts the export job ({@link _prepareExport}). */
export async function startExport(
  ctx: WebContext,
  body: Record<string, unknown>,
): Promise<JobRecord> {
  const request = await _prepareExport(ctx, body);
  return await ctx.deps.jobs.startOperation(exportOperation(ctx.deps.store, request));
}

/** How far a job is: live when this server runs it, else from what it recorded. */
export function jobProgress(ctx: WebContext, job: JobRecord): JobProgress | undefined {
  return ctx.deps.jobs.progress(job.id) ?? storedProgress(ctx.deps.store, job) ?? undefined;
}

/** Starts planned ingests; the jobs that started (none when every one was up to date). */
async function _startPlanned(ctx: WebContext, plan: SeriesPlan): Promise<JobRecord[]> {
  const results = await ctx.deps.jobs.startAll(plan.jobs);
  return results.flatMap((result) => result.kind === "started" ? [result.job] : []);
}

/**
 * `POST /api/update` (`{symbols?, timeframe?}`): starts the ingests that bring every stored
 * series, or those asked for, from its last stored session to the last completed one, as
 * `marketpipe update` plans them (`aggregate` as the server's config sets it); `jobs` is empty
 * when every one is up to date.
 */
export async function startUpdate(
  ctx: WebContext,
  body: Record<string, unknown>,
): Promise<{ jobs: JobRecord[] }> {
  _checkFields(body, ["symbols", "timeframe"]);
  const symbols = _symbolsField(body);
  const timeframe = parseTimeframe(_stringField(body, "timeframe"));
  const plan = planUpdate(ctx.deps.store.meta, {
    ..._planSettings(ctx),
    clock: _clock(ctx),
    symbols,
    timeframe,
  });
  return { jobs: await _startPlanned(ctx, plan) };
}

/**
 * `POST /api/backfill` (`{symbols?, timeframe?, start?, end?, before?}`): starts the ingests of
 * the missing and partial days the gap report lists (judged over `start`..`end`, default each
 * series' stored range), and with `before` of the days from it up to each series' first one, as
 * `marketpipe backfill` plans them; `jobs` is empty when there are none.
 */
export async function startBackfill(
  ctx: WebContext,
  body: Record<string, unknown>,
): Promise<{ jobs: JobRecord[] }> {
  _checkFields(body, ["symbols", "timeframe", "start", "end", "before"]);
  const symbols = _symbolsField(body);
  const timeframe = parseTimeframe(_stringField(body, "timeframe"), "1m");
  const start = parseDate(_stringField(body, "start"), "start");
  const end = parseDate(_stringField(body, "end"), "end");
  const before = parseDate(_stringField(body, "before"), "before");
  const clock = _clock(ctx);
  if (end !== undefined && start === undefined) {
    throw badRequest("Missing start: end needs a first date");
  }
  checkRange(start, end);
  if (before !== undefined) {
    if (start !== undefined) {
      throw badRequest(
        "Cannot combine before with start: before extends each series back from its first stored session",
      );
    }
    const until = lastCompletedSession(clock(), {
      extendedHours: includesExtendedHours(timeframe),
    });
    if (until === undefined || before > until) {
      throw badRequest(
        `Invalid before ${before}: after the last closed session ${until ?? "(none)"}`,
      );
    }
  }
  const range = start === undefined ? undefined : { start, end: end ?? start };
  const plan = await heavy(ctx, () =>
    planBackfill(ctx.deps.store.dataDir, ctx.deps.store.meta, {
      ..._planSettings(ctx),
      clock,
      timeframe,
      symbols,
      range,
      before,
    }));
  return { jobs: await _startPlanned(ctx, plan) };
}

/** A prune or delete request: what goes, and whether only to show it (default: only show). */
interface _RemovalRequest {
  selection: PruneSelection;
  dryRun: boolean;
}

/**
 * `POST /api/prune` (`{before, timeframe?, symbols?, provider?, dry_run?}`): the bars of trading
 * dates before `before` (not after today), of one timeframe or every one.
 */
function _preparePrune(ctx: WebContext, body: Record<string, unknown>): _RemovalRequest {
  _checkFields(body, ["before", "timeframe", "symbols", "provider", "dry_run"]);
  const before = parseDate(_stringField(body, "before"), "before");
  if (before === undefined) {
    throw badRequest("Missing before: the first trading date to keep, YYYY-MM-DD");
  }
  const today = exchangeDate(_clock(ctx)());
  if (before > today) {
    throw badRequest(`Invalid before ${before}: it is after today (${today} in New York)`);
  }
  return _removal(body, before, _symbolsField(body));
}

/**
 * `POST /api/delete` (`{symbols, timeframe?, provider?, dry_run?}`): every stored bar of the
 * symbols, of one timeframe or every one.
 */
function _prepareDelete(body: Record<string, unknown>): _RemovalRequest {
  _checkFields(body, ["symbols", "timeframe", "provider", "dry_run"]);
  const symbols = _symbolsField(body);
  if (symbols === undefined) {
    throw badRequest('Missing symbols: the symbols whose bars to delete, like ["AAPL"]');
  }
  return _removal(body, undefined, symbols);
}

/**
 * `POST /api/exports` (`{symbols, timeframe, start, end?, format, columns?, tz?}`), checked as
 * `marketpipe export` checks it; 400 for a symbol with no stored bars of the timeframe.
 */
async function _prepareExport(
  ctx: WebContext,
  body: Record<string, unknown>,
): Promise<ExportRequest> {
  _checkFields(body, ["symbols", "timeframe", "start", "end", "format", "columns", "tz"]);
  const symbols = _symbolsField(body);
  if (symbols === undefined) throw badRequest("Missing symbols: the symbols to export");
  const timeframeText = _stringField(body, "timeframe");
  if (timeframeText === undefined) {
    throw badRequest(`Missing timeframe: one of ${TIMEFRAMES.join(", ")}`);
  }
  const timeframe = parseTimeframe(timeframeText, "1m");
  const start = parseDate(_stringField(body, "start"), "start");
  if (start === undefined) throw badRequest("Missing start: the first trading date, YYYY-MM-DD");
  const end = parseDate(_stringField(body, "end"), "end") ?? start;
  checkRange(start, end);
  const formatText = _stringField(body, "format");
  if (formatText === undefined) {
    throw badRequest(`Missing format: one of ${EXPORT_FORMATS.join(", ")}`);
  }
  const format = parseChoice(formatText, "format", EXPORT_FORMATS, "parquet");
  const columns = _columnsField(body);
  const timeZone = _stringField(body, "tz");
  if (timeZone !== undefined) {
    if (format !== "csv") {
      throw badRequest(
        `Invalid tz for format ${format}: it keeps ts as UTC instants; tz applies to csv`,
      );
    }
    try {
      new Intl.DateTimeFormat("en-US", { timeZone });
    } catch (error) {
      throw badRequest(
        `Invalid tz ${shown(timeZone)}: expected an IANA time zone like America/New_York`,
        error,
      );
    }
  }
  const stored = new Set(
    (await ctx.deps.data.series()).filter((s) => s.timeframe === timeframe).map((s) => s.symbol),
  );
  const missing = symbols.filter((symbol) => !stored.has(symbol));
  if (missing.length > 0) {
    throw badRequest(`Invalid symbols: no ${timeframe} bars of ${missing.join(", ")} are stored`);
  }
  return { symbols, timeframe, start, end, format, columns, timeZone };
}

function _removal(
  body: Record<string, unknown>,
  before: string | undefined,
  symbols: string[] | undefined,
): _RemovalRequest {
  const timeframe = parseTimeframe(_stringField(body, "timeframe"));
  const provider = _stringField(body, "provider");
  const names = Object.keys(providers);
  if (provider !== undefined && !names.includes(provider)) {
    throw badRequest(
      `Unknown provider ${shown(provider)}${didYouMean(provider, names)}: expected one of ${
        names.join(", ")
      }`,
    );
  }
  const timeframes = timeframe === undefined ? TIMEFRAMES : [timeframe];
  return {
    selection: {
      cutoffs: new Map(timeframes.map((tf) => [tf, before])),
      symbols,
      provider,
    },
    dryRun: _booleanField(body, "dry_run") ?? true,
  };
}

function _planSettings(ctx: WebContext): PlanSettings {
  // As `marketpipe update` runs them by default.
  return { workers: 4, aggregate: ctx.deps.ingestDefaults?.aggregate ?? false };
}

function _clock(ctx: WebContext): Clock {
  return ctx.deps.clock ?? systemClock;
}

/** 400 for a field that is not one of `known`. */
function _checkFields(body: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) {
      throw badRequest(
        `Unknown field ${shown(key)}${didYouMean(key, known)}: expected ${known.join(", ")}`,
      );
    }
  }
}

/** A field of the body itself (never one of Object.prototype). */
function _field(body: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(body, key) ? body[key] : undefined;
}

/** A string field; undefined when absent, null or empty. */
function _stringField(body: Record<string, unknown>, key: string): string | undefined {
  const value = _field(body, key);
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw badRequest(`Invalid ${key}: expected a string`);
  return value;
}

function _booleanField(body: Record<string, unknown>, key: string): boolean | undefined {
  const value = _field(body, key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw badRequest(`Invalid ${key}: expected true or false`);
  return value;
}

/** A list of strings, or one string of comma-separated items; undefined when absent or empty. */
function _listField(body: Record<string, unknown>, key: string): string[] | undefined {
  const value = _field(body, key);
  if (value === undefined || value === null || value === "") return undefined;
  const items = typeof value === "string"
    ? value.split(",")
    : Array.isArray(value) && value.every((item) => typeof item === "string")
    ? value as string[]
    : undefined;
  if (items === undefined) throw badRequest(`Invalid ${key}: expected a list of strings`);
  const list = items.map((item) => item.trim()).filter((item) => item !== "");
  return list.length === 0 ? undefined : list;
}

function _symbolsField(body: Record<string, unknown>): string[] | undefined {
  const list = _listField(body, "symbols");
  return list === undefined ? undefined : [...new Set(list.map((s) => parseSymbol(s, "symbols")))];
}

function _columnsField(body: Record<string, unknown>): string[] | undefined {
  const columns = _listField(body, "columns");
  const known = BAR_COLUMNS.map((column) => column.name);
  for (const [i, name] of (columns ?? []).entries()) {
    if (!known.includes(name)) {
      throw badRequest(
        `Invalid columns: unknown column ${shown(name)}${
          didYouMean(name, known)
        }; expected some of ${known.join(", ")}`,
      );
    }
    if (columns!.indexOf(name) !== i) {
      throw badRequest(`Invalid columns: ${shown(name)} is given twice`);
    }
  }
  return columns;
}
