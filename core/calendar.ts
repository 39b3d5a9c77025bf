/**
 * NYSE trading calendar computed from the exchange rules for the years 1990-2100: full-day
 * holidays, ad hoc closures, early closes and session instants in New York time.
 *
 * The rules follow NYSE Rule 7.2 and, for the history since 1990, the XNYS calendar of
 * exchange_calendars. Everything is pure and cached: per year for the closed and early-close
 * days and the time-zone transitions, per date for sessions.
 *
 * @module
 */

import type { Session } from "./types.ts";

/** IANA time zone in which the NYSE keeps its hours. */
export const EXCHANGE_TIME_ZONE = "America/New_York";

/** First and last year the calendar is computed for; other years throw a `RangeError`. */
export const CALENDAR_YEARS: { readonly first: number; readonly last: number } = Object.freeze({
  first: 1990,
  last: 2100,
});

/** A full-day closure: a regular holiday as observed, or an ad hoc closure. */
export interface Holiday {
  /** Closed date as `YYYY-MM-DD`. */
  date: string;
  /** Holiday name; a weekend holiday moved to a weekday ends with "(observed)". */
  name: string;
}

/** Session instants of one trading day, as epoch milliseconds UTC. */
export interface TradingSession {
  /** Trading date as `YYYY-MM-DD`. */
  date: string;
  /** Start of the pre-market session, 04:00 New York time. */
  preOpen: number;
  /** Opening bell, 09:30 New York time. */
  open: number;
  /** Closing bell, 16:00 New York time; 13:00 on early-close days (14:00 before 1993). */
  close: number;
  /** End of the after-hours session, 20:00 New York time; 17:00 on early-close days. */
  postClose: number;
  /** Whether the regular session ends early. */
  earlyClose: boolean;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

// Ad hoc full-day closures since 1990 (exchange_calendars XNYS adhoc_holidays).
const SPECIAL_CLOSURES: ReadonlyArray<Holiday> = [
  { date: "1994-04-27", name: "National Day of Mourning for President Richard Nixon" },
  { date: "2001-09-11", name: "September 11 attacks" },
  { date: "2001-09-12", name: "September 11 attacks" },
  { date: "2001-09-13", name: "September 11 attacks" },
  { date: "2001-09-14", name: "September 11 attacks" },
  { date: "2004-06-11", name: "National Day of Mourning for President Ronald Reagan" },
  { date: "2007-01-02", name: "National Day of Mourning for President Gerald Ford" },
  { date: "2012-10-29", name: "Hurricane Sandy" },
  { date: "2012-10-30", name: "Hurricane Sandy" },
  { date: "2018-12-05", name: "National Day of Mourning for President George H. W. Bush" },
  { date: "2025-01-09", name: "National Day of Mourning for President Jimmy Carter" },
];

// Ad hoc 13:00 closes that no rule produces: two days after Christmas and the eve of 2000.
const SPECIAL_EARLY_CLOSES: ReadonlyArray<string> = ["1997-12-26", "1999-12-31", "2003-12-26"];

interface _YearCalendar {
  holidays: Holiday[];
  closed: Set<string>;
  earlyCloses: Set<string>;
  earlyCloseTime: string;
}

interface _Zone {
  standard: number;
  daylight: number;
  daylightStart: number;
  daylightEnd: number;
}

const _years = new Map<number, _YearCalendar>();
const _zones = new Map<number, _Zone>();
const _sessions = new Map<string, TradingSession | null>();
const _exchangeDates = new Map<number, string>();

/** Whether `date` is a real calendar date written strictly as `YYYY-MM-DD`. */
export function isValidDate(date: string): boolean {
  return _parse(date) !== undefined;
}

/** Full-day closures of `year` (observed holidays and ad hoc closures), sorted by date. */
export function holidaysOf(year: number): Holiday[] {
  _checkYear(year, year);
  return _calendarOf(year).holidays.map((holiday) => ({ ...holiday }));
}

/** Early-close dates of `year`, sorted (13:00 close; 14:00 before 1993). */
export function earlyClosesOf(year: number): string[] {
  _checkYear(year, year);
  return [..._calendarOf(year).earlyCloses];
}

/** Whether the NYSE holds a regular session on `date`. */
export function isTradingDay(date: string): boolean {
  const [year] = _parseInRange(date);
  return _isOpen(date, _dayNumber(date), year);
}

/** Session instants of `date`, or `undefined` when the exchange is closed that day. */
export function tradingSession(date: string): TradingSession | undefined {
  let session = _sessions.get(date);
  if (session === undefined) {
    session = _buildSession(date);
    _sessions.set(date, session);
  }
  return session ?? undefined;
}

/** Trading dates from `start` to `end`, both inclusive, ascending. */
export function tradingDays(start: string, end: string): string[] {
  _parseInRange(start);
  _parseInRange(end);
  if (start > end) {
    throw new RangeError(`Cannot list trading days from ${start} to ${end}: start is after end`);
  }
  const days: string[] = [];
  for (let n = _dayNumber(start), last = _dayNumber(end); n <= last; n++) {
    const date = _formatDay(n);
    if (_isOpen(date, n, Number(date.slice(0, 4)))) days.push(date);
  }
  return days;
}

/** First trading date after `date`. */
export function nextTradingDay(date: string): string {
  return _stepTradingDay(date, 1);
}

/** Last trading date before `date`. */
export function previousTradingDay(date: string): string {
  return _stepTradingDay(date, -1);
}

/** Calendar date `n` days after `date` (negative `n` goes back), ignoring trading days. */
export function addDays(date: string, n: number): string {
  _parseOrThrow(date);
  if (!Number.isInteger(n)) {
    throw new RangeError(`Cannot add ${n} days to ${date}: expected an integer`);
  }
  const result = _formatDay(_dayNumber(date) + n);
  if (!isValidDate(result)) {
    throw new RangeError(`Cannot add ${n} days to ${date}: result is outside years 0000-9999`);
  }
  return result;
}

/** Day of the week of `date`, 0 = Sunday to 6 = Saturday. */
export function weekday(date: string): number {
  _parseOrThrow(date);
  return _weekdayOf(_dayNumber(date));
}

/** Epoch milliseconds of the New York wall-clock time `hhmm` (`HH:MM`) on `date`. */
export function zonedTime(date: string, hhmm: string): number {
  const [year] = _parseInRange(date);
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  if (match === null) throw new TypeError(`Invalid time "${hhmm}": expected HH:MM`);
  const wall = _dayNumber(date) * DAY_MS + (Number(match[1]) * 60 + Number(match[2])) * MINUTE_MS;
  const zone = _zoneOf(year);
  // A repeated wall time (autumn) takes the earlier instant, as Temporal's "compatible" does.
  for (const offset of [zone.daylight, zone.standard]) {
    if (_offsetAt(wall - offset) === offset) return wall - offset;
  }
  // A skipped wall time (spring) is read with the offset in force before the switch.
  return wall - zone.standard;
}

/** New York calendar date (`YYYY-MM-DD`) of the instant `ts` in epoch milliseconds. */
export function exchangeDate(ts: number): string {
  if (!Number.isFinite(ts)) {
    throw new TypeError(`Invalid timestamp ${ts}: expected epoch milliseconds`);
  }
  // The New York date is never more than a day off the UTC one: refuse far-off instants
  // before asking Intl about their year.
  const utcYear = new Date(ts).getUTCFullYear();
  if (!(utcYear >= CALENDAR_YEARS.first && utcYear <= CALENDAR_YEARS.last + 1)) {
    throw _yearRangeError(Number.isNaN(utcYear) ? ts : new Date(ts).toISOString());
  }
  const day = Math.floor((ts + _offsetAt(ts, utcYear)) / DAY_MS);
  let date = _exchangeDates.get(day);
  if (date === undefined) {
    date = _formatDay(day);
    _checkYear(Number(date.slice(0, 4)), date);
    _exchangeDates.set(day, date);
  }
  return date;
}

/** Session the instant `ts` falls in, or `undefined` outside 04:00-20:00 and on closed days. */
export function sessionAt(ts: number): Session | undefined {
  const session = tradingSession(exchangeDate(ts));
  if (session === undefined || ts < session.preOpen || ts >= session.postClose) return undefined;
  if (ts < session.open) return "pre";
  return ts < session.close ? "regular" : "post";
}

function _buildSession(date: string): TradingSession | null {
  const [year] = _parseInRange(date);
  if (!_isOpen(date, _dayNumber(date), year)) return null;
  const calendar = _calendarOf(year);
  const earlyClose = calendar.earlyCloses.has(date);
  return Object.freeze({
    date,
    preOpen: zonedTime(date, "04:00"),
    open: zonedTime(date, "09:30"),
    close: zonedTime(date, earlyClose ? calendar.earlyCloseTime : "16:00"),
    postClose: zonedTime(date, earlyClose ? "17:00" : "20:00"),
    earlyClose,
  });
}

function _stepTradingDay(date: string, step: 1 | -1): string {
  _parseInRange(date);
  for (let n = _dayNumber(date) + step;; n += step) {
    const candidate = _formatDay(n);
    const year = Number(candidate.slice(0, 4));
    if (year < CALENDAR_YEARS.first || year > CALENDAR_YEARS.last) {
      const which = step > 0 ? "after" : "before";
      throw new RangeError(
        `Cannot find the NYSE trading day ${which} ${date}: supported years are ${_range()}`,
      );
    }
    if (_isOpen(candidate, n, year)) return candidate;
  }
}

function _isOpen(date: string, dayNumber: number, year: number): boolean {
  const day = _weekdayOf(dayNumber);
  return day !== 0 && day !== 6 && !_calendarOf(year).closed.has(date);
}

function _calendarOf(year: number): _YearCalendar {
  let calendar = _years.get(year);
  if (calendar === undefined) {
    calendar = _buildYear(year);
    _years.set(year, calendar);
  }
  return calendar;
}

function _buildYear(year: number): _YearCalendar {
  const holidays: Holiday[] = [];
  const add = (n: number, name: string) => holidays.push({ date: _formatDay(n), name });
  // Rule 7.2: Saturday holidays close the Friday before, Sunday ones the Monday after, except
  // that a Saturday New Year's Day is not observed, to keep the year-end trading day open.
  const observe = (month: number, day: number, name: string, onSaturday = true) => {
    const n = _dayOf(year, month, day);
    const wd = _weekdayOf(n);
    if (wd === 0) add(n + 1, `${name} (observed)`);
    else if (wd === 6 && onSaturday) add(n - 1, `${name} (observed)`);
    else if (wd !== 6) add(n, name);
  };
  observe(1, 1, "New Year's Day", false);
  if (year >= 1998) add(_nthWeekday(year, 1, 1, 3), "Martin Luther King Jr. Day");
  add(_nthWeekday(year, 2, 1, 3), "Washington's Birthday");
  add(_easter(year) - 2, "Good Friday");
  add(_nthWeekday(year, 6, 1, 1) - 7, "Memorial Day");
  if (year >= 2022) observe(6, 19, "Juneteenth National Independence Day");
  observe(7, 4, "Independence Day");
  add(_nthWeekday(year, 9, 1, 1), "Labor Day");
  const thanksgiving = _nthWeekday(year, 11, 4, 4);
  add(thanksgiving, "Thanksgiving Day");
  observe(12, 25, "Christmas Day");
  for (const closure of SPECIAL_CLOSURES) {
    if (closure.date.startsWith(`${year}-`)) holidays.push({ ...closure });
  }
  holidays.sort((a, b) => a.date < b.date ? -1 : a.date > b.date ? 1 : 0);
  const closed = new Set(holidays.map((holiday) => holiday.date));

  const early: number[] = [];
  const july3 = _dayOf(year, 7, 3);
  const july3Weekday = _weekdayOf(july3);
  // July 3 closes early from 1995, but a Wednesday July 3 only from 2013: before that the
  // Friday July 5 after a Thursday Independence Day closed early instead.
  if (year >= 1995 && [1, 2, 4].includes(july3Weekday)) early.push(july3);
  if (year >= 2013 && july3Weekday === 3) early.push(july3);
  if (year >= 1995 && year <= 2012 && july3Weekday === 3) early.push(july3 + 2);
  // The day after Thanksgiving closes early since 1992.
  if (year >= 1992) early.push(thanksgiving + 1);
  const christmasEve = _dayOf(year, 12, 24);
  if (_weekdayOf(christmasEve) >= 1 && _weekdayOf(christmasEve) <= 4) early.push(christmasEve);
  const earlyDates = early.map(_formatDay);
  earlyDates.push(...SPECIAL_EARLY_CLOSES.filter((date) => date.startsWith(`${year}-`)));
  earlyDates.sort();
  return {
    holidays,
    closed,
    earlyCloses: new Set(earlyDates.filter((date) => !closed.has(date))),
    earlyCloseTime: year < 1993 ? "14:00" : "13:00",
  };
}

/** Day number of Easter Sunday (anonymous Gregorian computus). */
function _easter(year: number): number {
  const a = year % 19;
  const b = Math.floor(year / 100);
  const c = year % 100;
  const h = (19 * a + b - Math.floor(b / 4) - Math.floor((b - Math.floor((b + 8) / 25) + 1) / 3) +
    15) % 30;
  const l = (32 + 2 * (b % 4) + 2 * Math.floor(c / 4) - h - (c % 4)) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return _dayOf(year, month, day);
}

/** Day number of the `nth` weekday `wd` (0 = Sunday) of a month. */
function _nthWeekday(year: number, month: number, wd: number, nth: number): number {
  const first = _dayOf(year, month, 1);
  return first + ((wd - _weekdayOf(first) + 7) % 7) + (nth - 1) * 7;
}

// Offsets are milliseconds to add to UTC to get New York wall time. Intl is asked about 40 times
// per year to find the two switch instants; after that every lookup is arithmetic.
function _zoneOf(year: number): _Zone {
  let zone = _zones.get(year);
  if (zone === undefined) {
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone: EXCHANGE_TIME_ZONE,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    const offsetOf = (ts: number) => {
      const parts: Record<string, string> = {};
      for (const { type, value } of format.formatToParts(ts)) parts[type] = value;
      return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute) - ts;
    };
    const january = Date.UTC(year, 0, 1);
    const july = Date.UTC(year, 6, 1);
    const standard = offsetOf(january);
    const daylight = offsetOf(july);
    zone = standard === daylight
      ? { standard, daylight, daylightStart: Infinity, daylightEnd: Infinity }
      : {
        standard,
        daylight,
        daylightStart: _firstChange(offsetOf, january, july),
        daylightEnd: _firstChange(offsetOf, july, Date.UTC(year + 1, 0, 1)),
      };
    _zones.set(year, zone);
  }
  return zone;
}

