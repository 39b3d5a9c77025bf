/**
 * Parsing of HTTP parameters: each parser returns a checked value or throws a 400
 * {@link HttpError} whose message names the parameter and shows (a bounded part of) the value.
 *
 * @module
 */
import { isValidDate } from "../core/calendar.ts";
import { didYouMean } from "../core/errors.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { badRequest } from "./errors.ts";

/** A value as it appears in an error message: at most 40 characters, control characters shown. */
export function shown(value: string): string {
  const clipped = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return JSON.stringify(clipped);
}

/** Refuses query parameters a route does not know, naming the closest known one. */
export function checkKnownParams(
  query: Record<string, string>,
  known: readonly string[],
): void {
  for (const name of Object.keys(query)) {
    if (!known.includes(name)) {
      throw badRequest(
        `Unknown parameter ${shown(name)}${didYouMean(name, known)}: expected ${
          known.length === 0 ? "none" : known.join(", ")
        }`,
      );
    }
  }
}

/** 400 naming the first parameter given more than once (`symbol=AAPL&symbol=MSFT`). */
export function checkSingleParams(queries: Record<string, string[]>): void {
  for (const [name, values] of Object.entries(queries)) {
    if (values.length > 1) {
      throw badRequest(
        `Repeated parameter ${shown(name)}: given ${values.length} times, expected once`,
      );
    }
  }
}

/** A ticker such as `AAPL` or `BRK.B`, upper-cased. */
export function parseSymbol(text: string | undefined, name = "symbol"): string {
  if (text === undefined || text === "") throw badRequest(`Missing ${name}: a ticker like AAPL`);
  const symbol = text.trim().toUpperCase();
  if (!isValidSymbol(symbol)) {
    throw badRequest(
      `Invalid ${name} ${
        shown(text)
      }: expected a ticker of letters and digits with an optional .X or -X class suffix, like AAPL or BRK.B`,
    );
  }
  return symbol;
}

/** A calendar date `YYYY-MM-DD` from 1990 to 2100, or `undefined` when absent. */
export function parseDate(text: string | undefined, name: string): string | undefined {
  if (text === undefined || text === "") return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw badRequest(`Invalid ${name} ${shown(text)}: expected YYYY-MM-DD`);
  }
  if (!isValidDate(text)) throw badRequest(`Invalid ${name} ${shown(text)}: no such calendar date`);
  const year = Number(text.slice(0, 4));
  if (year < 1990 || year > 2100) {
    throw badRequest(`Invalid ${name} ${shown(text)}: expected a date from 1990 to 2100`);
  }
  return text;
}

/** Checks that `start` is not after `end` when both are given. */
export function checkRange(start: string | undefined, end: string | undefined): void {
  if (start !== undefined && end !== undefined && start > end) {
    throw badRequest(`Invalid range: start ${start} is after end ${end}`);
  }
}

/** One of {@link TIMEFRAMES}, or `fallback` when absent. */
export function parseTimeframe(text: string | undefined, fallback: Timeframe): Timeframe;
/** One of {@link TIMEFRAMES}, or `undefined` when absent. */
export function parseTimeframe(text: string | undefined): Timeframe | undefined;
export function parseTimeframe(
  text: string | undefined,
  fallback?: Timeframe,
): Timeframe | undefined {
  if (text === undefined || text === "") return fallback;
  if (!isTimeframe(text)) {
    throw badRequest(
      `Invalid timeframe ${shown(text)}${didYouMean(text, TIMEFRAMES)}: expected one of ${
        TIMEFRAMES.join(", ")
      }`,
    );
  }
  return text;
}

/** A whole number in [min, max], or `fallback` when absent. */
export function parseInteger(
  text: string | undefined,
  name: string,
  bounds: { min: number; max: number; fallback: number },
): number {
  if (text === undefined || text === "") return bounds.fallback;
  const value = Number(text);
  if (!/^\d{1,16}$/.test(text) || value < bounds.min || value > bounds.max) {
    throw badRequest(
      `Invalid ${name} ${shown(text)}: expected a whole number from ${bounds.min} to ${bounds.max}`,
    );
  }
  return value;
}

/** One of `choices`, or `fallback` when absent. */
export function parseChoice<T extends string>(
  text: string | undefined,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  if (text === undefined || text === "") return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    throw badRequest(
      `Invalid ${name} ${shown(text)}${didYouMean(text, choices)}: expected one of ${
        choices.join(", ")
      }`,
    );
  }
  return text as T;
}

/** A symbol search text: letters, digits, `.` and `-`, at most 16, upper-cased; empty when absent. */
export function parseSearch(text: string | undefined): string {
  const q = (text ?? "").trim();
  if (!/^[A-Za-z0-9.-]{0,16}$/.test(q)) {
    throw badRequest(
      `Invalid q ${shown(q)}: search with letters, digits, "." and "-" (at most 16)`,
    );
  }
  return q.toUpperCase();
}

/** A same-site path to go to after logging in; anything else goes to the overview. */
export function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/(?![/\\])[\w\-./?=&%]*$/.test(next) ? next : "/";
}

// 2200-01-01: stored bars all start before it.
const _CURSOR_END_MICROS = 7_258_118_400_000_000n;

/** The opaque keyset cursor of a bar: its start instant (epoch µs), base64url-encoded. */
export function encodeCursor(tsMicros: bigint): string {
  return btoa(`u:${tsMicros}`).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * The bar instant (epoch microseconds) a cursor from {@link encodeCursor} stands for, or
 * `undefined` when absent. Cursors of earlier versions (`t:` and epoch ms) still read.
 */
export function parseCursor(text: string | undefined): bigint | undefined {
  if (text === undefined || text === "") return undefined;
  let decoded = "";
  if (/^[A-Za-z0-9_-]{1,40}$/.test(text)) {
    try {
      decoded = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    } catch {
      decoded = "";
    }
  }
  // A bar time since 1970 and before 2200: never negative, at most 16 digits in microseconds.
  const match = /^(?:u:(\d{1,16})|t:(\d{1,15}))$/.exec(decoded);
  const micros = match && (match[1] !== undefined ? BigInt(match[1]) : BigInt(match[2]) * 1000n);
  if (micros === null || micros >= _CURSOR_END_MICROS) {
    throw badRequest(
      `Invalid cursor ${shown(text)}: expected the next_cursor of a previous response`,
    );
  }
  return micros;
}
