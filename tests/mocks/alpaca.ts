/**
 * Mock of Alpaca Market Data v2 stock bars (providers/README.md, "Alpaca" and "Mock servers"):
 * header auth answered with 403 (never 401), timeframe grammar and limit checks with 422, multi-
 * and single-symbol endpoints, pages of at most `limit` bars across symbols sorted by symbol then
 * time with base64 `SYMBOL|TF|time` tokens, optional short pages and empty final pages,
 * `X-Ratelimit-*` headers on every answer and 429 past the window, 403 for recent SIP data on a
 * free plan. Also the trading API's `/v2/assets` list (401 for bad keys, status and class
 * filters, no paging), for the symbol master.
 *
 * @module
 */
import { exchangeDate, isValidDate } from "../../core/calendar.ts";
import {
  type Adjustment,
  createWindowLimiter,
  datesBetween,
  type Market,
  type MockBar,
  type Tape,
} from "./market.ts";
import { jsonResponse, type MockRequest, type MockResponse, type MockRoute } from "./server.ts";

/** Options of {@link createAlpacaMock}. */
export interface AlpacaMockOptions {
  market: Market;
  /** Key id -> secret and plan. Default one free key `AKMOCKKEY0000000001`. */
  keys?: Record<string, { secret: string; plan: "free" | "unlimited" }>;
  /** Requests per window per key. Default 200 per 60 s. */
  rateLimit?: { limit: number; windowMs: number };
  /** Send `Retry-After` with 429 (Alpaca does not document it). Default false. */
  retryAfter?: boolean;
  /** Every n-th page of a query is cut to half the limit while carrying a token. */
  shortPageEvery?: number;
  /** End every paged answer with a token that leads to an empty final page. */
  emptyFinalPage?: boolean;
  /** Remember every bar served, for tests that compare with what was stored. Default true. */
  record?: boolean;
  /** The mock's clock (for "recent SIP data" and defaults). Default `Date.now`. */
  now?: () => number;
  /** The trading API's `/v2/assets` list. Default {@link ALPACA_MOCK_ASSETS}. */
  assets?: readonly AlpacaMockAsset[];
}

/** One asset of the trading API's `GET /v2/assets` answer (the fields MarketPipe reads and more). */
export interface AlpacaMockAsset {
  id: string;
  class: string;
  exchange: string;
  symbol: string;
  name: string;
  status: "active" | "inactive";
  tradable: boolean;
  marginable: boolean;
  shortable: boolean;
  easy_to_borrow: boolean;
  fractionable: boolean;
  attributes?: string[];
}

function _asset(
  id: string,
  symbol: string,
  exchange: string,
  name: string,
  status: "active" | "inactive" = "active",
  assetClass = "us_equity",
): AlpacaMockAsset {
  const active = status === "active";
  return {
    id,
    class: assetClass,
    exchange,
    symbol,
    name,
    status,
    tradable: active,
    marginable: active,
    shortable: active,
    easy_to_borrow: active,
    fractionable: active,
    attributes: [],
  };
}

/**
 * The mock's default asset list: active names on each exchange Alpaca names, an ETF, an OTC ADR,
 * inactive assets (MSP twice under one symbol, as Alpaca makes a new asset per CUSIP), a symbol
 * MarketPipe cannot store and a crypto asset (left out by `asset_class=us_equity`).
 */
