/**
 * Mapping provider rows to `Bar`, shared by the HTTP providers: session and trading date from
 * the NYSE calendar, bar start in UTC, daily bars at New York midnight, bars outside the
 * requested dates dropped, duplicates collapsed, longer timeframes rolled up from 30m bars.
 *
 * @module
 */
import { aggregateBars } from "../core/aggregate.ts";
import {
  addDays,
  exchangeDate,
  isTradingDay,
  type TradingSession,
  tradingSession,
  zonedTime,
} from "../core/calendar.ts";
import type { FetchRequest } from "../core/provider.ts";
import type { Bar, Session, Timeframe } from "../core/types.ts";

/** A timeframe the HTTP providers are asked for: every one but the rolled-up 1h and 4h. */
export type SourceTimeframe = Exclude<Timeframe, "1h" | "4h">;

/**
 * The timeframe to ask a provider for. Providers align hour bars to clock hours (09:00-10:00
 * mixes pre-market and regular trading), while MarketPipe anchors them at the 09:30 open, so 1h
 * and 4h are rolled up from 30m bars, whose edges fall on every session boundary.
 */
export function sourceTimeframe(timeframe: Timeframe): SourceTimeframe {
  return timeframe === "1h" || timeframe === "4h" ? "30m" : timeframe;
}

/** Epoch ms of New York midnight starting `start` and ending `end` (exclusive end). */
export function requestWindow(start: string, end: string): { from: number; to: number } {
  return { from: zonedTime(start, "00:00"), to: zonedTime(addDays(end, 1), "00:00") };
}

/** Where normalized bars come from and which dates to keep. */
export interface BarContext {
  provider: string;
  feed: string;
  adjustment: string;
  /** Timeframe of the rows being added (see {@link sourceTimeframe}). */
  timeframe: Timeframe;
  /** First and last trading dates to keep, inclusive. */
  start: string;
  end: string;
}

/** One provider row, already in numbers. */
export interface RawBar {
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  vwap?: number | null;
  tradeCount?: number | null;
}

/** Collects normalized bars; see {@link createBarCollector}. */
export interface BarCollector {
  /**
   * Add a row starting at `ts` (epoch ms). Intraday rows outside the sessions of a trading day
   * and rows outside the requested dates are dropped. Throws `TypeError` for non-numeric fields.
   */
  add(symbol: string, ts: number, raw: RawBar): void;
  /** Add a daily row of trading date `date` (`YYYY-MM-DD`). */
  addDaily(symbol: string, date: string, raw: RawBar): void;
  /** Rows dropped as outside the requested dates or the sessions. */
  readonly dropped: number;
  /** Rows added so far (before duplicates are collapsed). */
  readonly count: number;
  /** The bars in `timeframe`, sorted by symbol then ts, without duplicates (last one wins). */
  finish(timeframe: Timeframe): Bar[];
}

/** A collector of bars for one request. */
export function createBarCollector(context: BarContext): BarCollector {
  const { provider, feed, adjustment, timeframe, start, end } = context;
  const bars: Bar[] = [];
  let dropped = 0;
  let day: TradingSession | undefined;

  const push = (
    symbol: string,
    ts: number,
    tradingDate: string,
    session: Session,
    raw: RawBar,
  ) => {
    _checkRaw(symbol, ts, raw);
    bars.push({
      symbol,
      timeframe,
      ts,
      open: raw.open,
      high: raw.high,
      low: raw.low,
      close: raw.close,
      volume: raw.volume,
      vwap: raw.vwap ?? null,
      tradeCount: raw.tradeCount ?? null,
      tradingDate,
      session,
      provider,
      feed,
      adjustment,
    });
  };

  const addDaily = (symbol: string, date: string, raw: RawBar) => {
    if (date < start || date > end || !isTradingDay(date)) {
      dropped++;
      return;
    }
    push(symbol, zonedTime(date, "00:00"), date, "regular", raw);
  };

  return {
    add(symbol, ts, raw) {
      if (!Number.isFinite(ts)) {
        throw new TypeError(`bar of "${symbol}" has an invalid time ${ts}`);
      }
      if (timeframe === "1d") {
        // Daily rows are stamped at New York midnight (Alpaca, Polygon) or UTC midnight
        // (Finnhub, Tiingo): both fall on the UTC date of the trading day.
        addDaily(symbol, new Date(ts).toISOString().slice(0, 10), raw);
        return;
      }
      if (!(day && ts >= day.preOpen && ts < day.postClose)) {
        day = tradingSession(exchangeDate(ts));
        if (!day || ts < day.preOpen || ts >= day.postClose) {
          dropped++;
          return;
        }
      }
      if (day.date < start || day.date > end) {
        dropped++;
        return;
      }
      const session: Session = ts < day.open ? "pre" : ts < day.close ? "regular" : "post";
      push(symbol, ts, day.date, session, raw);
    },
    addDaily,
    get dropped() {
      return dropped;
    },
    get count() {
      return bars.length;
    },
    finish(target) {
      const unique = sortUniqueBars(bars);
      return target === timeframe ? unique : aggregateBars(unique, target);
    },
  };
}

