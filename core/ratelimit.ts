/**
 * Client-side rate limiting for provider APIs: a token bucket per provider (evenly spaced
 * requests by default), paused by what the server says (`X-Ratelimit-Remaining: 0` until
 * `X-Ratelimit-Reset`, `Retry-After`, a 429).
 *
 * @module
 */
import { sleep as defaultSleep } from "./retry.ts";

/** Why a request waited: the local bucket, the server's rate-limit headers, or a 429 answer. */
export type RateLimitWaitMode = "local" | "headers" | "429";

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  /** Requests per minute, > 0. */
  perMinute: number;
  /**
   * Requests that may go back to back after an idle spell. Default 1: requests are spaced evenly
   * at 60 s / perMinute, which never exceeds a server window of the same rate.
   */
  burst?: number;
  /** Clock in epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Waits `ms`, rejecting when `signal` aborts. Default the timer-based sleep of core/retry. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Called once per request that had to wait, with the reason and the wait in ms. */
  onWait?: (mode: RateLimitWaitMode, ms: number) => void;
}

/** A shared limiter: every request of one provider calls {@link RateLimiter.acquire} first. */
export interface RateLimiter {
  readonly perMinute: number;
  /** Spacing of requests at the configured rate, in ms. */
  readonly intervalMs: number;
  /** Resolves when a request may be sent; rejects with the signal's reason when it aborts. */
  acquire(signal?: AbortSignal): Promise<void>;
  /** Hold every request until `until` (epoch ms), e.g. after a 429 or `Remaining: 0`. */
  pauseUntil(until: number, mode: Exclude<RateLimitWaitMode, "local">): void;
  /** Epoch ms until which requests are held, or 0. */
  readonly pausedUntil: number;
}

/**
 * A token bucket in its "virtual scheduling" form (GCRA): one slot every `intervalMs`, up to
 * `burst` slots early. Slots are handed out in call order; a pause set while a request sleeps
 * sends it back for a new slot, so requests never bunch up at the end of a pause.
 *
 * @example
 * ```ts
 * const limiter = createRateLimiter({ perMinute: 200 });
 * await limiter.acquire(signal); // then send the request
 * ```
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { perMinute } = options;
  if (!(Number.isFinite(perMinute) && perMinute > 0)) {
    throw new RangeError(`Invalid rate limit ${perMinute}: expected requests per minute > 0`);
  }
  const burst = options.burst ?? 1;
  if (!(Number.isInteger(burst) && burst >= 1)) {
    throw new RangeError(`Invalid rate-limit burst ${burst}: expected an integer >= 1`);
  }
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? defaultSleep;
  const intervalMs = 60_000 / perMinute;
  const tolerance = (burst - 1) * intervalMs;
  let tat = -Infinity; // theoretical arrival time of the next request
  let pausedUntil = 0;
  let pauseMode: Exclude<RateLimitWaitMode, "local"> = "headers";

  async function acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    let mode: RateLimitWaitMode | undefined;
    let waited = 0;
    for (;;) {
      const t = now();
      const start = Math.max(t, pausedUntil);
      tat = Math.max(tat, start);
      const slot = Math.max(start, tat - tolerance);
      tat += intervalMs;
      if (slot <= t) break;
      mode ??= pausedUntil > t ? pauseMode : "local";
      waited += slot - t;
      await sleep(slot - t, signal);
      // A pause that began while this request slept voids its slot.
      if (pausedUntil <= now()) break;
    }
    if (mode !== undefined) options.onWait?.(mode, waited);
  }

  return {
    perMinute,
    intervalMs,
    acquire,
    pauseUntil(until, mode) {
      if (until > pausedUntil) {
        pausedUntil = until;
        pauseMode = mode;
      }
    },
    get pausedUntil() {
      return pausedUntil;
    },
  };
}

/** What a response's headers say about the server's rate limit. */
export interface RateLimitHints {
  /** `X-Ratelimit-Remaining`: requests left in the current window. */
  remaining?: number;
  /** `X-Ratelimit-Reset` as epoch ms: when the window resets. */
  resetAt?: number;
  /** `Retry-After` as ms from `now`. */
  retryAfterMs?: number;
}

/**
 * Read `X-Ratelimit-Remaining`, `X-Ratelimit-Reset` (epoch seconds, or seconds from now when
 * small, as some APIs send) and `Retry-After` (seconds or an HTTP date). Unparsable values are
 * ignored.
 */
export function readRateLimitHeaders(headers: Headers, now: number): RateLimitHints {
  const hints: RateLimitHints = {};
  const remaining = _number(headers.get("x-ratelimit-remaining"));
  if (remaining !== undefined && remaining >= 0) hints.remaining = remaining;
  const reset = _number(headers.get("x-ratelimit-reset"));
  if (reset !== undefined && reset >= 0) {
    // Below ~2001 as epoch seconds, the value can only be a delay in seconds.
    hints.resetAt = reset > 1e9 ? reset * 1000 : now + reset * 1000;
  }
  const retryAfter = headers.get("retry-after");
  if (retryAfter !== null) {
    const seconds = _number(retryAfter);
    if (seconds !== undefined && seconds >= 0) {
      hints.retryAfterMs = seconds * 1000;
    } else {
      const date = Date.parse(retryAfter);
      if (Number.isFinite(date)) hints.retryAfterMs = Math.max(0, date - now);
    }
  }
  return hints;
}

function _number(text: string | null): number | undefined {
  if (text === null || text.trim() === "") return undefined;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : undefined;
}
