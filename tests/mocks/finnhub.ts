/**
 * Mock of Finnhub stock candles (providers/README.md, "Finnhub" and "Mock servers"): `token=` or
 * `X-Finnhub-Token`, 401 without a key, 403 for free keys (a premium endpoint), column arrays
 * with `"s":"ok"`, `{"s":"no_data"}` when empty, unix-second times, intraday spans clipped to
 * one month, 429 past 60 per minute or 30 per second.
 *
 * @module
 */
import { isValidDate } from "../../core/calendar.ts";
import { createWindowLimiter, datesBetween, type Market, type MockBar } from "./market.ts";
import { jsonResponse, type MockRequest, type MockResponse, type MockRoute } from "./server.ts";

/** Options of {@link createFinnhubMock}. */
export interface FinnhubMockOptions {
  market: Market;
  /** Key -> plan. Default a premium {@link FINNHUB_MOCK_KEY} and a free key. */
  keys?: Record<string, "free" | "premium">;
  /** Windows per key. Default 60 per minute and 30 per second. */
  rateLimits?: { limit: number; windowMs: number }[];
  /** Stamp daily candles at 00:00 UTC instead of New York midnight. */
  dailyAtUtcMidnight?: boolean;
  record?: boolean;
}

/** The Finnhub mock and what it served. */
export interface FinnhubMock extends MockRoute {
  /** Served bars by `symbol|resolution|ts` (daily ts: New York midnight). */
  served: Map<string, MockBar>;
}

/** A premium key. */
export const FINNHUB_MOCK_KEY = "fhmockpremiumkey0000000001";
/** A free key: 403 on candles. */
export const FINNHUB_MOCK_FREE_KEY = "fhmockfreekey0000000000002";

const _RESOLUTIONS = ["1", "5", "15", "30", "60", "D", "W", "M"];
const _MONTH_S = 31 * 86_400;

/** A Finnhub candles mock; mount it on {@link startMockServer} (base `/<name>/api/v1`). */
export function createFinnhubMock(options: FinnhubMockOptions): FinnhubMock {
  const keys = options.keys ??
    { [FINNHUB_MOCK_KEY]: "premium", [FINNHUB_MOCK_FREE_KEY]: "free" };
  const limiter = createWindowLimiter(
    options.rateLimits ?? [{ limit: 60, windowMs: 60_000 }, { limit: 30, windowMs: 1_000 }],
  );
  const served = new Map<string, MockBar>();

  function handle(request: MockRequest): MockResponse {
    const error = (status: number, error: string) => jsonResponse(status, { error });
    if (request.path !== "/api/v1/stock/candle") return error(404, "Not found");
    const token = request.query.get("token") ?? request.headers.get("X-Finnhub-Token");
    if (!token) return error(401, "Please use an API key.");
    const plan = keys[token];
    if (!plan) return error(401, "Invalid API key.");
    if (!limiter.take(token, request.at).ok) {
      return error(429, "API limit reached. Please try again later. Remaining Limit: 0");
    }
    if (plan === "free") return error(403, "You don't have access to this resource.");
    const q = request.query;
    const symbol = q.get("symbol");
    const resolution = q.get("resolution") ?? "";
    const from = Number(q.get("from"));
    let to = Number(q.get("to"));
    if (!symbol) return error(422, "Missing symbol");
    if (!_RESOLUTIONS.includes(resolution)) return error(422, "Wrong resolution");
    if (!q.has("from") || !q.has("to") || !Number.isInteger(from) || !Number.isInteger(to)) {
      return error(422, "Wrong from or to");
    }
    if (resolution === "W" || resolution === "M") {
      return error(422, "the mock serves intraday and daily candles only");
    }
    const daily = resolution === "D";
    // Only one month of intraday candles per call.
    if (!daily && to - from > _MONTH_S) to = from + _MONTH_S;
    const bars: MockBar[] = [];
    for (const date of datesBetween(from * 1000, to * 1000)) {
      if (!isValidDate(date)) continue;
      // Daily candles are split-adjusted; intraday candles are not.
      const day = daily
        ? [options.market.daily(symbol, date, "sip", "split")].filter((bar) => bar !== undefined)
        : options.market.buckets(symbol, date, "sip", Number(resolution));
      bars.push(...day.filter((bar) => bar.ts >= from * 1000 && bar.ts <= to * 1000));
    }
    if (bars.length === 0) return jsonResponse(200, { s: "no_data" });
    if (options.record !== false) {
      for (const bar of bars) served.set(`${symbol}|${resolution}|${bar.ts}`, bar);
    }
    const stamp = (bar: MockBar) =>
      daily && options.dailyAtUtcMidnight
        ? Date.parse(`${new Date(bar.ts).toISOString().slice(0, 10)}T00:00:00Z`) / 1000
        : bar.ts / 1000;
    return jsonResponse(200, {
      c: bars.map((b) => b.close),
      h: bars.map((b) => b.high),
      l: bars.map((b) => b.low),
      o: bars.map((b) => b.open),
      s: "ok",
      t: bars.map(stamp),
      v: bars.map((b) => b.volume),
    });
  }

  return { handle, served };
}
