/**
 * Alpaca Market Data v2 stock bars: the multi-symbol `/v2/stocks/bars` endpoint, paged by
 * `next_page_token` (providers/README.md, "Alpaca").
 *
 * @module
 */
import type { FetchOptions, FetchRequest, Provider, ProviderInfo } from "../core/provider.ts";
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
  jsonKind,
  ohlcvFields,
  parseRfc3339,
  requestWindow,
  type SourceTimeframe,
  sourceTimeframe,
} from "./http_normalize.ts";
import type { ProviderFactory, ProviderSettings } from "./mod.ts";

/** Public data API host. */
export const ALPACA_BASE_URL = "https://data.alpaca.markets";
/** Largest page: bars in total across the symbols of one request. */
export const ALPACA_PAGE_LIMIT = 10_000;
/** Free plan: historical requests per minute. */
export const ALPACA_RATE_LIMIT = 200;
/**
 * Most symbols in one multi-symbol request. The engine fills a request with symbols whose
 * expected bars stay within its memory budget (200,000 bars: ten symbol-months of 1m bars, or a
 * hundred symbol-years of daily bars), so requests approach total bars / 10,000 for every
 * timeframe while the query string stays short.
 */
export const ALPACA_SYMBOLS_PER_REQUEST = 100;

/** The names Alpaca's key and secret are read under: ours first, then the SDK's. */
export const ALPACA_CREDENTIAL_VARS = [
  ["ALPACA_KEY", "APCA_API_KEY_ID"],
  ["ALPACA_SECRET", "APCA_API_SECRET_KEY"],
] as const;

/** Our name first: when both are set, ALPACA_BASE_URL wins, like ALPACA_KEY over APCA_API_KEY_ID. */
const _BASE_URL_VARS = ["ALPACA_BASE_URL", "APCA_API_DATA_URL"] as const;

const _TIMEFRAMES: Readonly<Record<SourceTimeframe, string>> = {
  "1m": "1Min",
  "5m": "5Min",
  "15m": "15Min",
  "30m": "30Min",
  "1d": "1Day",
};

/** Static description of the Alpaca provider. */
export const alpacaInfo: ProviderInfo = {
  name: "alpaca",
  description: "Alpaca Market Data v2 stock bars: several symbols per request, 10,000 bars a page",
  status: "active",
  env: [
    {
      name: "ALPACA_KEY",
      description: "API key id",
      secret: true,
      required: true,
      aliases: ["APCA_API_KEY_ID"],
    },
    {
      name: "ALPACA_SECRET",
      description: "API secret key",
      secret: true,
      required: true,
      aliases: ["APCA_API_SECRET_KEY"],
    },
    {
      name: "ALPACA_BASE_URL",
      description:
        `data API base URL (default ${ALPACA_BASE_URL}); wins over the SDK's APCA_API_DATA_URL`,
      secret: false,
      required: false,
      aliases: ["APCA_API_DATA_URL"],
    },
  ],
  timeframes: TIMEFRAMES,
  feeds: ["iex", "sip", "delayed_sip"],
  defaultFeed: "iex",
  adjustments: ["raw", "split", "dividend", "all"],
  rateLimitPerMinute: ALPACA_RATE_LIMIT,
  notes: "Free plan: 200 requests/min and feed iex; sip data from the last 15 minutes needs a " +
    "subscription (delayed_sip does not). 1h and 4h bars are rolled up from 30m bars",
};

/** Options of {@link alpaca}. */
export interface AlpacaOptions extends HttpProviderOptions {
  key: string;
  secret: string;
  /** Symbols per request; default {@link ALPACA_SYMBOLS_PER_REQUEST}. */
  symbolsPerRequest?: number;
}

/**
 * The Alpaca provider. One `fetchBars` call is one multi-symbol request followed through every
 * page until `next_page_token` is null (short and empty pages can still carry a token). A 403 is
 * never retried: bad credentials fail every later request at once, a missing SIP entitlement
 * says so.
 *
 * @example
 * ```ts
 * const provider = alpaca({ key, secret });
 * const bars = await provider.fetchBars({
 *   symbols: ["AAPL", "MSFT"], timeframe: "1m", start: "2024-03-04", end: "2024-03-08", feed: "iex",
 * });
 * ```
 */
