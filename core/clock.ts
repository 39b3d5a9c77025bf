/**
 * Wall-clock time and the sessions it has closed: what may be fetched, stored or recorded as
 * complete is judged against a {@link Clock}, in New York time.
 *
 * @module
 */

import {
  CALENDAR_YEARS,
  exchangeDate,
  previousTradingDay,
  tradingDays,
  tradingSession,
} from "./calendar.ts";
import { UsageError } from "./errors.ts";
import type { Timeframe } from "./types.ts";

/** Current time as epoch milliseconds UTC. */
export type Clock = () => number;

/** The real clock of the machine. */
export const systemClock: Clock = () => Date.now();

/** Environment variable that fixes the clock, for tests only: ISO 8601 instant or epoch ms. */
export const NOW_ENV = "MARKETPIPE_NOW";

/** Options of {@link isSessionClosed} and {@link lastCompletedSession}. */
export interface SessionCloseOptions {
  /**
   * Whether pre-market and after-hours count, so the session ends at 20:00 ET (17:00 on early
   * closes) instead of the regular close; default false.
   */
  extendedHours?: boolean;
}

/** Whether bars of `timeframe` include pre-market and after-hours: intraday ones do, 1d not. */
export function includesExtendedHours(timeframe: Timeframe): boolean {
  return timeframe !== "1d";
}

/** Whether `date` is a trading day whose session has closed at `nowMs` (false on closed days). */
export function isSessionClosed(
  date: string,
  nowMs: number,
  options: SessionCloseOptions = {},
): boolean {
  const session = tradingSession(date);
  if (session === undefined) return false;
  return nowMs >= (options.extendedHours ? session.postClose : session.close);
}

/**
 * Last trading date (`YYYY-MM-DD`, New York) whose session has closed at `nowMs`, or `undefined`
 * before the calendar's first session closed.
 *
 * @example
 * ```ts
 * const halfDay = Date.parse("2024-11-29T18:30:00Z"); // 13:30 ET, after the 13:00 early close
 * lastCompletedSession(halfDay); // "2024-11-29"
 * lastCompletedSession(halfDay, { extendedHours: true }); // "2024-11-27"
 * ```
 */
export function lastCompletedSession(
  nowMs: number,
  options: SessionCloseOptions = {},
): string | undefined {
  if (!Number.isFinite(nowMs)) {
    throw new TypeError(`Invalid time ${nowMs}: expected epoch milliseconds`);
  }
  const [first, last] = _calendarEnds();
  if (!isSessionClosed(first, nowMs, options)) return undefined;
  if (isSessionClosed(last, nowMs, options)) return last;
  const today = exchangeDate(nowMs);
  if (isSessionClosed(today, nowMs, options)) return today;
  // Every earlier session ended by 20:00 ET of its own day, so it has closed.
  return previousTradingDay(today);
}

function _calendarEnds(): [string, string] {
  const { first, last } = CALENDAR_YEARS;
  return [
    tradingDays(`${first}-01-01`, `${first}-01-31`)[0],
    tradingDays(`${last}-12-01`, `${last}-12-31`).at(-1)!,
  ];
}

/**
 * Clock fixed at the instant `text` (ISO 8601 with a zone, or epoch milliseconds); `name` is the
 * source named in the error. Throws a `UsageError` for anything else.
 */
export function fixedClock(text: string, name: string = NOW_ENV): Clock {
  const trimmed = text.trim();
  const ms = /^\d+$/.test(trimmed)
    ? Number(trimmed)
    : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(trimmed)
    ? Date.parse(trimmed)
    : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected an ISO 8601 instant like 2026-12-01T16:00:00Z ` +
        "or epoch milliseconds",
    );
  }
  return () => ms;
}

/**
 * The clock commands use: {@link fixedClock} of `MARKETPIPE_NOW` when set (for tests), else
 * {@link systemClock}. The one place that reads the variable.
 */
export function clockFromEnv(env: Record<string, string | undefined>): Clock {
  const text = env[NOW_ENV];
  return text === undefined || text === "" ? systemClock : fixedClock(text);
}
