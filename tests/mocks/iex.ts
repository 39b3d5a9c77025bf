/**
 * Mock of the legacy IEX Cloud chart endpoints (providers/README.md, "IEX Cloud (retired)" and
 * "Mock servers"): `token=` auth with plain-text errors (401/403, 404 `Unknown symbol`, 429), the
 * `iexcloud-messages-used` header, `chart/date/YYYYMMDD` minute rows for the regular session in New
 * York wall-clock time with null prices for minutes without IEX trades, and daily rows with
 * `chartByDay=true` (`u*` unadjusted, plain fields split-adjusted).
 *
 * @module
 */
import { tradingSession } from "../../core/calendar.ts";
import { createWindowLimiter, type Market, type MockBar } from "./market.ts";
import { jsonResponse, type MockRequest, type MockResponse, type MockRoute } from "./server.ts";

/** Options of {@link createIexMock}. */
export interface IexMockOptions {
  market: Market;
  /** Valid tokens. Default [{@link IEX_MOCK_TOKEN}]. */
  tokens?: readonly string[];
  /** Requests per window per token. Default 100 per second. */
  rateLimit?: { limit: number; windowMs: number };
  record?: boolean;
}

/** The IEX mock and what it served. */
export interface IexMock extends MockRoute {
  /** Served bars by `feed|symbol|ts` (feed `iex` or `sip` for minutes, `day` for daily rows). */
  served: Map<string, MockBar>;
}

/** A valid token. */
export const IEX_MOCK_TOKEN = "pk_mockiextoken0000000000001";

/** An IEX Cloud chart mock; mount it on {@link startMockServer} (base `/<name>/stable`). */
export function createIexMock(options: IexMockOptions): IexMock {
  const tokens = new Set(options.tokens ?? [IEX_MOCK_TOKEN]);
  const limiter = createWindowLimiter([options.rateLimit ?? { limit: 100, windowMs: 1_000 }]);
  const served = new Map<string, MockBar>();
  let messages = 0;

  const text = (status: number, body: string): MockResponse => ({
    status,
    headers: { "Content-Type": "text/plain" },
    body,
  });

  function handle(request: MockRequest): MockResponse {
    const match = /^\/stable\/stock\/([^/]+)\/chart\/date\/(\d{8})$/.exec(request.path);
    if (!match) return text(404, "Not found");
    const token = request.query.get("token");
    if (!token) {
      return text(401, "An API key is required to access this data and no key was provided");
    }
    if (!tokens.has(token)) return text(403, "The API key provided is not valid.");
    if (!limiter.take(token, request.at).ok) return text(429, "Too many requests");
    const symbol = decodeURIComponent(match[1]);
    if (!options.market.known(symbol)) return text(404, "Unknown symbol");
    const date = `${match[2].slice(0, 4)}-${match[2].slice(4, 6)}-${match[2].slice(6, 8)}`;
    const session = tradingSession(date);
    let rows: Record<string, unknown>[] = [];
    if (session && request.query.get("chartByDay") === "true") {
      const adjusted = options.market.daily(symbol, date, "sip", "split");
      const raw = options.market.daily(symbol, date, "sip", "raw");
      if (adjusted && raw) {
        if (options.record !== false) served.set(`day|${symbol}|${raw.ts}`, raw);
        rows = [{
          date,
          open: adjusted.open,
          close: adjusted.close,
          high: adjusted.high,
          low: adjusted.low,
          volume: adjusted.volume,
          uOpen: raw.open,
          uClose: raw.close,
          uHigh: raw.high,
          uLow: raw.low,
          uVolume: raw.volume,
          change: 0,
          changePercent: 0,
          label: date,
          changeOverTime: 0,
        }];
      }
    } else if (session) {
      const iex = new Map(options.market.minutes(symbol, date, "iex").map((b) => [b.ts, b]));
      const sip = new Map(options.market.minutes(symbol, date, "sip").map((b) => [b.ts, b]));
      for (let ts = session.open; ts < session.close; ts += 60_000) {
        const own = iex.get(ts);
        const market = sip.get(ts);
        if (options.record !== false) {
          if (own) served.set(`iex|${symbol}|${ts}`, own);
          if (market) served.set(`sip|${symbol}|${ts}`, market);
        }
        const minute = _wallClock(ts, session.open);
        rows.push({
          date,
          minute,
          label: minute,
          high: own?.high ?? null,
          low: own?.low ?? null,
          open: own?.open ?? null,
          close: own?.close ?? null,
          average: own?.vwap ?? null,
          volume: own?.volume ?? 0,
          notional: own ? Math.round(own.volume * (own.vwap ?? own.close) * 100) / 100 : 0,
          numberOfTrades: own?.tradeCount ?? 0,
          marketHigh: market?.high ?? null,
          marketLow: market?.low ?? null,
          marketAverage: market?.vwap ?? null,
          marketVolume: market?.volume ?? 0,
          marketNotional: market ? Math.round(market.volume * (market.vwap ?? market.close)) : 0,
          marketNumberOfTrades: market?.tradeCount ?? 0,
          marketOpen: market?.open ?? null,
          marketClose: market?.close ?? null,
          changeOverTime: 0,
          marketChangeOverTime: 0,
        });
      }
    }
    messages += Math.max(1, rows.length);
    return jsonResponse(200, rows, { "iexcloud-messages-used": String(messages) });
  }

  return { handle, served };
}

/** `HH:MM` New York wall-clock time of `ts`, knowing `open` is 09:30 that day. */
function _wallClock(ts: number, open: number): string {
  return new Date((9 * 60 + 30) * 60_000 + ts - open).toISOString().slice(11, 16);
}
