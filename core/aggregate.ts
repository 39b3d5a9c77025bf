import { tradingSession, zonedTime } from "./calendar.ts";
import { type Bar, type Session, type Timeframe, TIMEFRAME_MINUTES, TIMEFRAMES } from "./types.ts";

/** Options of {@link aggregateBars}. */
export interface AggregateOptions {
  /**
   * Which sessions a daily bar covers: `"regular"` (default, 09:30-16:00 ET) or `"extended"`
   * (04:00-20:00 ET). Intraday timeframes always keep every session, one bucket per session.
   */
  session?: "regular" | "extended";
}

/** Epoch-ms boundaries of one trading date, computed once per date and reused for all its bars. */
interface _DayTimes {
  preOpen: number;
  open: number;
  close: number;
  midnight: number;
}

const _MINUTE_MS = 60_000;

/**
 * Start (epoch ms UTC) of the `timeframe` bucket holding a bar that starts at `ts` in `session` of
 * `tradingDate`.
 *
 * Alignment: intraday buckets are counted from the regular open, 09:30 New York time, of the
 * trading date, in exchange time, so a 1h bucket is 09:30-10:30 in winter and summer alike, and
 * cut at session boundaries: a bucket never spans pre-market, regular hours and after-hours, and
 * one that would start before its session begins is labelled with the session start (the first
 * pre-market 1h bucket is 04:00-04:30, the next 04:30-05:30; after-hours 1h buckets are
 * 16:00-16:30, 16:30-17:30, ...). The last regular bucket ends at the close (15:30-16:00 for 1h,
 * 13:30-16:00 for 4h, at 13:00 on early-close days). Daily buckets start at midnight New York time
 * of the trading date.
 */
export function bucketStart(
  ts: number,
  timeframe: Timeframe,
  session: Session,
  tradingDate: string,
): number {
  _checkTimeframe(timeframe);
  const day = _dayTimes(tradingDate);
  if (timeframe === "1d") return day.midnight;
  return _intradayStart(ts, TIMEFRAME_MINUTES[timeframe] * _MINUTE_MS, session, day);
}

/**
 * Rolls bars (normally 1m; any mix of symbols, any order) up to `timeframe`, aligned as described
 * at {@link bucketStart}: open first, high max, low min, close last, volume and trade count summed,
 * vwap the volume-weighted mean of the input vwaps. Returns new bars sorted by symbol then `ts`.
 *
 * @example
 * ```ts
 * const hourly = aggregateBars(minuteBars, "1h");
 * const daily = aggregateBars(minuteBars, "1d", { session: "extended" });
 * ```
 */
