/**
 * Mock of Polygon.io (Massive) custom aggregates (providers/README.md, "Polygon" and "Mock
 * servers"): `apiKey=` or `Authorization: Bearer`, 401 "Unknown API Key", 403 NOT_AUTHORIZED for
 * minute data on a free key, `limit` counting base aggregates with `next_url` (on the real host,
 * with a cursor and without the key), no `results` key on empty answers, millisecond window starts,
 * 429 without `Retry-After` past the per-key window. Also `/v3/reference/tickers` (active and
 * inactive on a date, `next_url` paging) for the symbol master.
 *
 * @module
 */
import { isValidDate } from "../../core/calendar.ts";
import {
  createWindowLimiter,
  datesBetween,
  type Market,
  type MockBar,
  nyMidnight,
} from "./market.ts";
import { jsonResponse, type MockRequest, type MockResponse, type MockRoute } from "./server.ts";

/** Options of {@link createPolygonMock}. */
export interface PolygonMockOptions {
  market: Market;
  /** Key -> plan. Default one paid key {@link POLYGON_MOCK_KEY} and one free key. */
  keys?: Record<string, "free" | "paid">;
  /** Requests per window per key. Default 5 per 60 s (free plan). */
  rateLimit?: { limit: number; windowMs: number };
  /** Answer empty ranges with `"results": null` (older API) instead of leaving the key out. */
  legacyNullResults?: boolean;
  /** Host written in `next_url`. Default the real `https://api.polygon.io`. */
  nextHost?: string;
  record?: boolean;
  /** The reference tickers `/v3/reference/tickers` serves. Default {@link POLYGON_MOCK_TICKERS}. */
  tickers?: readonly PolygonMockTicker[];
  /** Most tickers per page whatever `limit` asks (to page through a small list). Default 1000. */
  tickersPageLimit?: number;
}

/**
 * One instrument under one ticker over `[listed, delisted)`: active on dates in that window,
 * inactive (with `delisted_utc`) from `delisted` on, absent before `listed`. A ticker change is
 * two entries with one `composite_figi`, the old one delisted on the day the new one lists.
 */
export interface PolygonMockTicker {
  ticker: string;
  name: string;
  type?: string;
  primary_exchange?: string;
  composite_figi?: string;
  share_class_figi?: string;
  cik?: string;
  listed: string;
  delisted?: string;
}

/**
 * The default reference tickers: common stocks, an ETF, an ADR, a unit, FB -> META on
 * 2022-06-09 (one FIGI), TWTR delisted 2022-11-08, an old delisting without FIGI, a listing on
 * 2024-03-21 (RDDT), and a preferred in Polygon's `ABRpD` form that MarketPipe cannot store.
 */
