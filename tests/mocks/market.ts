/**
 * The market behind the provider mocks: deterministic 1m bars from `generateFakeDay` (the same
 * calendar, holidays, early closes and DST as MarketPipe; sparse minutes), corporate-action
 * adjustments, the providers' own bucket alignments, and fixed-window rate limits.
 *
 * @module
 */
import { aggregateBars } from "../../core/aggregate.ts";
import { addDays, exchangeDate, isTradingDay, zonedTime } from "../../core/calendar.ts";
import type { Bar, Session } from "../../core/types.ts";
import { generateFakeDay } from "../../providers/fake.ts";

/** A bar as a mock serves it, before the provider's wire format. */
export interface MockBar {
  symbol: string;
  /** Bar start, epoch ms (daily bars: New York midnight of the trading date). */
  ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  vwap: number | null;
  tradeCount: number | null;
  /** New York trading date and session, as the generator knows them (not from the wire). */
  tradingDate: string;
  session: Session;
}

/** Tape whose prints a bar summarises: the consolidated tape or IEX only (sparser). */
export type Tape = "sip" | "iex";

/** An adjustment of prices for corporate actions. */
export type Adjustment = "raw" | "split" | "dividend" | "all";

/** Options of {@link createMarket}. */
export interface MarketOptions {
  seed?: number;
  /** Share of minutes without a bar per tape. Default sip 0.01, iex 0.25. */
  gapRate?: Partial<Record<Tape, number>>;
  /** Splits: bars before `date` are divided by `ratio` (volume multiplied) when split-adjusted. */
  splits?: Record<string, { date: string; ratio: number }>;
  /** Dividends: bars before `date` are multiplied by `factor` when dividend-adjusted. */
  dividends?: Record<string, { date: string; factor: number }>;
  /** Tickers the market does not know (their answers are empty). Default `["ZZZZ"]`. */
  unknown?: readonly string[];
}

/** The mocks' source of bars. */
export interface Market {
  known(symbol: string): boolean;
  /** 1m bars of one symbol and New York date (all sessions), adjusted; [] when closed/unknown. */
  minutes(symbol: string, date: string, tape: Tape, adjustment?: Adjustment): MockBar[];
  /** The regular-session daily bar of one symbol and date, stamped at New York midnight. */
  daily(symbol: string, date: string, tape: Tape, adjustment?: Adjustment): MockBar | undefined;
  /** `n`-minute bars of one date aligned to multiples of `n` minutes since the epoch (UTC). */
  buckets(
    symbol: string,
    date: string,
    tape: Tape,
    minutes: number,
    adjustment?: Adjustment,
  ): MockBar[];
}

/** A market over `generateFakeDay`, caching recent days. */
export function createMarket(options: MarketOptions = {}): Market {
  const seed = options.seed ?? 0;
  const gapRate = { sip: 0.01, iex: 0.25, ...options.gapRate };
  const unknown = new Set(options.unknown ?? ["ZZZZ"]);
  const cache = new Map<string, Bar[]>();

  const raw = (symbol: string, date: string, tape: Tape): Bar[] => {
    const key = `${symbol}|${date}|${tape}`;
    let bars = cache.get(key);
    if (bars === undefined) {
      bars = unknown.has(symbol) || !isTradingDay(date)
        ? []
        : generateFakeDay(symbol, date, { seed, gapRate: gapRate[tape], feed: tape });
      cache.set(key, bars);
      if (cache.size > 400) cache.delete(cache.keys().next().value!);
    }
    return bars;
  };

  const factorOf = (symbol: string, date: string, adjustment: Adjustment) => {
    let price = 1;
    let volume = 1;
    const split = options.splits?.[symbol];
    if (split && (adjustment === "split" || adjustment === "all") && date < split.date) {
      price /= split.ratio;
      volume *= split.ratio;
    }
    const dividend = options.dividends?.[symbol];
    if (dividend && (adjustment === "dividend" || adjustment === "all") && date < dividend.date) {
      price *= dividend.factor;
    }
    return { price, volume };
  };

  const toMock = (bar: Bar, factor: { price: number; volume: number }): MockBar => ({
    symbol: bar.symbol,
    ts: bar.ts,
    open: _round(bar.open * factor.price),
    high: _round(bar.high * factor.price),
    low: _round(bar.low * factor.price),
    close: _round(bar.close * factor.price),
    volume: Math.round(bar.volume * factor.volume),
    vwap: bar.vwap === null ? null : _round(bar.vwap * factor.price),
    tradeCount: bar.tradeCount,
    tradingDate: bar.tradingDate,
    session: bar.session,
  });

  return {
    known: (symbol) => !unknown.has(symbol),
    minutes(symbol, date, tape, adjustment = "raw") {
      const factor = factorOf(symbol, date, adjustment);
      return raw(symbol, date, tape).map((bar) => toMock(bar, factor));
    },
    daily(symbol, date, tape, adjustment = "raw") {
      const [bar] = aggregateBars(raw(symbol, date, tape), "1d");
      return bar && toMock(bar, factorOf(symbol, date, adjustment));
    },
    buckets(symbol, date, tape, minutes, adjustment = "raw") {
      return bucketBars(this.minutes(symbol, date, tape, adjustment), minutes * 60_000);
    },
  };
}

