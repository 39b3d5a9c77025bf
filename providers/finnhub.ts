/**
 * Finnhub stock candles, `/stock/candle` with column-array answers (providers/README.md,
 * "Finnhub"). A premium endpoint: free keys get a 403.
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import { addDays } from "../core/calendar.ts";
import type { FetchOptions, FetchRequest, Provider, ProviderInfo } from "../core/provider.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import {
  createHttpClient,
  httpOptionsFromSettings,
  type HttpProviderOptions,
  requireCredentials,
} from "./http.ts";
import {
  type BarCollector,
  checkRequest,
  createBarCollector,
  isObject,
  requestWindow,
  type SourceTimeframe,
  sourceTimeframe,
} from "./http_normalize.ts";
import type { ProviderCheckRequest, ProviderFactory, ProviderSettings } from "./mod.ts";

/** Public API base, version included. */
export const FINNHUB_BASE_URL = "https://finnhub.io/api/v1";
/** Free plan: requests per minute (there is also a cap of 30 per second). */
export const FINNHUB_RATE_LIMIT = 60;
/**
 * Calendar days per intraday request: Finnhub returns at most one month of intraday candles per
 * call, so longer ranges are split into windows that stay well inside a month.
 */
export const FINNHUB_INTRADAY_DAYS = 28;

const _TOKEN_VARS = ["FINNHUB_TOKEN"] as const;

const _RESOLUTIONS: Readonly<Record<SourceTimeframe, string>> = {
  "1m": "1",
  "5m": "5",
  "15m": "15",
  "30m": "30",
  "1d": "D",
};

/** Static description of the Finnhub provider. */
export const finnhubInfo: ProviderInfo = {
  name: "finnhub",
  description: "Finnhub stock candles (premium endpoint): one symbol and at most a month a request",
  status: "active",
  env: [
    { name: "FINNHUB_TOKEN", description: "API key", secret: true, required: true },
    {
      name: "FINNHUB_BASE_URL",
      description: `API base URL (default ${FINNHUB_BASE_URL})`,
      secret: false,
      required: false,
    },
  ],
  timeframes: TIMEFRAMES,
  feeds: ["sip"],
  defaultFeed: "sip",
  adjustments: ["raw", "split"],
  rateLimitPerMinute: FINNHUB_RATE_LIMIT,
  notes: "Candles need a premium key (free keys get HTTP 403). Intraday bars are unadjusted " +
    "(--adjustment raw), daily bars split-adjusted (--adjustment split). 60 requests/min",
};

/** Options of {@link finnhub}. */
export interface FinnhubOptions extends HttpProviderOptions {
  token: string;
}

/**
 * The Finnhub provider: per symbol, one request for daily bars and one per
 * {@link FINNHUB_INTRADAY_DAYS}-day window for intraday bars. The key goes in the
 * `X-Finnhub-Token` header, never in the URL.
 *
 * @example
 * ```ts
 * const provider = finnhub({ token });
 * const bars = await provider.fetchBars({
 *   symbols: ["AAPL"], timeframe: "1m", start: "2024-03-04", end: "2024-03-08",
 * });
 * ```
 */