export const POLYGON_MOCK_TICKERS: readonly PolygonMockTicker[] = [
  {
    ticker: "AAPL",
    name: "Apple Inc.",
    type: "CS",
    primary_exchange: "XNAS",
    composite_figi: "BBG000B9XRY4",
    share_class_figi: "BBG001S5N8V8",
    cik: "0000320193",
    listed: "1980-12-12",
  },
  {
    ticker: "ABRpD",
    name: "Arbor Realty Trust 6.375% Series D Preferred",
    type: "PFD",
    primary_exchange: "XNYS",
    listed: "2021-06-01",
  },
  {
    ticker: "BABA",
    name: "Alibaba Group Holding Limited American Depositary Shares",
    type: "ADRC",
    primary_exchange: "XNYS",
    composite_figi: "BBG006G2JVL2",
    cik: "0001577552",
    listed: "2014-09-19",
  },
  {
    ticker: "BRK.B",
    name: "Berkshire Hathaway Inc. Class B",
    type: "CS",
    primary_exchange: "XNYS",
    composite_figi: "BBG000DWG505",
    cik: "0001067983",
    listed: "1996-05-09",
  },
  {
    ticker: "FB",
    name: "Facebook, Inc. Class A Common Stock",
    type: "CS",
    primary_exchange: "XNAS",
    composite_figi: "BBG000MM2P62",
    cik: "0001326801",
    listed: "2012-05-18",
    delisted: "2022-06-09",
  },
  {
    ticker: "META",
    name: "Meta Platforms, Inc. Class A Common Stock",
    type: "CS",
    primary_exchange: "XNAS",
    composite_figi: "BBG000MM2P62",
    cik: "0001326801",
    listed: "2022-06-09",
  },
  {
    ticker: "MSFT",
    name: "Microsoft Corp",
    type: "CS",
    primary_exchange: "XNAS",
    composite_figi: "BBG000BPH459",
    cik: "0000789019",
    listed: "1986-03-13",
  },
  {
    ticker: "OLDX",
    name: "Old Example Corp",
    type: "CS",
    primary_exchange: "XNYS",
    listed: "1999-01-04",
    delisted: "2009-05-01",
  },
  {
    ticker: "RDDT",
    name: "Reddit, Inc. Class A Common Stock",
    type: "CS",
    primary_exchange: "XNYS",
    composite_figi: "BBG00NJGTJX5",
    cik: "0001713445",
    listed: "2024-03-21",
  },
  {
    ticker: "SPY",
    name: "SPDR S&P 500 ETF Trust",
    type: "ETF",
    primary_exchange: "ARCX",
    composite_figi: "BBG000BDTBL9",
    share_class_figi: "BBG001S72SM3",
    cik: "0000884394",
    listed: "1993-01-29",
  },
  {
    ticker: "SVIIU",
    name: "Spring Valley Acquisition Corp. II Units",
    type: "UNIT",
    primary_exchange: "XNAS",
    composite_figi: "BBG01B0JXXB4",
    listed: "2022-10-13",
  },
  {
    ticker: "TWTR",
    name: "Twitter, Inc.",
    type: "CS",
    primary_exchange: "XNYS",
    composite_figi: "BBG000H6HNW3",
    cik: "0001418091",
    listed: "2013-11-07",
    delisted: "2022-11-08",
  },
];

/** The Polygon mock and what it served. */
export interface PolygonMock extends MockRoute {
  /** Served bars by `symbol|multiplier/timespan|ts`. */
  served: Map<string, MockBar>;
  stats: { pages: number; tooMany: number };
}

/** A key of the paid plan. */
export const POLYGON_MOCK_KEY = "PGMOCKpaidKEY000000000001";
/** A key of the free plan (end-of-day data only). */
export const POLYGON_MOCK_FREE_KEY = "PGMOCKfreeKEY000000000002";

const _TIMESPANS = ["second", "minute", "hour", "day", "week", "month", "quarter", "year"];

