/**
 * Security and robustness helpers of the server: token checks in constant time, the session
 * cookie, loopback detection and the cap on concurrent heavy requests.
 *
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { busy } from "./errors.ts";

/** Content-Security-Policy of every response: only this origin, no inline script or style. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** Headers added to every response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
};

/** Name of the cookie a browser gets after `POST /login`. */
export const SESSION_COOKIE = "mp_session";

/** Whether `host` (a bind address or a Host header name) is a loopback address. */
export function isLoopback(host: string): boolean {
  const name = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return name === "localhost" || name.endsWith(".localhost") || name === "::1" ||
    /^127(\.\d{1,3}){3}$/.test(name) || name === "::ffff:127.0.0.1";
}

/** Compares two secrets in time independent of where they differ (both are hashed first). */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash("sha256").update(a).digest();
  const right = createHash("sha256").update(b).digest();
  return timingSafeEqual(left, right);
}

/** The session cookie value for a token: an HMAC, so the cookie never holds the token itself. */
export function sessionValue(token: string): string {
  return createHmac("sha256", token).update("marketpipe session v1").digest("hex");
}

/** Whether an `Authorization` header or session cookie carries `token`. */
export function hasValidCredentials(
  authorization: string | undefined,
  cookie: string | undefined,
  token: string,
): boolean {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
  if (bearer !== undefined) return constantTimeEqual(bearer, token);
  if (cookie !== undefined) return constantTimeEqual(cookie, sessionValue(token));
  return false;
}

/** Options of {@link createLimiter}. */
export interface LimiterOptions {
  /** Requests that may run at once. */
  concurrency: number;
  /** Requests that may wait for a slot; beyond that a request is refused with 503. */
  queue: number;
  /** A request that waited this long is refused with 503. Default 10 s. */
  maxWaitMs?: number;
}

/** A cap on concurrent heavy requests (DuckDB queries): a slot is a release function. */
export interface Limiter {
  /** Wait for a slot; throws a 503 `HttpError` with `Retry-After` when full or after the wait cap. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** Requests holding a slot. */
  readonly active: number;
  /** Requests waiting for a slot. */
  readonly waiting: number;
}

/**
 * A limiter for heavy requests: `concurrency` run, `queue` wait, the rest get 503.
 *
 * @example
 * ```ts
 * const limiter = createLimiter({ concurrency: 4, queue: 64 });
 * const release = await limiter.acquire();
 * try { await work(); } finally { release(); }
 * ```
 */
export function createLimiter(options: LimiterOptions): Limiter {
  const maxWaitMs = options.maxWaitMs ?? 10_000;
  const waiters: (() => void)[] = [];
  let active = 0;
  const release = () => {
    const next = waiters.shift();
    if (next) next();
    else active--;
  };
  const once = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    get active() {
      return active;
    },
    get waiting() {
      return waiters.length;
    },
    acquire(signal) {
      if (active < options.concurrency) {
        active++;
        return Promise.resolve(once());
      }
      if (waiters.length >= options.queue) {
        return Promise.reject(
          busy(`Too many heavy requests at once (${active} running, ${waiters.length} waiting)`),
        );
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(once());
        };
        const drop = (error: unknown) => {
          const index = waiters.indexOf(grant);
          if (index >= 0) waiters.splice(index, 1);
          signal?.removeEventListener("abort", onAbort);
          clearTimeout(timer);
          reject(error);
        };
        const onAbort = () => drop(signal!.reason);
        const timer = setTimeout(
          () => drop(busy(`Waited ${maxWaitMs} ms for a free slot for heavy requests`)),
          maxWaitMs,
        );
        signal?.addEventListener("abort", onAbort, { once: true });
        waiters.push(grant);
      });
    },
  };
}
