/**
 * Polygon.io (Massive) custom aggregates, `/v2/aggs/ticker/{T}/range/{m}/{span}/{from}/{to}`,
 * paged by `next_url` (providers/README.md, "Polygon").
 *
 * @module
 */
import type { FetchOptions, FetchRequest, Provider, ProviderInfo } from "../core/provider.ts";
import { redactUrl } from "../core/secrets.ts";
import { TIMEFRAMES } from "../core/types.ts";
import {
  createHttpClient,
  cursorGuard,
  httpOptionsFromSettings,
  type HttpProviderOptions,
  requireCredentials,
} from "./http.ts";
import {
  checkRequest,
  createBarCollector,
  isObject,
  numberField,
  ohlcvFields,
  requestWindow,
  type SourceTimeframe,
  sourceTimeframe,
} from "./http_normalize.ts";
import type { ProviderFactory, ProviderSettings } from "./mod.ts";

/** Public API host (the Massive SDK also answers at api.massive.com). */
export const POLYGON_BASE_URL = "https://api.polygon.io";
/** Largest `limit`: base aggregates (minute or day bars) read per answer. */
export const POLYGON_PAGE_LIMIT = 50_000;
/** Free plan: requests per minute. */
export const POLYGON_RATE_LIMIT = 5;

const _KEY_VARS = ["POLYGON_API_KEY"] as const;

const _SPANS: Readonly<Record<SourceTimeframe, [number, string]>> = {
  "1m": [1, "minute"],
  "5m": [5, "minute"],
  "15m": [15, "minute"],
  "30m": [30, "minute"],
  "1d": [1, "day"],
};

/** Static description of the Polygon provider. */
export const polygonInfo: ProviderInfo = {
  name: "polygon",
  description: "Polygon.io (Massive) aggregates: one symbol per request, 50,000 base bars a page",
  status: "active",
  env: [
    { name: "POLYGON_API_KEY", description: "API key", secret: true, required: true },
    {
      name: "POLYGON_BASE_URL",
      description: `API base URL (default ${POLYGON_BASE_URL})`,
      secret: false,
      required: false,
    },
  ],
  timeframes: TIMEFRAMES,
  feeds: ["sip"],
  defaultFeed: "sip",
  adjustments: ["raw", "split"],
  rateLimitPerMinute: POLYGON_RATE_LIMIT,
  notes: "Free plan: 5 requests/min, end-of-day bars only, 2 years of history. --adjustment " +
    "split sends adjusted=true (splits only). 1h and 4h bars are rolled up from 30m bars",
};

/** Options of {@link polygon}. */
export interface PolygonOptions extends HttpProviderOptions {
  apiKey: string;
}

/**
 * The Polygon provider: one request per symbol, following `next_url` (re-based on the
 * configured base URL, with the key appended again, since Polygon leaves it out) until absent.
 *
 * @example
 * ```ts
 * const provider = polygon({ apiKey });
 * const bars = await provider.fetchBars({
 *   symbols: ["SPY"], timeframe: "1d", start: "2020-01-02", end: "2024-12-31", adjustment: "split",
 * });
 * ```
 */
