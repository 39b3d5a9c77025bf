/**
 * IEX Cloud (legacy) chart endpoints, `/stock/{symbol}/chart/date/{YYYYMMDD}` (providers/README.md,
 * "IEX Cloud (retired)"). IEX Cloud shut down on 2024-08-31; this adapter serves anyone running an
 * IEX-compatible endpoint, named by `IEX_BASE_URL`.
 *
 * @module
 */
import { tradingDays, zonedTime } from "../core/calendar.ts";
import { UsageError } from "../core/errors.ts";
import type { FetchOptions, FetchRequest, Provider, ProviderInfo } from "../core/provider.ts";
import { TIMEFRAMES } from "../core/types.ts";
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
  optionalNumberField,
} from "./http_normalize.ts";
import type { ProviderCheckRequest, ProviderFactory, ProviderSettings } from "./mod.ts";

/** Date the IEX Cloud service shut down. */
export const IEX_RETIRED_ON = "2024-08-31";
/** Requests per minute by default (IEX Cloud allowed 100 per second). */
export const IEX_RATE_LIMIT = 6_000;

const _TOKEN_VARS = ["IEX_TOKEN"] as const;

/** Static description of the legacy IEX Cloud provider. */
export const iexInfo: ProviderInfo = {
  name: "iex",
  description: "IEX Cloud chart endpoints (legacy): one symbol and one day a request",
  status: "retired",
  env: [
    { name: "IEX_TOKEN", description: "API token", secret: true, required: true },
    {
      name: "IEX_BASE_URL",
      description: "IEX-compatible endpoint with its version, e.g. https://host/stable",
      secret: false,
      required: true,
    },
  ],
  timeframes: TIMEFRAMES,
  feeds: ["sip", "iex"],
  defaultFeed: "sip",
  adjustments: ["raw", "split"],
  rateLimitPerMinute: IEX_RATE_LIMIT,
  notes: `IEX Cloud shut down all API products on ${IEX_RETIRED_ON}; set IEX_BASE_URL to an ` +
    "IEX-compatible endpoint. Regular-session minutes only; feed sip reads the market* (SIP) " +
    "fields, iex the IEX-only ones; daily bars are consolidated (feed sip), raw or split-adjusted",
};

/** Options of {@link iex}. */
export interface IexOptions extends HttpProviderOptions {
  token: string;
  /** Required: the public service is gone. */
  baseUrl: string;
}

/**
 * The legacy IEX provider: one request per symbol and trading day (`chart/date`, with
 * `chartByDay=true` for daily bars). Minutes without trades (null prices) are skipped; a 404
 * `Unknown symbol` is an empty result.
 *
 * @example
 * ```ts
 * const provider = iex({ token, baseUrl: "https://iex.example.com/stable" });
 * ```
 */
export function iex(options: IexOptions): Provider {
  const { token } = options;
  const http = createHttpClient({
    ...options,
    provider: "iex",
    perMinute: options.rateLimit ?? IEX_RATE_LIMIT,
    secrets: [token],
    explainError: (status) =>
      status === 401 || status === 403
        ? { hint: "the token was refused: check IEX_TOKEN", fatal: true }
        : status === 402
        ? { hint: "the account is over its message quota", fatal: true }
        : undefined,
  });
  return {
    name: "iex",
    fetchBars: async (request: FetchRequest, fetchOptions: FetchOptions = {}) => {
      const { feed, adjustment } = checkRequest(request, iexInfo);
      const refusal = _refusal(request.timeframe, feed, adjustment);
      if (refusal) throw new RangeError(refusal);
      const daily = request.timeframe === "1d";
      const collector = createBarCollector({
        provider: "iex",
        feed,
        adjustment,
        timeframe: daily ? "1d" : "1m",
        start: request.start,
        end: request.end,
      });
      for (const symbol of [...new Set(request.symbols)].sort()) {
        for (const date of tradingDays(request.start, request.end)) {
          const known = await http.get(
            `/stock/${encodeURIComponent(symbol)}/chart/date/${date.replaceAll("-", "")}`,
            {
              query: { token, chartByDay: daily ? "true" : undefined },
              feed,
              signal: fetchOptions.signal,
              parse: (body) => {
                _parseChart(body, symbol, daily, feed, adjustment, collector);
                return true;
              },
              // IEX answers an unknown ticker with a plain-text 404: no data, not a failure.
              accept: (status, text) =>
                status === 404 && /unknown symbol/i.test(text) ? false : undefined,
            },
          );
          if (!known) break;
        }
      }
      return collector.finish(request.timeframe);
    },
  };
}