export const ALPACA_MOCK_ASSETS: readonly AlpacaMockAsset[] = [
  _asset("b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "AAPL", "NASDAQ", "Apple Inc. Common Stock"),
  _asset(
    "fc6a5dcd-4a70-4b8d-b64f-d83a6dae9ba4",
    "META",
    "NASDAQ",
    "Meta Platforms, Inc. Class A Common Stock",
  ),
  _asset("b28f4066-5c6d-479b-a2af-85dc1a8f16fb", "SPY", "ARCA", "SPDR S&P 500 ETF Trust"),
  _asset(
    "3b8b8ea5-1f8d-4b2a-9a0f-1f3c0c8e2b11",
    "BRK.B",
    "NYSE",
    "Berkshire Hathaway Inc. Class B",
  ),
  _asset(
    "0d5f5c9e-8f0c-4f1e-9f7b-2b6e1f1c3a21",
    "IMO",
    "AMEX",
    "Imperial Oil Limited Common Stock",
  ),
  _asset(
    "5e1a7c2d-3b4f-4e6a-8c9d-0a1b2c3d4e31",
    "EFAV",
    "BATS",
    "iShares MSCI EAFE Min Vol Factor ETF",
  ),
  _asset(
    "7c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e41",
    "TCEHY",
    "OTC",
    "Tencent Holdings Ltd. Unsponsored ADR",
  ),
  _asset("9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c51", "GLD", "NYSEARCA", "SPDR Gold Trust"),
  _asset(
    "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c61",
    "TWTR",
    "NYSE",
    "Twitter, Inc. Common Stock",
    "inactive",
  ),
  _asset("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d71", "MSP", "NYSE", "Datto Holding Corp.", "inactive"),
  _asset("3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e81", "MSP", "NYSE", "Datto Holding Corp.", "inactive"),
  _asset("4d5e6f7a-8b9c-4d0e-1f2a-3b4c5d6e7f91", "XYZ.W.I", "NYSE", "Example Corp When Issued"),
  _asset(
    "276e2673-764b-4ab6-a611-caf665ca6340",
    "BTC/USD",
    "CRYPTO",
    "Bitcoin / US Dollar",
    "active",
    "crypto",
  ),
];

/** The Alpaca mock and what it served. */
export interface AlpacaMock extends MockRoute {
  /** Served bars by `symbol|timeframe|ts`. */
  served: Map<string, MockBar & { timeframe: string }>;
  /** Pages answered (with bars or empty) and bars in them. */
  stats: { pages: number; emptyPages: number; bars: number };
}

/** Default credentials of the mock. */
export const ALPACA_MOCK_KEY = "AKMOCKKEY0000000001";
export const ALPACA_MOCK_SECRET = "SKMOCKSECRETabcdefghijklmnop0001";

const _FEEDS = ["iex", "sip", "delayed_sip", "otc", "boats", "overnight"];
const _ADJUSTMENTS = ["raw", "split", "dividend", "all"];

/** An Alpaca data API mock; mount it on {@link startMockServer}. */
export function createAlpacaMock(options: AlpacaMockOptions): AlpacaMock {
  const keys = options.keys ??
    { [ALPACA_MOCK_KEY]: { secret: ALPACA_MOCK_SECRET, plan: "free" as const } };
  const limiter = createWindowLimiter([options.rateLimit ?? { limit: 200, windowMs: 60_000 }]);
  const now = options.now ?? (() => Date.now());
  const served = new Map<string, MockBar & { timeframe: string }>();
  const pageNumbers = new Map<string, number>();
  const stats = { pages: 0, emptyPages: 0, bars: 0 };
  const assets = options.assets ?? ALPACA_MOCK_ASSETS;

  function handle(request: MockRequest): MockResponse {
    if (request.path === "/v2/assets") return handleAssets(request);
    const single = /^\/v2\/stocks\/([^/]+)\/bars$/.exec(request.path);
    if (request.path !== "/v2/stocks/bars" && !single) {
      return jsonResponse(404, { message: "Not Found" });
    }
    const keyId = request.headers.get("APCA-API-KEY-ID");
    const secret = request.headers.get("APCA-API-SECRET-KEY");
    const account = keyId === null ? undefined : keys[keyId];
    if (!account || account.secret !== secret) return jsonResponse(403, { message: "forbidden" });

    const taken = limiter.take(keyId!, request.at);
    const rateHeaders = _rateHeaders(taken);
    if (!taken.ok) {
      const retryAfter = String(Math.max(1, Math.ceil((taken.resetAt - request.at) / 1000)));
      const headers = options.retryAfter
        ? { ...rateHeaders, "Retry-After": retryAfter }
        : rateHeaders;
      return jsonResponse(429, { code: 42910000, message: "too many requests" }, headers);
    }
    const fail = (status: number, code: number, message: string) =>
      jsonResponse(status, { code, message }, rateHeaders);

    const q = request.query;
    const symbols = single
      ? [decodeURIComponent(single[1])]
      : (q.get("symbols") ?? "").split(",").filter((s) => s !== "");
    if (symbols.length === 0) return fail(400, 40010001, "missing symbols");
    const timeframe = _parseTimeframe(q.get("timeframe") ?? "");
    if (!timeframe) return fail(422, 42210000, "invalid timeframe");
    const limit = Number(q.get("limit") ?? "1000");
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      return fail(422, 42210000, "invalid limit: must be between 1 and 10000");
    }
    const feed = q.get("feed") ?? (account.plan === "free" ? "iex" : "sip");
    if (!_FEEDS.includes(feed)) return fail(400, 40010001, `invalid feed: ${feed}`);
    const adjustment = (q.get("adjustment") ?? "raw") as Adjustment;
    if (!_ADJUSTMENTS.includes(adjustment)) {
      return fail(400, 40010001, `invalid adjustment: ${adjustment}`);
    }
    const sort = q.get("sort") ?? "asc";
    if (sort !== "asc" && sort !== "desc") return fail(400, 40010001, `invalid sort: ${sort}`);
    const nowMs = now();
    const start = q.has("start") ? _parseTime(q.get("start")!) : _startOfUtcDay(nowMs);
    const end = q.has("end") ? _parseTime(q.get("end")!) : nowMs;
    if (Number.isNaN(start)) return fail(400, 40010001, "invalid start");
    if (Number.isNaN(end)) return fail(400, 40010001, "invalid end");
    if (end < start) return fail(422, 42210000, "end should not be before start");
    if (feed === "sip" && account.plan === "free" && end > nowMs - 15 * 60_000) {
      return fail(403, 40310000, "subscription does not permit querying recent SIP data");
    }
    if (timeframe.unit === "Week" || timeframe.unit === "Month") {
      return fail(500, 50010000, `the mock does not serve ${timeframe.unit} bars`);
    }

    const token = q.get("page_token");
    const after = token === null ? undefined : _decodeToken(token);
    if (token !== null && !after) return fail(400, 40010001, "invalid page_token");
    const queryKey = [...q.entries()].filter(([k]) => k !== "page_token").sort().join("&");
    const pageNumber = pageNumbers.get(`${queryKey}|${token ?? ""}`) ?? 1;
    const short = options.shortPageEvery !== undefined &&
      pageNumber % options.shortPageEvery === 0;
    const size = short ? Math.max(1, Math.floor(limit / 2)) : limit;

    const tape: Tape = feed === "iex" ? "iex" : "sip";
    const minutes = timeframe.unit === "Hour" ? timeframe.n * 60 : timeframe.n;
    const bySymbol = new Map<string, MockBar[]>();
    let count = 0;
    let last: MockBar | undefined;
    let more = false;
    outer: for (const symbol of [...new Set(symbols)].sort()) {
      if (after && symbol < after.symbol) continue;
      for (const date of datesBetween(start, end)) {
        if (!isValidDate(date)) continue;
        if (after && symbol === after.symbol && exchangeDate(after.ts) > date) continue;
        const day = timeframe.unit === "Day"
          ? [options.market.daily(symbol, date, tape, adjustment)].filter((b) => b !== undefined)
          : options.market.buckets(symbol, date, tape, minutes, adjustment);
        for (const bar of day) {
          if (bar.ts < start || bar.ts > end) continue;
          if (after && symbol === after.symbol && bar.ts <= after.ts) continue;
          if (count === size) {
            more = true;
            break outer;
          }
          let list = bySymbol.get(symbol);
          if (!list) bySymbol.set(symbol, list = []);
          list.push(bar);
          count++;
          last = bar;
        }
      }
    }
    if (sort === "desc") { for (const list of bySymbol.values()) list.reverse(); }
    // A full page carries a token even when nothing follows, as the real API does not look
    // ahead; so may the last page, on request.
    const next = last && (more || count === size || options.emptyFinalPage)
      ? _encodeToken(last.symbol, timeframe.letter, last.ts)
      : null;
    if (next !== null) pageNumbers.set(`${queryKey}|${next}`, pageNumber + 1);
    stats.pages++;
    stats.bars += count;
    if (count === 0) stats.emptyPages++;
    if (options.record !== false) {
      for (const bar of [...bySymbol.values()].flat()) {
        served.set(`${bar.symbol}|${timeframe.text}|${bar.ts}`, {
          ...bar,
          timeframe: timeframe.text,
        });
      }
    }
    const body = single
      ? `{"bars":${
        bySymbol.size === 0 ? "null" : _barsJson(bySymbol.get(symbols[0]) ?? [])
      },"symbol":${JSON.stringify(symbols[0])},"next_page_token":${JSON.stringify(next)}}`
      : `{"bars":{${
        [...bySymbol].map(([s, list]) => `${JSON.stringify(s)}:${_barsJson(list)}`).join(",")
      }},"next_page_token":${JSON.stringify(next)}}`;
    return { status: 200, headers: { "Content-Type": "application/json", ...rateHeaders }, body };
  }

  /**
   * The trading API's asset list: 401 (not the data API's 403) for bad keys, the same per-key
   * window and 429, `status` active|inactive (absent: all) and `asset_class` (default
   * us_equity) filters, sorted by class, exchange and symbol, no paging.
   */
  function handleAssets(request: MockRequest): MockResponse {
    const keyId = request.headers.get("APCA-API-KEY-ID");
    const secret = request.headers.get("APCA-API-SECRET-KEY");
    const account = keyId === null ? undefined : keys[keyId];
    if (!account || account.secret !== secret) {
      return jsonResponse(401, { code: 40110000, message: "request is not authorized" });
    }
    const taken = limiter.take(keyId!, request.at);
    const rateHeaders = _rateHeaders(taken);
    if (!taken.ok) {
      return jsonResponse(429, { code: 42910000, message: "too many requests" }, rateHeaders);
    }
    const invalid = (message: string) =>
      jsonResponse(422, { code: 42210000, message }, rateHeaders);
    const status = request.query.get("status");
    if (status !== null && status !== "active" && status !== "inactive") {
      return invalid(`invalid status: ${status}`);
    }
    const assetClass = request.query.get("asset_class") ?? "us_equity";
    if (assetClass !== "us_equity" && assetClass !== "us_option" && assetClass !== "crypto") {
      return invalid(`invalid asset_class: ${assetClass}`);
    }
    const list = assets
      .filter((a) => a.class === assetClass && (status === null || a.status === status))
      .sort((a, b) =>
        a.exchange < b.exchange ? -1 : a.exchange > b.exchange ? 1 : a.symbol < b.symbol ? -1 : 1
      );
    return jsonResponse(200, list, rateHeaders);
  }

  return { handle, served, stats };
}