export function alpaca(options: AlpacaOptions): Provider {
  const http = createHttpClient({
    ...options,
    provider: "alpaca",
    baseUrl: options.baseUrl ?? ALPACA_BASE_URL,
    perMinute: options.rateLimit ?? ALPACA_RATE_LIMIT,
    headers: { "APCA-API-KEY-ID": options.key, "APCA-API-SECRET-KEY": options.secret },
    secrets: [options.key, options.secret],
    explainError: _explainError,
  });
  return {
    name: "alpaca",
    maxSymbolsPerRequest: options.symbolsPerRequest ?? ALPACA_SYMBOLS_PER_REQUEST,
    fetchBars: async (request: FetchRequest, fetchOptions: FetchOptions = {}) => {
      const { feed, adjustment } = checkRequest(request, alpacaInfo);
      const symbols = [...new Set(request.symbols)].sort();
      if (symbols.length === 0) return [];
      const wanted = new Set(symbols);
      const source = sourceTimeframe(request.timeframe);
      const collector = createBarCollector({
        provider: "alpaca",
        feed,
        adjustment,
        timeframe: source,
        start: request.start,
        end: request.end,
      });
      const { from, to } = requestWindow(request.start, request.end);
      const query = {
        symbols: symbols.join(","),
        timeframe: _TIMEFRAMES[source],
        start: _rfc3339(from),
        // `end` is inclusive: the last second before the next New York midnight.
        end: _rfc3339(to - 1000),
        limit: Math.min(Math.max(request.pageSize ?? ALPACA_PAGE_LIMIT, 1), ALPACA_PAGE_LIMIT),
        adjustment,
        feed,
        sort: "asc",
      };
      const parse = (body: unknown) => {
        if (!isObject(body)) throw new TypeError("expected a JSON object");
        const token = body.next_page_token;
        if (token !== null && typeof token !== "string") {
          throw new TypeError(
            `next_page_token is ${JSON.stringify(token)}, expected a string or null`,
          );
        }
        const bars = body.bars;
        if (bars !== null && !isObject(bars)) {
          throw new TypeError(`"bars" is ${jsonKind(bars)}, expected an object keyed by symbol`);
        }
        for (const [symbol, rows] of Object.entries(bars ?? {})) {
          if (!Array.isArray(rows)) {
            throw new TypeError(`bars of "${symbol}" are ${jsonKind(rows)}, expected an array`);
          }
          if (!wanted.has(symbol)) continue;
          for (const row of rows) {
            const what = `bar of "${symbol}"`;
            if (!isObject(row) || typeof row.t !== "string") {
              throw new TypeError(`${what} has no time "t": ${JSON.stringify(row)}`);
            }
            const ts = parseRfc3339(row.t);
            if (Number.isNaN(ts)) throw new TypeError(`${what} has time ${JSON.stringify(row.t)}`);
            collector.add(symbol, ts, ohlcvFields(row, what));
          }
        }
        return token;
      };

      const checkToken = cursorGuard(http, "next_page_token");
      let token: string | null = null;
      for (;;) {
        token = await http.get("/v2/stocks/bars", {
          query: { ...query, page_token: token ?? undefined },
          feed,
          signal: fetchOptions.signal,
          parse,
        });
        if (token === null) break;
        checkToken(token, "/v2/stocks/bars");
      }
      return collector.finish(request.timeframe);
    },
  };
}

/** Registry entry: credentials from `ALPACA_KEY`/`ALPACA_SECRET` or the SDK's `APCA_*` names. */
export const alpacaFactory: ProviderFactory = {
  info: alpacaInfo,
  check: (settings: ProviderSettings) => void _optionsOf(settings),
  create: (settings: ProviderSettings) => alpaca(_optionsOf(settings)),
};

function _optionsOf(settings: ProviderSettings): AlpacaOptions {
  const [key, secret] = requireCredentials("alpaca", settings.env, ALPACA_CREDENTIAL_VARS);
  // The base URL variable in effect, so that an invalid value is reported under its own name.
  const urlVar = _BASE_URL_VARS.find((name) => (settings.env[name] ?? "") !== "") ??
    _BASE_URL_VARS[0];
  return { key, secret, ...httpOptionsFromSettings(settings, urlVar, ALPACA_BASE_URL) };
}

function _explainError(status: number, message: string) {
  if (status !== 401 && status !== 403) return undefined;
  if (/subscription|sip/i.test(message)) {
    return {
      hint: "the plan is not entitled to this data (the credentials are fine): SIP data from " +
        "the last 15 minutes needs an Alpaca subscription; use --feed iex or --feed delayed_sip, " +
        "or an earlier --end",
    };
  }
  return {
    hint: "bad credentials: Alpaca answers 403 to a missing, wrong or revoked key; check " +
      "ALPACA_KEY and ALPACA_SECRET (or APCA_API_KEY_ID and APCA_API_SECRET_KEY)",
    fatal: true,
  };
}

function _rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}
