/**
 * The coverage calendar: per date, whether bars are stored in full, in part, not at all, or the
 * exchange was closed. Pure: stored bars per day in, days out.
 *
 * @module
 */
import { addDays, holidaysOf, isTradingDay, weekday } from "../core/calendar.ts";
import type { Timeframe } from "../core/types.ts";
import { type DayCount, expectedRegularBars, findGaps } from "../core/validate_gaps.ts";

/** What a date looks like in the coverage calendar. */
export type DayStatus =
  | "full"
  | "partial"
  | "empty"
  | "missing"
  | "holiday"
  | "weekend"
  | "future";

/** One date of the calendar. */
export interface CoverageDay {
  date: string;
  status: DayStatus;
  /** Bars stored for the day, all sessions (0 when none). */
  bars: number;
  /** Bars of the regular session stored for the day; what `status` compares with `expected`. */
  regular: number;
  /** Bars a complete regular session has in this timeframe (0 on closed days). */
  expected: number;
  /** Name of the holiday when the exchange was closed on a weekday. */
  holiday?: string;
  /** For an aggregated timeframe: the day's 1m bars, when any are stored. */
  base?: BaseCoverage;
}

/** Counts of days by status. */
export type CoverageSummary = Record<DayStatus, number>;

/**
 * Bars a complete regular session (09:30 to the close, early closes included) has in
 * `timeframe`; 1 for daily bars, 0 when the exchange is closed. The target `marketpipe gaps` uses.
 */
export const expectedBars: (date: string, timeframe: Timeframe) => number = expectedRegularBars;

/** Options of {@link coverageCalendar}. */
export interface CoverageCalendarOptions {
  timeframe: Timeframe;
  start: string;
  end: string;
  /** Exchange date of now; later trading days are `future`. */
  today: string;
  /** Trading days a provider answered with no bars (recorded by ingest). */
  knownEmpty?: ReadonlySet<string>;
  /** Smallest share of the regular session a `full` day has; default 0.9, as `marketpipe gaps`. */
  minCoverage?: number;
}

/**
 * The calendar of [start, end] from stored bars per day, classified as `marketpipe gaps` does
 * (same `findGaps`): `full`: the regular session covered to `minCoverage` (intraday) or a bar
 * (daily); `partial`: bars, but too little of the regular session (pre/post bars do not count);
 * `empty`: the provider answered with no bars; `missing`: a past trading day without bars;
 * `future`: after `today`.
 */
export function coverageCalendar(
  counts: readonly DayCount[],
  options: CoverageCalendarOptions,
): CoverageDay[] {
  const byDate = new Map(counts.map((count) => [count.date, count]));
  const gaps = findGaps("", options.start, options.end, counts, {
    timeframe: options.timeframe,
    minCoverage: options.minCoverage,
    knownEmpty: options.knownEmpty,
  });
  const low = new Set(gaps.lowCoverage.map((day) => day.date));
  const knownEmpty = new Set(gaps.knownEmpty);
  const holidays = new Map<string, string>();
  const lastYear = Number(options.end.slice(0, 4));
  for (let year = Number(options.start.slice(0, 4)); year <= lastYear; year++) {
    for (const holiday of holidaysOf(year)) holidays.set(holiday.date, holiday.name);
  }
  const days: CoverageDay[] = [];
  for (let date = options.start; date <= options.end; date = addDays(date, 1)) {
    const day = weekday(date);
    if (day === 0 || day === 6) {
      days.push({ date, status: "weekend", bars: 0, regular: 0, expected: 0 });
      continue;
    }
    if (!isTradingDay(date)) {
      days.push({
        date,
        status: "holiday",
        bars: 0,
        regular: 0,
        expected: 0,
        holiday: holidays.get(date),
      });
      continue;
    }
    const expected = expectedRegularBars(date, options.timeframe);
    const count = byDate.get(date);
    const bars = count?.bars ?? 0;
    let status: DayStatus;
    if (bars > 0) status = low.has(date) ? "partial" : "full";
    else if (knownEmpty.has(date)) status = "empty";
    else status = date > options.today ? "future" : "missing";
    days.push({ date, status, bars, regular: count?.regular ?? 0, expected });
  }
  return days;
}

/** How many days of each status a calendar has. */
export function summarizeCoverage(days: readonly CoverageDay[]): CoverageSummary {
  const summary: CoverageSummary = {
    full: 0,
    partial: 0,
    empty: 0,
    missing: 0,
    holiday: 0,
    weekend: 0,
    future: 0,
  };
  for (const day of days) summary[day.status]++;
  return summary;
}

/** What the 1m bars beneath an aggregated timeframe's day hold (see {@link judgeByMinutes}). */
export interface BaseCoverage {
  /** `full`, `partial`, `missing` or `empty` as the 1m calendar classifies the day. */
  status: DayStatus;
  /** Regular-session 1m bars stored for the day. */
  regular: number;
  /** Regular-session 1m bars a complete day has. */
  expected: number;
}

/**
 * An aggregated timeframe's calendar judged by the 1m bars it was built from: a day with bars is
 * no better than its 1m day (5m buckets exist as soon as one minute of each does, so a day
 * aggregated from 84% of its minutes would look complete). Days without 1m bars keep their own
 * status (bars fetched in that timeframe directly); each day with 1m bars records them in `base`.
 */
export function judgeByMinutes(
  days: readonly CoverageDay[],
  minutes: readonly CoverageDay[],
): CoverageDay[] {
  const byDate = new Map(minutes.map((day) => [day.date, day]));
  return days.map((day) => {
    const minute = byDate.get(day.date);
    if (minute === undefined || minute.bars === 0) return day;
    const base: BaseCoverage = {
      status: minute.status,
      regular: minute.regular,
      expected: minute.expected,
    };
    const status = day.status === "full" && minute.status === "partial" ? "partial" : day.status;
    return { ...day, status, base };
  });
}
