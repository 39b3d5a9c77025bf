/**
 * Bars of a renamed instrument: some providers serve history only under the ticker valid at the
 * time (Polygon: FB before 2022-06-09, META after), while MarketPipe stores every bar under the
 * instrument's current ticker. {@link withTickerHistory} fetches each part of a range under its
 * ticker and relabels the bars (providers/REFERENCE.md, "Ticker history").
 *
 * @module
 */
import { addDays } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import type { FetchOptions, FetchRequest, Provider } from "../core/provider.ts";

/** A part of a date range and the ticker the instrument traded under then (dates inclusive). */
export interface TickerSegment {
  ticker: string;
  /** First date, `YYYY-MM-DD`, inclusive. */
  start: string;
  /** Last date, `YYYY-MM-DD`, inclusive. */
  end: string;
}

/** For the instrument currently named `symbol`: its tickers over `[start, end]`, oldest first. */
export type TickerSegments = (symbol: string, start: string, end: string) => TickerSegment[];

const _HISTORICAL_TICKERS: ReadonlySet<string> = new Set(["polygon", "fake"]);

/**
 * Whether `provider` serves history under the ticker valid at the time (polygon, fake), so a
 * renamed instrument's early dates must be fetched under its old ticker. Alpaca, Finnhub and IEX
 * serve the whole history under the current ticker.
 */
export function servesHistoricalTickers(provider: string): boolean {
  return _HISTORICAL_TICKERS.has(provider);
}

/**
 * Wrap a bar provider so each requested symbol is fetched under the ticker it traded under on
 * each date (`segments`, usually `ReferenceStore.tickerSegments`) and its bars are stored under
 * the requested symbol. A symbol whose range is one segment under its own name goes out with the
 * other such symbols in one batch, as before; a renamed one is fetched one segment per request.
 * The result keeps the {@link Provider} contract: sorted by symbol then `ts`, requested dates only.
 *
 * @example
 * ```ts
 * const wrapped = withTickerHistory(polygon({ apiKey }), (s, a, b) => store.tickerSegments(s, a, b));
 * await wrapped.fetchBars({ symbols: ["META"], timeframe: "1d", start: "2022-01-03", end: "2022-12-30" });
 * // bars before 2022-06-09 were fetched as FB and carry symbol "META"
 * ```
 */
export function withTickerHistory(provider: Provider, segments: TickerSegments): Provider {
  return {
    name: provider.name,
    maxSymbolsPerRequest: provider.maxSymbolsPerRequest,
    async fetchBars(request: FetchRequest, options: FetchOptions = {}): Promise<Bar[]> {
      const plain: string[] = [];
      const renamed: { symbol: string; parts: TickerSegment[] }[] = [];
      for (const symbol of [...new Set(request.symbols)]) {
        const parts = _clip(segments(symbol, request.start, request.end), request, symbol);
        if (parts.length === 1 && parts[0].ticker === symbol) plain.push(symbol);
        else renamed.push({ symbol, parts });
      }
      const out: Bar[] = [];
      if (plain.length > 0) {
        const bars = await provider.fetchBars({ ...request, symbols: plain }, options);
        for (const bar of bars) out.push(bar);
      }
      for (const { symbol, parts } of renamed) {
        for (const part of parts) {
          options.signal?.throwIfAborted();
          const bars = await provider.fetchBars(
            { ...request, symbols: [part.ticker], start: part.start, end: part.end },
            options,
          );
          for (const bar of bars) {
            if (bar.tradingDate < part.start || bar.tradingDate > part.end) continue;
            out.push(bar.symbol === symbol ? bar : { ...bar, symbol });
          }
        }
      }
      return renamed.length === 0 ? out : out.sort(_bySymbolThenTs);
    },
  };
}

/**
 * The segments inside the request's range, oldest first, with any date they leave out given to
 * `symbol` itself (nothing is known about those dates, so the current name is the best guess).
 * Overlapping segments are a bug upstream and throw.
 */
function _clip(parts: TickerSegment[], request: FetchRequest, symbol: string): TickerSegment[] {
  const out: TickerSegment[] = [];
  const push = (ticker: string, start: string, end: string) => {
    const last = out[out.length - 1];
    if (last && last.ticker === ticker && addDays(last.end, 1) === start) last.end = end;
    else out.push({ ticker, start, end });
  };
  let next = request.start;
  for (const part of [...parts].sort((a, b) => a.start < b.start ? -1 : 1)) {
    const start = part.start < request.start ? request.start : part.start;
    const end = part.end > request.end ? request.end : part.end;
    if (start > end) continue;
    if (start < next) {
      throw new RangeError(
        `Invalid ticker segments of "${symbol}": ${part.ticker} from ${part.start} overlaps ` +
          `the segment before it`,
      );
    }
    if (start > next) push(symbol, next, addDays(start, -1));
    push(part.ticker, start, end);
    next = addDays(end, 1);
  }
  if (next <= request.end) push(symbol, next, request.end);
  return out;
}

function _bySymbolThenTs(a: Bar, b: Bar): number {
  return a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.ts - b.ts;
}