interface _Timeframe {
  n: number;
  unit: "Min" | "Hour" | "Day" | "Week" | "Month";
  /** Letter used in page tokens. */
  letter: string;
  /** Canonical text, e.g. `5Min`. */
  text: string;
}

function _parseTimeframe(text: string): _Timeframe | undefined {
  const match = /^(\d{1,2})(Min|T|Hour|H|Day|D|Week|W|Month|M)$/.exec(text);
  if (!match) return undefined;
  const n = Number(match[1]);
  const unit = ({ T: "Min", H: "Hour", D: "Day", W: "Week", M: "Month" } as const)[
    match[2] as "T"
  ] ?? (match[2] as _Timeframe["unit"]);
  const ok = unit === "Min"
    ? n >= 1 && n <= 59
    : unit === "Hour"
    ? n >= 1 && n <= 23
    : unit === "Month"
    ? [1, 2, 3, 4, 6, 12].includes(n)
    : n === 1;
  if (!ok) return undefined;
  const letter = { Min: "M", Hour: "H", Day: "D", Week: "W", Month: "MO" }[unit];
  return { n, unit, letter, text: `${n}${unit}` };
}

function _parseTime(text: string): number {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    return isValidDate(text) ? Date.parse(`${text}T00:00:00Z`) : NaN;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return NaN;
  return Date.parse(text);
}

