/** Bar timeframes MarketPipe stores and queries, shortest first. */
export const TIMEFRAMES = ["1m", "5m", "15m", "30m", "1h", "4h", "1d"] as const;

/** One of {@link TIMEFRAMES}. */
export type Timeframe = typeof TIMEFRAMES[number];

/** Whether `text` is one of {@link TIMEFRAMES}. */
export function isTimeframe(text: string): text is Timeframe {
  return (TIMEFRAMES as readonly string[]).includes(text);
}

/**
 * `value` as a {@link Timeframe}, for data MarketPipe wrote itself (database rows, paths); a
 * TypeError when it is not one. User input gets its own message with the flag or parameter.
 */
export function parseTimeframe(value: unknown): Timeframe {
  if (typeof value !== "string" || !isTimeframe(value)) {
    throw new TypeError(
      `Invalid timeframe ${JSON.stringify(value)}: expected one of ${TIMEFRAMES.join(" ")}`,
    );
  }
  return value;
}

/** Length of each intraday timeframe in minutes (1d is one trading session, not 1440 minutes). */
export const TIMEFRAME_MINUTES: Readonly<Record<Timeframe, number>> = {
  "1m": 1,
  "5m": 5,
  "15m": 15,
  "30m": 30,
  "1h": 60,
  "4h": 240,
  "1d": 1440,
};

/** Exchange session a bar belongs to: pre-market, regular trading hours or after-hours. */
export type Session = "pre" | "regular" | "post";

/**
 * One OHLCV bar as every provider delivers it after normalization.
 *
 * `ts` is the bar start as epoch milliseconds UTC; daily bars start at midnight New York time of
 * their trading date. `tradingDate` is the exchange-local date (`YYYY-MM-DD`).
 */
export interface Bar {
  symbol: string;
  timeframe: Timeframe;
  ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  vwap: number | null;
  tradeCount: number | null;
  tradingDate: string;
  session: Session;
  provider: string;
  feed: string;
  adjustment: string;
}
