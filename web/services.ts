/**
 * What the REST API and the dashboard pages share: reads holding a heavy-request slot, lookups
 * by id, coverage of a symbol, and the parsing of job and query request bodies.
 *
 * @module
 */
import type { Context } from "hono";
import {
  buildIngestRequest,
  type IngestInput,
  type PreparedIngest,
} from "../providers/ingest_request.ts";
import { addDays, exchangeDate } from "../core/calendar.ts";
import type { JobRecord } from "../core/jobs.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { CorruptFileError } from "../core/errors.ts";
import {
  corruptFileMessage,
  QueryTimeoutError,
  readKnownEmptyDays,
  readStoredDayCounts,
  type StoredBarSeries,
} from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import { coverageCalendar, type CoverageDay } from "./coverage.ts";
import { badRequest, HttpError, notFound } from "./errors.ts";
import { checkRange, parseInteger, shown } from "./params.ts";

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
  const out = new Map<string, StoredBarSeries[]>();
  for (const s of series) {
    let list = out.get(s.symbol);
    if (!list) out.set(s.symbol, list = []);
    list.push(s);
  }
  return [...out].map(([symbol, list]) => ({ symbol, series: list }));
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
  const prepared = await buildIngestRequest(input, {
    label: (name) => name.replaceAll("-", "_"),
    clock: ctx.deps.clock,
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
