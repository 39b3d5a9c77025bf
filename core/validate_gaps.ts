/**
 * Gap detection: which trading days of a range have no bars at all, and which have too little of
 * their regular session, given the bars per day that storage counted. Pure.
 *
 * @module
 */
import { nextTradingDay, tradingDays, tradingSession } from "./calendar.ts";
import { type Timeframe, TIMEFRAME_MINUTES } from "./types.ts";

/** Stored bars of one trading date: all of them and those of the regular session. */
export interface DayCount {
  date: string;
  bars: number;
  regular: number;
}

/** A trading day whose regular session is covered below the threshold. */
export interface LowCoverageDay {
  date: string;
  regularBars: number;
  expected: number;
  /** `regularBars / expected`, 0-1. */
  coverage: number;
}

/** Gaps of one symbol over a date range. */
export interface SymbolGaps {
  symbol: string;
  /** NYSE trading days in the range. */
  tradingDays: number;
  /** Trading days with at least one bar. */
  daysWithData: number;
  /** Trading days with no bar that no provider reported as empty. */
  missing: string[];
  /** Trading days with no bar because the provider answered with none (from ingest). */
  knownEmpty: string[];
  /** Intraday only: trading days whose regular session coverage is below the threshold. */
  lowCoverage: LowCoverageDay[];
}

/** Options of {@link findGaps}. */
export interface FindGapsOptions {
  timeframe: Timeframe;
  /** Smallest acceptable share of the regular session's bars, 0-1; default 0.9. */
  minCoverage?: number;
  /** Days the provider answered with no bars. */
  knownEmpty?: ReadonlySet<string>;
}

/**
 * Compare a symbol's bars per day with the NYSE calendar over [start, end].
 *
 * @example
 * ```ts
 * const gaps = findGaps("AAPL", "2024-03-01", "2024-03-28", counts, { timeframe: "1m" });
 * console.log(gaps.missing, gaps.lowCoverage.map((d) => d.date));
 * ```
 */
export function findGaps(
  symbol: string,
  start: string,
  end: string,
  counts: readonly DayCount[],
  options: FindGapsOptions,
): SymbolGaps {
  const minCoverage = options.minCoverage ?? 0.9;
  if (!(minCoverage >= 0 && minCoverage <= 1)) {
    throw new RangeError(`Invalid minimum coverage ${minCoverage}: expected a number from 0 to 1`);
  }
  const byDate = new Map(counts.map((c) => [c.date, c]));
  const days = tradingDays(start, end);
  const gaps: SymbolGaps = {
    symbol,
    tradingDays: days.length,
    daysWithData: 0,
    missing: [],
    knownEmpty: [],
    lowCoverage: [],
  };
  for (const date of days) {
    const count = byDate.get(date);
    if (count === undefined || count.bars === 0) {
      if (options.knownEmpty?.has(date)) gaps.knownEmpty.push(date);
      else gaps.missing.push(date);
      continue;
    }
    gaps.daysWithData++;
    if (options.timeframe === "1d") continue;
    const expected = expectedRegularBars(date, options.timeframe);
    const coverage = Math.min(1, count.regular / expected);
    if (coverage < minCoverage) {
      gaps.lowCoverage.push({ date, regularBars: count.regular, expected, coverage });
    }
  }
  return gaps;
}

/**
 * Bars of `timeframe` a complete regular session of `date` has: 390 one-minute bars, 210 on an
 * early-close day, 7 hourly buckets (09:30 ... 15:30), 1 daily bar; 0 when the exchange is closed.
 */
export function expectedRegularBars(date: string, timeframe: Timeframe): number {
  const session = tradingSession(date);
  if (session === undefined) return 0;
  if (timeframe === "1d") return 1;
  return Math.ceil((session.close - session.open) / (TIMEFRAME_MINUTES[timeframe] * 60_000));
}

/** Trading dates written as runs of consecutive trading days: `["2024-03-04..2024-03-08", ...]`. */
export function tradingDayRuns(dates: readonly string[]): string[] {
  return tradingDayRanges(dates).map(([first, last]) =>
    first === last ? first : `${first}..${last}`
  );
}

/** Sorted trading `dates` as [first, last] runs of consecutive trading days. */
export function tradingDayRanges(dates: readonly string[]): [string, string][] {
  const runs: [string, string][] = [];
  for (const date of dates) {
    const last = runs.at(-1);
    if (last && nextTradingDay(last[1]) === date) last[1] = date;
    else runs.push([date, date]);
  }
  return runs;
}