export function finnhub(options: FinnhubOptions): Provider {
  const http = createHttpClient({
    ...options,
    provider: "finnhub",
    baseUrl: options.baseUrl ?? FINNHUB_BASE_URL,
    perMinute: options.rateLimit ?? FINNHUB_RATE_LIMIT,
    headers: { "X-Finnhub-Token": options.token },
    secrets: [options.token],
    explainError: (status) =>
      status === 401
        ? { hint: "the key was refused: check FINNHUB_TOKEN", fatal: true }
        : status === 403
        ? {
          hint: "stock candles are a premium Finnhub endpoint and this key has no access to it",
          fatal: true,
        }
        : undefined,
  });
  return {
    name: "finnhub",
    fetchBars: async (request: FetchRequest, fetchOptions: FetchOptions = {}) => {
      const { feed, adjustment } = checkRequest(request, finnhubInfo);
      const refusal = _refusal(request.timeframe, adjustment);
      if (refusal) throw new RangeError(refusal);
      const source = sourceTimeframe(request.timeframe);
      const collector = createBarCollector({
        provider: "finnhub",
        feed,
        adjustment,
        timeframe: source,
        start: request.start,
        end: request.end,
      });
      const windows = source === "1d"
        ? [[request.start, request.end]]
        : _windows(request.start, request.end, FINNHUB_INTRADAY_DAYS);
      for (const symbol of [...new Set(request.symbols)].sort()) {
        for (const [first, last] of windows) {
          const { from, to } = requestWindow(first, last);
          await http.get("/stock/candle", {
            query: {
              symbol,
              resolution: _RESOLUTIONS[source],
              from: from / 1000,
              to: to / 1000 - 1,
            },
            feed,
            signal: fetchOptions.signal,
            parse: (body) => _parseCandles(body, symbol, collector),
          });
        }
      }
      return collector.finish(request.timeframe);
    },
  };
}

/** Registry entry: the key from `FINNHUB_TOKEN`. */
export const finnhubFactory: ProviderFactory = {
  info: finnhubInfo,
  check: (settings: ProviderSettings, request?: ProviderCheckRequest) => {
    _optionsOf(settings);
    const refusal = request && _refusal(request.timeframe, request.adjustment);
    if (refusal) throw new UsageError(refusal);
  },
  create: (settings: ProviderSettings) => finnhub(_optionsOf(settings)),
};

function _optionsOf(settings: ProviderSettings): FinnhubOptions {
  const [token] = requireCredentials("finnhub", settings.env, [_TOKEN_VARS]);
  return { token, ...httpOptionsFromSettings(settings, "FINNHUB_BASE_URL", FINNHUB_BASE_URL) };
}

/** Why Finnhub cannot serve this adjustment: daily candles are split-adjusted, intraday raw. */
function _refusal(timeframe: Timeframe, adjustment: string): string | undefined {
  if (timeframe === "1d" && adjustment !== "split") {
    return `Provider "finnhub" serves daily bars split-adjusted only: use --adjustment split`;
  }
  if (timeframe !== "1d" && adjustment !== "raw") {
    return `Provider "finnhub" serves intraday bars unadjusted only: use --adjustment raw`;
  }
  return undefined;
}

/** Consecutive [first, last] date windows of at most `days` calendar days covering the range. */
function _windows(start: string, end: string, days: number): [string, string][] {
  const out: [string, string][] = [];
  for (let first = start; first <= end; first = addDays(first, days)) {
    const last = addDays(first, days - 1);
    out.push([first, last < end ? last : end]);
  }
  return out;
}

function _parseCandles(body: unknown, symbol: string, collector: BarCollector): void {
  if (!isObject(body)) throw new TypeError("expected a JSON object");
  if (body.s === "no_data") return;
  if (body.s !== "ok") throw new TypeError(`status "s" is ${JSON.stringify(body.s)}`);
  const columns = ["t", "o", "h", "l", "c", "v"] as const;
  const arrays: Record<string, unknown[]> = {};
  for (const key of columns) {
    const column = body[key];
    if (!Array.isArray(column)) throw new TypeError(`column "${key}" is not an array`);
    if (column.length !== (body.t as unknown[]).length) {
      throw new TypeError(
        `column "${key}" has ${column.length} values, "t" has ${(body.t as unknown[]).length}`,
      );
    }
    arrays[key] = column;
  }
  const what = `candle of "${symbol}"`;
  const at = (key: string, i: number) => {
    const value = arrays[key][i];
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new TypeError(`${what} #${i}: "${key}" is ${JSON.stringify(value)}`);
    }
    return value;
  };
  for (let i = 0; i < arrays.t.length; i++) {
    collector.add(symbol, at("t", i) * 1000, {
      open: at("o", i),
      high: at("h", i),
      low: at("l", i),
      close: at("c", i),
      volume: at("v", i),
    });
  }
}
