/**
 * The coverage calendar: per date, whether bars are stored in full, in part, not at all, or the
 * exchange was closed. Pure: recorded coverage in, days out.
 *
 * @module
 */
import { addDays, holidaysOf, isTradingDay, tradingSession, weekday } from "../core/calendar.ts";
import { type Timeframe, TIMEFRAME_MINUTES } from "../core/types.ts";

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
  /** Bars recorded for the day (0 when none or not ingested). */
  bars: number;
  /** Bars a complete regular session has in this timeframe (0 on closed days). */
  expected: number;
  /** Name of the holiday when the exchange was closed on a weekday. */
  holiday?: string;
}

/** Counts of days by status. */
export type CoverageSummary = Record<DayStatus, number>;

/**
 * Bars a complete regular session (09:30 to the close, early closes included) has in
 * `timeframe`; 1 for daily bars, 0 when the exchange is closed.
 */
export function expectedBars(date: string, timeframe: Timeframe): number {
  const session = tradingSession(date);
  if (!session) return 0;
  if (timeframe === "1d") return 1;
  return Math.ceil((session.close - session.open) / 60_000 / TIMEFRAME_MINUTES[timeframe]);
}

/**
 * The calendar of [start, end] from recorded day counts. `full`: at least half the bars of a
 * regular session (providers differ in extended hours; a sparse feed is still a stored day);
 * `partial`: some bars but fewer; `empty`: ingested, but the provider had no bars; `missing`: a
 * past trading day never ingested; `future`: after `today`.
 */
export function coverageCalendar(
  recorded: readonly { tradingDate: string; bars: number }[],
  options: { timeframe: Timeframe; start: string; end: string; today: string },
): CoverageDay[] {
  const bars = new Map(recorded.map((row) => [row.tradingDate, row.bars]));
  const holidays = new Map<string, string>();
  for (
    let year = Number(options.start.slice(0, 4));
    year <= Number(options.end.slice(0, 4));
    year++
  ) {
    for (const holiday of holidaysOf(year)) holidays.set(holiday.date, holiday.name);
  }
  const days: CoverageDay[] = [];
  for (let date = options.start; date <= options.end; date = addDays(date, 1)) {
    const day = weekday(date);
    if (day === 0 || day === 6) {
      days.push({ date, status: "weekend", bars: 0, expected: 0 });
      continue;
    }
    if (!isTradingDay(date)) {
      days.push({ date, status: "holiday", bars: 0, expected: 0, holiday: holidays.get(date) });
      continue;
    }
    const expected = expectedBars(date, options.timeframe);
    const count = bars.get(date);
    let status: DayStatus;
    if (count === undefined) status = date > options.today ? "future" : "missing";
    else if (count === 0) status = "empty";
    else status = count * 2 >= expected ? "full" : "partial";
    days.push({ date, status, bars: count ?? 0, expected });
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