/** Roll 1m bars into buckets of `lengthMs` aligned to multiples of it since the epoch. */
export function bucketBars(bars: readonly MockBar[], lengthMs: number): MockBar[] {
  if (lengthMs === 60_000) return bars.slice();
  const out: MockBar[] = [];
  let current: MockBar | undefined;
  let priceVolume = 0;
  let vwapVolume = 0;
  const finish = () => {
    if (!current) return;
    current.vwap = vwapVolume > 0 ? Math.round((priceVolume / vwapVolume) * 10_000) / 10_000 : null;
    out.push(current);
  };
  for (const bar of bars) {
    const start = Math.floor(bar.ts / lengthMs) * lengthMs;
    if (current && current.ts === start && current.symbol === bar.symbol) {
      current.high = Math.max(current.high, bar.high);
      current.low = Math.min(current.low, bar.low);
      current.close = bar.close;
      current.volume += bar.volume;
      current.tradeCount = (current.tradeCount ?? 0) + (bar.tradeCount ?? 0);
    } else {
      finish();
      current = { ...bar, ts: start };
      priceVolume = 0;
      vwapVolume = 0;
    }
    if (bar.vwap !== null) {
      priceVolume += bar.vwap * bar.volume;
      vwapVolume += bar.volume;
    }
  }
  finish();
  return out;
}

/** New York dates from the one holding `from` to the one holding `to` (epoch ms), inclusive. */
export function datesBetween(from: number, to: number): string[] {
  const out: string[] = [];
  const last = exchangeDate(to);
  for (let date = exchangeDate(from); date <= last; date = addDays(date, 1)) out.push(date);
  return out;
}

/** New York midnight of `date` in epoch ms. */
export function nyMidnight(date: string): number {
  return zonedTime(date, "00:00");
}

/** A fixed-window request counter per key, with several windows (e.g. per minute and per second). */
export interface WindowLimiter {
  /** Count a request of `key` at `now`; `ok` false when a window is full (not counted then). */
  take(
    key: string,
    now: number,
  ): { ok: boolean; limit: number; remaining: number; resetAt: number };
}

/** Windows are aligned to multiples of their length since the epoch, like a real fixed window. */
export function createWindowLimiter(
  windows: readonly { limit: number; windowMs: number }[],
): WindowLimiter {
  const counts = new Map<string, { start: number; count: number }>();
  return {
    take(key, now) {
      let tightest = { limit: Infinity, remaining: Infinity, resetAt: now };
      let ok = true;
      const states = windows.map((window, i) => {
        const start = Math.floor(now / window.windowMs) * window.windowMs;
        const id = `${key}|${i}`;
        let state = counts.get(id);
        if (!state || state.start !== start) counts.set(id, state = { start, count: 0 });
        if (state.count >= window.limit) ok = false;
        return { window, state, start };
      });
      for (const { window, state, start } of states) {
        if (ok) state.count++;
        const remaining = Math.max(0, window.limit - state.count);
        if (remaining < tightest.remaining || (!ok && state.count >= window.limit)) {
          tightest = { limit: window.limit, remaining, resetAt: start + window.windowMs };
        }
      }
      return { ok, ...tightest };
    },
  };
}

function _round(price: number): number {
  return Math.round(price * 10_000) / 10_000;
}

/**
 * The `Bar`s a client should store for `served` bars: sorted by symbol then ts, with the
 * generator's own trading date and session (an independent check of the client's mapping).
 */
export function expectedBars(
  served: Iterable<MockBar>,
  meta: { provider: string; feed: string; adjustment: string; timeframe: Bar["timeframe"] },
): Bar[] {
  return [...served]
    .map((b) => ({
      symbol: b.symbol,
      timeframe: meta.timeframe,
      ts: meta.timeframe === "1d" ? nyMidnight(b.tradingDate) : b.ts,
      open: b.open,
      high: b.high,
      low: b.low,
      close: b.close,
      volume: b.volume,
      vwap: b.vwap,
      tradeCount: b.tradeCount,
      tradingDate: b.tradingDate,
      session: meta.timeframe === "1d" ? "regular" as const : b.session,
      provider: meta.provider,
      feed: meta.feed,
      adjustment: meta.adjustment,
    }))
    .sort((a, b) => a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.ts - b.ts);
}

/**
 * Assert two bar lists are equal, reporting the first difference (a deep diff of thousands of
 * bars would take minutes to print).
 */
export function assertSameBars(actual: readonly Bar[], expected: readonly Bar[]): void {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = JSON.stringify(actual[i]);
    const e = JSON.stringify(expected[i]);
    if (a !== e) {
      throw new Error(
        `Bars differ at #${i} of ${actual.length} (expected ${expected.length}):\n  actual   ${a}\n  expected ${e}`,
      );
    }
  }
}