/** First minute in (lo, hi] whose offset differs from the offset at `lo`. */
function _firstChange(offsetOf: (ts: number) => number, lo: number, hi: number): number {
  const before = offsetOf(lo);
  while (hi - lo > MINUTE_MS) {
    const mid = lo + Math.floor((hi - lo) / 2 / MINUTE_MS) * MINUTE_MS;
    if (offsetOf(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

function _offsetAt(ts: number, utcYear = new Date(ts).getUTCFullYear()): number {
  const zone = _zoneOf(utcYear);
  return ts >= zone.daylightStart && ts < zone.daylightEnd ? zone.daylight : zone.standard;
}

function _parse(date: string): [number, number, number] | undefined {
  if (typeof date !== "string") return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (match === null) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (month < 1 || month > 12 || day < 1 || day > _daysInMonth(year, month)) return undefined;
  return [year, month, day];
}

function _parseOrThrow(date: string): [number, number, number] {
  const parsed = _parse(date);
  if (parsed === undefined) throw new TypeError(`Invalid date "${date}": expected YYYY-MM-DD`);
  return parsed;
}

function _parseInRange(date: string): [number, number, number] {
  const parsed = _parseOrThrow(date);
  _checkYear(parsed[0], date);
  return parsed;
}

function _checkYear(year: number, value: unknown): void {
  if (!Number.isInteger(year) || year < CALENDAR_YEARS.first || year > CALENDAR_YEARS.last) {
    throw _yearRangeError(value);
  }
}

function _yearRangeError(value: unknown): RangeError {
  return new RangeError(
    `Cannot compute the NYSE calendar for ${value}: supported years are ${_range()}`,
  );
}

function _range(): string {
  return `${CALENDAR_YEARS.first}-${CALENDAR_YEARS.last}`;
}

function _daysInMonth(year: number, month: number): number {
  if (month !== 2) return [31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return leap ? 29 : 28;
}

/** Days since 1970-01-01 of a valid `YYYY-MM-DD` string. */
function _dayNumber(date: string): number {
  return _dayOf(Number(date.slice(0, 4)), Number(date.slice(5, 7)), Number(date.slice(8, 10)));
}

function _dayOf(year: number, month: number, day: number): number {
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const instant = new Date(0);
  instant.setUTCFullYear(year, month - 1, day);
  return Math.round(instant.getTime() / DAY_MS);
}

function _formatDay(n: number): string {
  const instant = new Date(n * DAY_MS);
  const year = instant.getUTCFullYear();
  if (year < 0 || year > 9999) return `${year}`;
  return `${String(year).padStart(4, "0")}-${String(instant.getUTCMonth() + 1).padStart(2, "0")}-${
    String(instant.getUTCDate()).padStart(2, "0")
  }`;
}

function _weekdayOf(n: number): number {
  // 1970-01-01 was a Thursday.
  return ((n % 7) + 11) % 7;
}