/** `bars` sorted by symbol then ts with duplicate keys collapsed, the last one winning. */
export function sortUniqueBars(bars: Bar[]): Bar[] {
  let sorted = true;
  for (let i = 1; i < bars.length; i++) {
    const a = bars[i - 1];
    const b = bars[i];
    if (a.symbol > b.symbol || (a.symbol === b.symbol && a.ts > b.ts)) {
      sorted = false;
      break;
    }
  }
  // A stable sort keeps later duplicates after earlier ones, so "last wins" still holds.
  const list = sorted
    ? bars
    : bars.slice().sort((a, b) => a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.ts - b.ts);
  const out: Bar[] = [];
  for (const bar of list) {
    const last = out[out.length - 1];
    if (last && last.symbol === bar.symbol && last.ts === bar.ts) out[out.length - 1] = bar;
    else out.push(bar);
  }
  return out;
}

/** Check a provider-level request before any HTTP: timeframe, feed and adjustment served. */
export function checkRequest(
  request: FetchRequest,
  info: {
    name: string;
    timeframes: readonly string[];
    feeds: readonly string[];
    adjustments: readonly string[];
  },
): { feed: string; adjustment: string } {
  const feed = request.feed ?? info.feeds[0];
  const adjustment = request.adjustment ?? info.adjustments[0];
  const served = [
    ["timeframe", request.timeframe, info.timeframes],
    ["feed", feed, info.feeds],
    ["adjustment", adjustment, info.adjustments],
  ] as const;
  for (const [what, value, allowed] of served) {
    if (!allowed.includes(value)) {
      throw new RangeError(
        `Invalid ${what} "${value}" for "${info.name}": expected one of ${allowed.join(", ")}`,
      );
    }
  }
  if (request.start > request.end) {
    throw new RangeError(
      `Invalid date range ${request.start}..${request.end}: start is after end`,
    );
  }
  return { feed, adjustment };
}

/** A finite number or a `TypeError` naming the field. */
export function numberField(row: Record<string, unknown>, key: string, what: string): number {
  const value = row[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(`${what}: field "${key}" is ${JSON.stringify(value)}, expected a number`);
  }
  return value;
}

/** A finite number, or null when the field is absent or null; `TypeError` otherwise. */
export function optionalNumberField(
  row: Record<string, unknown>,
  key: string,
  what: string,
): number | null {
  const value = row[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(`${what}: field "${key}" is ${JSON.stringify(value)}, expected a number`);
  }
  return value;
}

/** The row's `o h l c v` numbers and optional `vw n` (Alpaca's and Polygon's bar fields). */
export function ohlcvFields(row: Record<string, unknown>, what: string): RawBar {
  return {
    open: numberField(row, "o", what),
    high: numberField(row, "h", what),
    low: numberField(row, "l", what),
    close: numberField(row, "c", what),
    volume: numberField(row, "v", what),
    vwap: optionalNumberField(row, "vw", what),
    tradeCount: optionalNumberField(row, "n", what),
  };
}

/** Whether `value` is a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What a JSON value is, for messages: `null`, `an array`, or its `typeof`. */
export function jsonKind(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

/**
 * Epoch ms of an RFC 3339 instant (`2024-03-04T14:30:00Z`, fractional seconds of any length,
 * `+hh:mm` offsets), or NaN.
 */
export function parseRfc3339(text: string): number {
  const match = _RFC3339.exec(text);
  if (match === null) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction, zone] = match;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (fraction !== undefined) ms += Math.floor(Number(`0.${fraction}`) * 1000);
  if (zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    ms -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
  }
  return ms;
}

const _RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$/;

function _checkRaw(symbol: string, ts: number, raw: RawBar): void {
  for (const key of ["open", "high", "low", "close", "volume"] as const) {
    if (typeof raw[key] !== "number" || !Number.isFinite(raw[key])) {
      throw new TypeError(
        `bar of "${symbol}" at ${new Date(ts).toISOString()} has ${key} ${
          JSON.stringify(raw[key])
        }, expected a number`,
      );
    }
  }
}