/** A Polygon aggregates mock; mount it on {@link startMockServer}. */
export function createPolygonMock(options: PolygonMockOptions): PolygonMock {
  const keys = options.keys ?? { [POLYGON_MOCK_KEY]: "paid", [POLYGON_MOCK_FREE_KEY]: "free" };
  const limiter = createWindowLimiter([options.rateLimit ?? { limit: 5, windowMs: 60_000 }]);
  const nextHost = options.nextHost ?? "https://api.polygon.io";
  const served = new Map<string, MockBar>();
  const stats = { pages: 0, tooMany: 0 };
  let requestId = 0;

  function handle(request: MockRequest): MockResponse {
    const id = `mock${(++requestId).toString(16).padStart(12, "0")}`;
    const answer = (status: number, body: Record<string, unknown>) =>
      jsonResponse(status, { ...body, request_id: id });
    const error = (status: number, message: string) =>
      answer(status, { status: "ERROR", error: message });
    const bearer = /^Bearer (.+)$/.exec(request.headers.get("Authorization") ?? "")?.[1];
    const key = request.query.get("apiKey") ?? bearer;
    const plan = key === undefined ? undefined : keys[key];
    if (!plan) return error(401, "Unknown API Key");
    if (!limiter.take(key!, request.at).ok) {
      stats.tooMany++;
      return error(
        429,
        "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://polygon.io/pricing",
      );
    }
    if (request.path === "/v3/reference/tickers") return tickers(request, error);
    const match = /^\/v2\/aggs\/ticker\/([^/]+)\/range\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)$/
      .exec(request.path);
    if (!match) return answer(404, { status: "NOT_FOUND", message: "Not found" });
    const [, tickerText, multiplierText, timespan, fromText, toText] = match;
    const ticker = decodeURIComponent(tickerText);
    const multiplier = Number(multiplierText);
    if (!Number.isInteger(multiplier) || multiplier < 1) {
      return error(400, `invalid multiplier ${multiplierText}`);
    }
    if (!_TIMESPANS.includes(timespan)) return error(400, `invalid timespan ${timespan}`);
    const from = _parseBound(fromText, false);
    const to = _parseBound(toText, true);
    if (Number.isNaN(from) || Number.isNaN(to)) return error(400, "invalid from or to");
    if (plan === "free" && ["second", "minute", "hour"].includes(timespan)) {
      return answer(403, {
        status: "NOT_AUTHORIZED",
        message:
          "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing",
      });
    }
    if (timespan !== "minute" && timespan !== "day") {
      return error(400, `the mock serves minute and day bars, not ${timespan}`);
    }
    const params = _withCursor(request.query);
    const limit = Math.min(Number(params.get("limit") ?? "5000"), 50_000);
    if (!Number.isInteger(limit) || limit < 1) return error(400, "invalid limit");
    const adjusted = (params.get("adjusted") ?? "true") !== "false";
    const adjustment = adjusted ? "split" : "raw";

    // Candidate bars with the number of base aggregates (1m or 1d bars) each is built from.
    const results: { bar: MockBar; base: number }[] = [];
    for (const date of datesBetween(from, to)) {
      if (!isValidDate(date)) continue;
      if (timespan === "day") {
        const bar = options.market.daily(ticker, date, "sip", adjustment);
        if (bar && bar.ts >= from && bar.ts <= to) results.push({ bar, base: 1 });
      } else {
        const minutes = options.market.minutes(ticker, date, "sip", adjustment)
          .filter((m) => m.ts >= from && m.ts <= to);
        const windows = new Map<number, number>();
        for (const m of minutes) {
          const start = Math.floor(m.ts / (multiplier * 60_000)) * multiplier * 60_000;
          windows.set(start, (windows.get(start) ?? 0) + 1);
        }
        for (const bar of options.market.buckets(ticker, date, "sip", multiplier, adjustment)) {
          const base = windows.get(bar.ts);
          if (base !== undefined) results.push({ bar, base });
        }
      }
    }
    // Multi-day bars are not needed by MarketPipe; day multipliers > 1 group consecutive days.
    let page: MockBar[] = [];
    let used = 0;
    let nextFrom: number | undefined;
    for (const { bar, base } of results) {
      if (page.length > 0 && used + base > limit) {
        nextFrom = bar.ts;
        break;
      }
      page.push(bar);
      used += base;
    }
    if (timespan === "day" && multiplier > 1) page = _groupDays(page, multiplier);
    stats.pages++;
    if (options.record !== false) {
      for (const bar of page) {
        const old = bar.ts < Date.UTC(2010, 0, 1);
        served.set(
          `${ticker}|${multiplier}/${timespan}|${bar.ts}`,
          old ? { ...bar, vwap: null, tradeCount: null } : bar,
        );
      }
    }
    const body: Record<string, unknown> = {
      ticker,
      queryCount: used,
      resultsCount: page.length,
      adjusted,
    };
    if (page.length > 0) {
      body.results = page.map((b) => {
        const row: Record<string, number> = {
          v: b.volume,
          o: b.open,
          c: b.close,
          h: b.high,
          l: b.low,
          t: b.ts,
        };
        // Old data has no VWAP or trade count.
        if (b.ts >= Date.UTC(2010, 0, 1)) {
          if (b.vwap !== null) row.vw = b.vwap;
          if (b.tradeCount !== null) row.n = b.tradeCount;
        }
        return row;
      });
    } else if (options.legacyNullResults) {
      body.results = null;
    }
    body.status = "OK";
    body.request_id = id;
    if (page.length > 0) body.count = page.length;
    if (nextFrom !== undefined) {
      const next = new URLSearchParams({
        limit: String(limit),
        sort: "asc",
        adjusted: String(adjusted),
      });
      body.next_url =
        `${nextHost}/v2/aggs/ticker/${tickerText}/range/${multiplier}/${timespan}/${nextFrom}/${toText}?cursor=${
          btoa(next.toString()).replaceAll("=", "")
        }`;
    }
    return jsonResponse(200, body);
  }

  /**
   * `/v3/reference/tickers`: the tickers active (or, with `active=false`, delisted) on `date`,
   * sorted by ticker, at most `limit` (1-1000, default 100) a page, `next_url` on the real host
   * with a cursor and without the key. Other markets have no tickers here.
   */
  function tickers(
    request: MockRequest,
    error: (status: number, message: string) => MockResponse,
  ): MockResponse {
    const params = _withCursor(request.query);
    const date = params.get("date") ?? new Date().toISOString().slice(0, 10);
    if (!isValidDate(date)) return error(400, `invalid date: ${date}`);
    const limit = Number(params.get("limit") ?? "100");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return error(400, "limit must be between 1 and 1000");
    }
    const active = (params.get("active") ?? "true") !== "false";
    const market = params.get("market");
    const list = (market !== null && market !== "stocks" ? [] : options.tickers ??
      POLYGON_MOCK_TICKERS)
      .filter((t) =>
        active
          ? t.listed <= date && (t.delisted === undefined || t.delisted > date)
          : t.delisted !== undefined && t.delisted <= date
      )
      .sort((a, b) => a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : 0);
    const offset = Number(params.get("page_marker") ?? "0");
    const size = Math.min(limit, options.tickersPageLimit ?? 1000);
    const page = list.slice(offset, offset + size);
    stats.pages++;
    const body: Record<string, unknown> = {
      results: page.map((t) => {
        const row: Record<string, unknown> = {
          ticker: t.ticker,
          name: t.name,
          market: "stocks",
          locale: "us",
          primary_exchange: t.primary_exchange,
          type: t.type,
          active,
          currency_name: "usd",
          cik: t.cik,
          composite_figi: t.composite_figi,
          share_class_figi: t.share_class_figi,
          last_updated_utc: `${active ? date : t.delisted}T00:00:00Z`,
        };
        if (!active) row.delisted_utc = `${t.delisted}T00:00:00Z`;
        return row;
      }),
      status: "OK",
      request_id: `mock${stats.pages.toString(16).padStart(12, "0")}`,
      count: page.length,
    };
    if (offset + size < list.length) {
      const next = new URLSearchParams(params);
      next.delete("apiKey");
      next.delete("cursor");
      next.set("page_marker", String(offset + size));
      body.next_url = `${nextHost}/v3/reference/tickers?cursor=${
        btoa(next.toString()).replaceAll("=", "")
      }`;
    }
    return jsonResponse(200, body);
  }

  return { handle, served, stats };
}

/** The query with the parameters its `cursor` carries, which win over the query's own. */
function _withCursor(query: URLSearchParams): URLSearchParams {
  const params = new URLSearchParams(query);
  const cursor = query.get("cursor");
  if (cursor !== null) {
    for (const [name, value] of new URLSearchParams(atob(cursor))) params.set(name, value);
  }
  return params;
}

function _parseBound(text: string, end: boolean): number {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    if (!isValidDate(text)) return Number.NaN;
    if (!end) return nyMidnight(text);
    const next = new Date(Date.parse(`${text}T12:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    return nyMidnight(next) - 1;
  }
  return /^\d+$/.test(text) ? Number(text) : Number.NaN;
}

function _groupDays(bars: MockBar[], n: number): MockBar[] {
  const out: MockBar[] = [];
  for (let i = 0; i < bars.length; i += n) {
    const group = bars.slice(i, i + n);
    out.push({
      ...group[0],
      high: Math.max(...group.map((b) => b.high)),
      low: Math.min(...group.map((b) => b.low)),
      close: group[group.length - 1].close,
      volume: group.reduce((sum, b) => sum + b.volume, 0),
      vwap: null,
      tradeCount: null,
    });
  }
  return out;
}