/** Registry entry: `IEX_TOKEN` and `IEX_BASE_URL`, both required. */
export const iexFactory: ProviderFactory = {
  info: iexInfo,
  check: (settings: ProviderSettings, request?: ProviderCheckRequest) => {
    _settingsOf(settings);
    const refusal = request && _refusal(request.timeframe, request.feed, request.adjustment);
    if (refusal) throw new UsageError(refusal);
  },
  create: (settings: ProviderSettings) => iex(_settingsOf(settings)),
};

function _settingsOf(settings: ProviderSettings): IexOptions {
  const [token] = requireCredentials("iex", settings.env, [_TOKEN_VARS]);
  const http = httpOptionsFromSettings(settings, "IEX_BASE_URL", undefined);
  if (http.baseUrl === undefined) {
    throw new UsageError(
      `Provider "iex" needs IEX_BASE_URL: IEX Cloud shut down on ${IEX_RETIRED_ON}, so set it ` +
        "to an IEX-compatible endpoint, e.g. https://host/stable",
    );
  }
  return { ...http, token, baseUrl: http.baseUrl };
}

function _refusal(timeframe: string, feed: string, adjustment: string): string | undefined {
  if (timeframe === "1d" && feed !== "sip") {
    return `Provider "iex" serves daily bars from the consolidated tape only: use --feed sip`;
  }
  if (timeframe !== "1d" && adjustment !== "raw") {
    return `Provider "iex" serves intraday bars unadjusted only: use --adjustment raw`;
  }
  return undefined;
}

// Fields per feed of a minute row: IEX-only prints, or the 15-minute delayed SIP (market*).
const _MINUTE_FIELDS = {
  iex: ["open", "high", "low", "close", "volume", "average", "numberOfTrades"],
  sip: [
    "marketOpen",
    "marketHigh",
    "marketLow",
    "marketClose",
    "marketVolume",
    "marketAverage",
    "marketNumberOfTrades",
  ],
} as const;

// Fields of a daily row: u* are unadjusted, the plain ones split-adjusted.
const _DAILY_FIELDS = {
  raw: ["uOpen", "uHigh", "uLow", "uClose", "uVolume"],
  split: ["open", "high", "low", "close", "volume"],
} as const;

function _parseChart(
  body: unknown,
  symbol: string,
  daily: boolean,
  feed: string,
  adjustment: string,
  collector: BarCollector,
): void {
  if (!Array.isArray(body)) throw new TypeError("expected a JSON array of chart rows");
  const what = `chart row of "${symbol}"`;
  for (const row of body) {
    if (!isObject(row) || typeof row.date !== "string") {
      throw new TypeError(`${what} has no "date": ${JSON.stringify(row)}`);
    }
    const date = _date(row.date);
    if (date === undefined) throw new TypeError(`${what} has date ${JSON.stringify(row.date)}`);
    if (daily) {
      const [open, high, low, close, volume] = _DAILY_FIELDS[adjustment as "raw" | "split"]
        .map((key) => optionalNumberField(row, key, what));
      if (open === null || high === null || low === null || close === null) continue;
      collector.addDaily(symbol, date, { open, high, low, close, volume: volume ?? 0 });
      continue;
    }
    if (typeof row.minute !== "string" || !/^\d{2}:\d{2}$/.test(row.minute)) {
      throw new TypeError(`${what} has minute ${JSON.stringify(row.minute)}, expected HH:MM`);
    }
    const [open, high, low, close, volume, average, trades] = _MINUTE_FIELDS[feed as "iex" | "sip"]
      .map((key) => optionalNumberField(row, key, what));
    // A minute without trades has null prices: there is no bar.
    if (open === null || high === null || low === null || close === null) continue;
    // Times are New York wall clock; the row is the minute's start.
    collector.add(symbol, zonedTime(date, row.minute), {
      open,
      high,
      low,
      close,
      volume: volume ?? 0,
      vwap: average,
      tradeCount: trades,
    });
  }
}

function _date(text: string): string | undefined {
  const match = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(text);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : undefined;
}