export function polygon(options: PolygonOptions): Provider {
  const { apiKey } = options;
  const http = createHttpClient({
    ...options,
    provider: "polygon",
    baseUrl: options.baseUrl ?? POLYGON_BASE_URL,
    perMinute: options.rateLimit ?? POLYGON_RATE_LIMIT,
    secrets: [apiKey],
    explainError: (status) =>
      status === 401
        ? { hint: "the key was refused: check POLYGON_API_KEY", fatal: true }
        : status === 403
        ? {
          hint: "the plan is not entitled to this data (free keys get end-of-day bars of the " +
            "last 2 years only)",
        }
        : undefined,
  });
  return {
    name: "polygon",
    fetchBars: async (request: FetchRequest, fetchOptions: FetchOptions = {}) => {
      const { feed, adjustment } = checkRequest(request, polygonInfo);
      const source = sourceTimeframe(request.timeframe);
      const [multiplier, timespan] = _SPANS[source];
      const { from, to } = requestWindow(request.start, request.end);
      const collector = createBarCollector({
        provider: "polygon",
        feed,
        adjustment,
        timeframe: source,
        start: request.start,
        end: request.end,
      });
      const limit = Math.min(
        Math.max(request.pageSize ?? POLYGON_PAGE_LIMIT, 1),
        POLYGON_PAGE_LIMIT,
      );
      for (const symbol of [...new Set(request.symbols)].sort()) {
        const parse = (body: unknown) => _parsePage(body, symbol, collector);
        let path: string | undefined = `/v2/aggs/ticker/${
          encodeURIComponent(symbol)
        }/range/${multiplier}/${timespan}/${from}/${to - 1}`;
        let query: Record<string, string | number> = {
          adjusted: String(adjustment === "split"),
          sort: "asc",
          limit,
          apiKey,
        };
        const checkNext = cursorGuard(http, "next_url");
        while (path !== undefined) {
          const next: string | undefined = await http.get(path, {
            query,
            feed,
            signal: fetchOptions.signal,
            parse,
          });
          if (next === undefined) break;
          checkNext(next, next.split("?")[0]);
          path = next;
          // next_url carries the other parameters in its cursor, but never the key.
          query = { apiKey };
        }
      }
      return collector.finish(request.timeframe);
    },
  };
}

/** Registry entry: the key from `POLYGON_API_KEY`. */
export const polygonFactory: ProviderFactory = {
  info: polygonInfo,
  check: (settings: ProviderSettings) => void _optionsOf(settings),
  create: (settings: ProviderSettings) => polygon(_optionsOf(settings)),
};

function _optionsOf(settings: ProviderSettings): PolygonOptions {
  const [apiKey] = requireCredentials("polygon", settings.env, [_KEY_VARS]);
  return { apiKey, ...httpOptionsFromSettings(settings, "POLYGON_BASE_URL", POLYGON_BASE_URL) };
}

/** What a Polygon answer that is not OK says about it: its `error`, else its `message`, else "". */
export function polygonErrorText(body: Record<string, unknown>): string {
  return typeof body.error === "string"
    ? body.error
    : typeof body.message === "string"
    ? body.message
    : "";
}

/** Check one answer, add its bars, and return the path of `next_url` when there is more. */
function _parsePage(
  body: unknown,
  symbol: string,
  collector: ReturnType<typeof createBarCollector>,
): string | undefined {
  if (!isObject(body)) throw new TypeError("expected a JSON object");
  if (body.status !== "OK" && body.status !== "DELAYED") {
    throw new TypeError(
      `status ${JSON.stringify(body.status)} ${polygonErrorText(body)}`.trim(),
    );
  }
  // An empty range or an unknown ticker has no "results" key (older answers: null).
  const results = body.results ?? [];
  if (!Array.isArray(results)) {
    throw new TypeError(`"results" is ${typeof results}, expected an array`);
  }
  const what = `bar of "${symbol}"`;
  for (const row of results) {
    if (!isObject(row)) throw new TypeError(`${what} is ${JSON.stringify(row)}`);
    collector.add(symbol, numberField(row, "t", what), ohlcvFields(row, what));
  }
  const next = body.next_url;
  if (next === undefined || next === null || next === "") return undefined;
  if (typeof next !== "string") throw new TypeError(`next_url is ${typeof next}`);
  return polygonNextPath(next, "/v2/aggs/");
}

/**
 * The path and query of a `next_url` from `from` (`/v2/aggs/`, `/v3/reference/tickers`) on, to
 * be sent to the configured base URL: Polygon names its own host there, which would bypass a
 * proxy or test server.
 */
export function polygonNextPath(next: string, from: string): string {
  const url = URL.parse(next, POLYGON_BASE_URL);
  if (url === null) {
    throw new TypeError(`next_url ${JSON.stringify(redactUrl(next))} is not a URL`);
  }
  const at = url.pathname.indexOf(from);
  if (at < 0) {
    throw new TypeError(`next_url ${JSON.stringify(redactUrl(next))} does not point at ${from}`);
  }
  return url.pathname.slice(at) + url.search;
}