export function aggregateBars(
  bars: readonly Bar[],
  timeframe: Timeframe,
  options: AggregateOptions = {},
): Bar[] {
  _checkTimeframe(timeframe);
  const sessionOption = options.session ?? "regular";
  if (sessionOption !== "regular" && sessionOption !== "extended") {
    throw new RangeError(
      `Cannot aggregate bars with session "${sessionOption}": expected "regular" or "extended"`,
    );
  }
  const daily = timeframe === "1d";
  const regularOnly = daily && sessionOption === "regular";
  const targetMinutes = TIMEFRAME_MINUTES[timeframe];
  const length = targetMinutes * _MINUTE_MS;
  const sorted = _isSorted(bars) ? bars : bars.slice().sort(_compareBars);

  // Dates repeat across symbols, so cache their session times; bars of one date arrive together,
  // so the last lookup is checked first.
  const days = new Map<string, _DayTimes>();
  let dayDate = "";
  let day: _DayTimes | undefined;

  const out: Bar[] = [];
  let current: Bar | undefined;
  let currentSession = ""; // the bucket's input session; "" for daily buckets, which span sessions
  let priceVolume = 0; // sum of vwap * volume over the bars that have a vwap
  let vwapVolume = 0; // sum of volume over the bars that have a vwap

  for (let i = 0; i < sorted.length; i++) {
    const bar = sorted[i];
    if (bar.timeframe !== "1m" && !(TIMEFRAME_MINUTES[bar.timeframe] <= targetMinutes)) {
      throw new RangeError(
        `Cannot aggregate ${bar.timeframe} bars of "${bar.symbol}" to ${timeframe}: expected bars of ${timeframe} or shorter`,
      );
    }
    if (regularOnly && bar.session !== "regular") continue;
    if (bar.tradingDate !== dayDate) {
      dayDate = bar.tradingDate;
      day = days.get(dayDate);
      if (day === undefined) {
        day = _dayTimes(dayDate);
        days.set(dayDate, day);
      }
    }
    const start = daily ? day!.midnight : _intradayStart(bar.ts, length, bar.session, day!);
    const session = daily ? "" : bar.session;

    if (
      current !== undefined && current.ts === start && currentSession === session &&
      current.symbol === bar.symbol
    ) {
      if (bar.high > current.high) current.high = bar.high;
      if (bar.low < current.low) current.low = bar.low;
      current.close = bar.close;
      current.volume += bar.volume;
      if (bar.tradeCount !== null) current.tradeCount = (current.tradeCount ?? 0) + bar.tradeCount;
      if (bar.vwap !== null) {
        priceVolume += bar.vwap * bar.volume;
        vwapVolume += bar.volume;
      }
      current.provider = bar.provider;
      current.feed = bar.feed;
      current.adjustment = bar.adjustment;
      continue;
    }

    if (current !== undefined) out.push(_finish(current, priceVolume, vwapVolume));
    current = {
      symbol: bar.symbol,
      timeframe,
      ts: start,
      open: bar.open,
      high: bar.high,
      low: bar.low,
      close: bar.close,
      volume: bar.volume,
      vwap: null,
      tradeCount: bar.tradeCount,
      tradingDate: bar.tradingDate,
      session: daily ? "regular" : bar.session,
      provider: bar.provider,
      feed: bar.feed,
      adjustment: bar.adjustment,
    };
    currentSession = session;
    priceVolume = bar.vwap === null ? 0 : bar.vwap * bar.volume;
    vwapVolume = bar.vwap === null ? 0 : bar.volume;
  }
  if (current !== undefined) out.push(_finish(current, priceVolume, vwapVolume));

  // Only input whose session labels contradict its timestamps can produce buckets out of order.
  return _isSorted(out) ? out : out.sort(_compareBars);
}

/** Relative excess of an aggregated vwap over [low, high] treated as floating-point drift. */
export const VWAP_DRIFT = 1e-9;

function _finish(bar: Bar, priceVolume: number, vwapVolume: number): Bar {
  if (vwapVolume > 0) {
    // The volume-weighted mean, as is. A mean of vwaps inside [low, high] can leave the range by
    // floating-point drift only, which is clamped so validation never flags it; an input vwap
    // outside its own bar's range is kept (and flagged), never hidden by moving the mean.
    const vwap = priceVolume / vwapVolume;
    const drift = VWAP_DRIFT * Math.abs(vwap);
    bar.vwap = vwap < bar.low && bar.low - vwap <= drift
      ? bar.low
      : vwap > bar.high && vwap - bar.high <= drift
      ? bar.high
      : vwap;
  }
  return bar;
}

function _intradayStart(ts: number, length: number, session: Session, day: _DayTimes): number {
  const start = day.open + Math.floor((ts - day.open) / length) * length;
  const segmentStart = session === "regular"
    ? day.open
    : session === "pre"
    ? day.preOpen
    : day.close;
  return start < segmentStart ? segmentStart : start;
}

function _dayTimes(date: string): _DayTimes {
  const session = tradingSession(date);
  // Bars dated on a closed day (an ad-hoc closure the data knows better than the calendar) get the
  // standard hours: aggregation rolls up what it is given, validation is where such bars are flagged.
  return {
    preOpen: session?.preOpen ?? zonedTime(date, "04:00"),
    open: session?.open ?? zonedTime(date, "09:30"),
    close: session?.close ?? zonedTime(date, "16:00"),
    midnight: zonedTime(date, "00:00"),
  };
}

function _checkTimeframe(timeframe: Timeframe): void {
  if (!TIMEFRAMES.includes(timeframe)) {
    throw new RangeError(
      `Cannot aggregate to timeframe "${timeframe}": expected one of ${TIMEFRAMES.join(", ")}`,
    );
  }
}

function _compareBars(a: Bar, b: Bar): number {
  if (a.symbol !== b.symbol) return a.symbol < b.symbol ? -1 : 1;
  return a.ts - b.ts;
}

function _isSorted(bars: readonly Bar[]): boolean {
  for (let i = 1; i < bars.length; i++) {
    const a = bars[i - 1];
    const b = bars[i];
    if (a.symbol === b.symbol ? a.ts > b.ts : a.symbol > b.symbol) return false;
  }
  return true;
}
