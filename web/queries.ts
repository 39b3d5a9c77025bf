/**
 * The query parameters of every route, in one table: routes parse their query with
 * {@link parseQuery} and the OpenAPI document lists the same entries, so the two cannot drift.
 *
 * @module
 */
import { JOB_STATUSES } from "../core/jobs.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { BAR_FORMATS } from "./bars.ts";
import { SEVERITIES, TIME_ZONE_SETTINGS, type TimeZoneSetting } from "./views.ts";
import { type AppLimits, DEFAULT_LIMITS } from "./context.ts";
import {
  checkKnownParams,
  parseChoice,
  parseCursor,
  parseDate,
  parseInteger,
  parseSearch,
  parseSymbol,
  parseTimeframe,
  safeNext,
  shown,
} from "./params.ts";
import { badRequest } from "./errors.ts";

/** JSON Schema of a ticker. */
export const SYMBOL_SCHEMA = {
  type: "string",
  pattern: "^[A-Za-z][A-Za-z0-9]{0,9}([.-][A-Za-z0-9]{1,4})?$",
};
/** JSON Schema of a calendar date. */
export const DATE_SCHEMA = { type: "string", format: "date" };
/** JSON Schema of a timeframe. */
export const TIMEFRAME_SCHEMA = { type: "string", enum: [...TIMEFRAMES] };

/** A query parameter: how a route parses it and how the OpenAPI document shows it. */
export interface QueryParam<T = unknown> {
  /** One line in the OpenAPI document. */
  description: string;
  /** JSON Schema of the value. */
  schema: Record<string, unknown>;
  /** Whether a request must give it (`parse` refuses its absence). */
  required?: boolean;
  /** The checked value of `text` (`undefined` when absent); throws a 400 naming `name`. */
  parse(text: string | undefined, name: string, limits: AppLimits): T;
}

const _symbol: QueryParam<string> = {
  description: "Ticker",
  schema: SYMBOL_SCHEMA,
  required: true,
  parse: (text, name) => parseSymbol(text, name),
};

const _date = (description: string): QueryParam<string | undefined> => ({
  description,
  schema: DATE_SCHEMA,
  parse: (text, name) => parseDate(text, name),
});

const _timeframe = (description: string): QueryParam<Timeframe | undefined> => ({
  description,
  schema: TIMEFRAME_SCHEMA,
  parse: (text) => parseTimeframe(text),
});

const _limit = (description: string, max: number, fallback: number): QueryParam<number> => ({
  description,
  schema: { type: "integer", minimum: 1, maximum: max, default: fallback },
  parse: (text, name) => parseInteger(text, name, { min: 1, max, fallback }),
});

/** `undefined` when absent, so the route can pick the default (from `Accept`, say). */
const _choice = <T extends string>(
  description: string,
  choices: readonly T[],
  ifEmpty: T,
): QueryParam<T | undefined> => ({
  description,
  schema: { type: "string", enum: [...choices] },
  parse: (text, name) => text === undefined ? undefined : parseChoice(text, name, choices, ifEmpty),
});

const _text = (
  description: string,
  parse: (text: string | undefined) => string | undefined = (text) => text,
): QueryParam<string | undefined> => ({ description, schema: { type: "string" }, parse });

/** `?tz=` of a page: shows its times in this zone instead of the `mp_tz` cookie's. */
const _tz = {
  tz: _choice<TimeZoneSetting>(
    "Time zone of the page's times (default: the mp_tz cookie, else exchange = New York)",
    TIME_ZONE_SETTINGS,
    "exchange",
  ),
};

const _search = { q: { ..._text("Search text"), parse: parseSearch } };

const _seriesPage = {
  q: { ..._text("Only symbols containing this text"), parse: parseSearch },
  page: _limit("Page of the stored data table (50 symbols a page)", 100_000, 1),
};

const _rule = _text("Only findings of this rule", (text) => {
  if (text === undefined || text === "") return undefined;
  if (!/^[\w.-]{1,64}$/.test(text)) {
    throw badRequest(`Invalid rule ${shown(text)}: expected a rule id like high_below_open`);
  }
  return text;
});

const _asOf = { as_of: _date("Members on this date (default: today in New York)") };

/** The range buttons of the chart: dates back from the last stored bar. */
export const CHART_RANGES = ["1D", "5D", "1M", "6M", "YTD", "1Y", "All"] as const;

/** One of {@link CHART_RANGES}. */
export type ChartRange = typeof CHART_RANGES[number];

const _chart = {
  timeframe: _timeframe("Timeframe"),
  start: _date("First date"),
  end: _date("Last date"),
  range: {
    description: "Dates back from the last stored bar (case-insensitive); not with start or end",
    schema: { type: "string", enum: [...CHART_RANGES] },
    parse: (text: string | undefined, name: string): ChartRange | undefined => {
      if (text === undefined || text === "") return undefined;
      const canonical = CHART_RANGES.find((r) => r.toLowerCase() === text.toLowerCase());
      return parseChoice(canonical ?? text, name, CHART_RANGES, "All");
    },
  },
  compare: {
    description: "A second symbol, drawn as % change on its own scale",
    schema: { type: "string" },
    parse: (text: string | undefined, name: string) =>
      text === undefined || text.trim() === ""
        ? undefined
        : parseSymbol(text.trim().toUpperCase(), name),
  },
};