function _startOfUtcDay(ms: number): number {
  return Math.floor(ms / 86_400_000) * 86_400_000;
}

function _encodeToken(symbol: string, letter: string, ts: number): string {
  const time = new Date(ts).toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
  return btoa(`${symbol}|${letter}|${time}`);
}

function _decodeToken(token: string): { symbol: string; ts: number } | undefined {
  try {
    const [symbol, , time] = atob(token).split("|");
    const ts = Date.parse(time.replace(/\.(\d{3})\d*Z$/, ".$1Z"));
    return symbol && Number.isFinite(ts) ? { symbol, ts } : undefined;
  } catch {
    return undefined;
  }
}

function _barsJson(list: readonly MockBar[]): string {
  const parts = list.map((b) =>
    `{"t":"${new Date(b.ts).toISOString().replace(".000Z", "Z")}","o":${b.open},"h":${b.high},` +
    `"l":${b.low},"c":${b.close},"v":${b.volume}${
      b.tradeCount === null ? "" : `,"n":${b.tradeCount}`
    }${b.vwap === null ? "" : `,"vw":${b.vwap}`}}`
  );
  return `[${parts.join(",")}]`;
}

/** Alpaca's `X-Ratelimit-*` headers for a request the limiter counted (or refused). */
function _rateHeaders(
  taken: { limit: number; remaining: number; resetAt: number },
): Record<string, string> {
  return {
    "X-Ratelimit-Limit": String(taken.limit),
    "X-Ratelimit-Remaining": String(taken.remaining),
    "X-Ratelimit-Reset": String(Math.ceil(taken.resetAt / 1000)),
  };
}
