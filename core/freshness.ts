/**
 * Freshness of stored series: a series is stale when its last stored trading date is before the
 * last session that should be stored by now (the regular close for 1d bars, 20:00 New York for
 * intraday ones, early closes included), judged from the NYSE calendar.
 *
 * @module
 */
import { nextTradingDay, tradingDays, tradingSession } from "./calendar.ts";
import { includesExtendedHours, lastCompletedSession } from "./clock.ts";
import type { Timeframe } from "./types.ts";

/** A stored series as freshness needs it. */
export interface StoredSeriesDates {
  symbol: string;
  timeframe: Timeframe;
  /** Last trading date stored (`YYYY-MM-DD`). */
  last: string;
  /** Where its newest bars came from, e.g. `alpaca/iex/raw`. */
  source?: string;
}

/** How fresh one series is at a given instant. */
export interface SeriesFreshness extends StoredSeriesDates {
  /** The last session that should be stored by now (after the grace), if any closed yet. */
  expected: string | undefined;
  stale: boolean;
  /** Sessions after `last` up to `expected`; 0 when fresh. */
  missedSessions: number;
  /** When it went stale: the end of the first session after `last` (epoch ms), or null. */
  staleSince: number | null;
}

/** Options of {@link judgeFreshness}. */
export interface FreshnessOptions {
  /**
   * How long after a session's end its bars may still be missing before the series counts as
   * stale (time for the scheduled update to run); default 0.
   */
  graceMs?: number;
}

/**
 * Judge each series at `now` (epoch ms): stale when a session after its last stored date has
 * ended more than `graceMs` ago. Several sources of one symbol and timeframe count as one
 * series, the newest.
 *
 * @example
 * ```ts
 * judgeFreshness([{ symbol: "AAPL", timeframe: "1d", last: "2024-07-02" }], Date.parse("2024-07-05T21:00:00Z"));
 * // [{ ..., expected: "2024-07-05", stale: true, missedSessions: 2, staleSince: <2024-07-03 13:00 ET> }]
 * ```
 */
export function judgeFreshness(
  series: readonly StoredSeriesDates[],
  now: number,
  options: FreshnessOptions = {},
): SeriesFreshness[] {
  const newest = new Map<string, StoredSeriesDates>();
  for (const s of series) {
    const key = `${s.symbol}\u0000${s.timeframe}`;
    const seen = newest.get(key);
    if (seen === undefined || s.last > seen.last) newest.set(key, s);
  }
  const judged: SeriesFreshness[] = [];
  for (const s of newest.values()) {
    const extendedHours = includesExtendedHours(s.timeframe);
    const expected = lastCompletedSession(now - (options.graceMs ?? 0), { extendedHours });
    if (expected === undefined || s.last >= expected) {
      judged.push({ ...s, expected, stale: false, missedSessions: 0, staleSince: null });
      continue;
    }
    const first = nextTradingDay(s.last);
    const session = tradingSession(first)!;
    judged.push({
      ...s,
      expected,
      stale: true,
      missedSessions: tradingDays(first, expected).length,
      staleSince: extendedHours ? session.postClose : session.close,
    });
  }
  return judged.sort((a, b) =>
    a.symbol.localeCompare(b.symbol) || a.timeframe.localeCompare(b.timeframe)
  );
}