/**
 * Query parameters by route, keyed `METHOD /path` as in the OpenAPI document; a route that is
 * not listed takes none.
 */
export const QUERY_PARAMS = {
  "GET /api/bars": {
    symbol: _symbol,
    timeframe: {
      description: "Bar timeframe",
      schema: { ...TIMEFRAME_SCHEMA, default: "1m" },
      parse: (text: string | undefined) => parseTimeframe(text, "1m"),
    },
    start: _date("First trading date (inclusive)"),
    end: _date("Last trading date (inclusive)"),
    limit: {
      ..._limit("Bars per page", DEFAULT_LIMITS.maxBarsLimit, DEFAULT_LIMITS.defaultBarsLimit),
      parse: (text: string | undefined, name: string, limits: AppLimits) =>
        parseInteger(text, name, {
          min: 1,
          max: limits.maxBarsLimit,
          fallback: limits.defaultBarsLimit,
        }),
    },
    cursor: { ..._text("next_cursor of the previous page"), parse: parseCursor },
    format: _choice("Body format", BAR_FORMATS, "json"),
  },
  "GET /api/coverage": {
    symbol: _symbol,
    timeframe: _timeframe("Timeframe (default: the shortest stored)"),
    start: _date("First date (default: first recorded day)"),
    end: _date("Last date (default: last recorded day)"),
  },
  "GET /api/jobs": {
    // An empty status is "running", as it always was.
    status: _choice("Only jobs with this status", JOB_STATUSES, "running"),
    limit: _limit("Most jobs", 1000, 50),
  },
  "GET /api/universes/{name}": _asOf,
  "GET /api/schedules/runs": {
    schedule: _text("Only runs of this schedule"),
    limit: _limit("Most runs", 1000, 50),
  },
  "GET /api/validation/reports": { limit: _limit("Most reports", 1000, 50) },
  "POST /api/query": { format: _choice("Result format", ["json", "csv"] as const, "json") },
  "GET /": { ..._seriesPage, ..._tz },
  "GET /partials/series": _seriesPage,
  "GET /symbols": { ..._search, ..._tz },
  "GET /partials/symbols": _search,
  "GET /symbols/{symbol}": { ..._chart, ..._tz },
  "GET /partials/chart": { symbol: _symbol, ..._chart },
  "GET /universes": _tz,
  "GET /universes/{name}": { ..._asOf, ..._tz },
  "GET /partials/universes/{name}": _asOf,
  "GET /jobs": _tz,
  "GET /schedules": _tz,
  "GET /jobs/{id}": _tz,
  "GET /data": _tz,
  "GET /validation": _tz,
  "GET /validation/{id}": {
    severity: {
      ..._choice("Only findings of this severity", SEVERITIES, "error"),
      // The form's "all" sends an empty value.
      parse: (text: string | undefined, name: string) =>
        text === undefined || text === ""
          ? undefined
          : parseChoice(text, name, SEVERITIES, "error"),
    },
    rule: _rule,
    ..._tz,
  },
  "GET /settings/tz": {
    tz: {
      ..._tz.tz,
      required: true,
      parse: (text: string | undefined, name: string) => {
        if (text === undefined || text === "") {
          throw badRequest(`Missing tz: one of ${TIME_ZONE_SETTINGS.join(", ")}`);
        }
        return parseChoice(text, name, TIME_ZONE_SETTINGS, "exchange");
      },
    },
    next: { ..._text("The page to go back to"), parse: safeNext },
  },
  // The SQL console's page (web/console.ts checks these itself).
  "GET /query": { sql: _text("SQL to put in the box (a shared query)"), ..._tz },
  "GET /login": {
    next: { ..._text("Where to go after logging in"), parse: safeNext },
    ..._tz,
  },
  "GET /assets/{name}": { v: _text("Content hash for caching") },
} satisfies Record<string, Record<string, QueryParam>>;

/** A route of {@link QUERY_PARAMS}. */
export type QueryRoute = keyof typeof QUERY_PARAMS;

/** The parsed query of `route`: each parameter's value by name. */
export type ParsedQuery<R extends QueryRoute> = {
  [K in keyof typeof QUERY_PARAMS[R]]: typeof QUERY_PARAMS[R][K] extends
    { parse(...args: never[]): infer T } ? T : never;
};

/**
 * Parses the query of `route` by its {@link QUERY_PARAMS} entry, refusing unknown parameters
 * with a 400 that names the closest known one.
 *
 * @example
 * ```ts
 * const { symbol, limit } = parseQuery(c.req.query(), "GET /api/bars", ctx.limits);
 * ```
 */
export function parseQuery<R extends QueryRoute>(
  query: Record<string, string>,
  route: R,
  limits: AppLimits = DEFAULT_LIMITS,
): ParsedQuery<R> {
  const params: Record<string, QueryParam> = QUERY_PARAMS[route];
  checkKnownParams(query, Object.keys(params));
  const parsed: Record<string, unknown> = {};
  for (const [name, param] of Object.entries(params)) {
    parsed[name] = param.parse(query[name], name, limits);
  }
  return parsed as ParsedQuery<R>;
}
