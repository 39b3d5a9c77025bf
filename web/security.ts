/**
 * Security and robustness helpers of the server: token checks in constant time, the session
 * cookie, loopback detection, the limit on token guesses and the cap on concurrent heavy
 * requests.
 *
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { busy } from "./errors.ts";

/** Name of the cookie a browser gets after `POST /login`. */
export const SESSION_COOKIE = "mp_session";
/** Attributes of the session cookie: not readable by scripts, never sent cross-site. */
export const SESSION_COOKIE_OPTIONS = { httpOnly: true, sameSite: "Strict", path: "/" } as const;

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

/** Wrong tokens one client may send within {@link TOKEN_GUESS_WINDOW_MS} before it gets 429. */
export const TOKEN_GUESSES_ALLOWED = 10;
/** The window over which a client's wrong tokens are counted. */
export const TOKEN_GUESS_WINDOW_MS = 60_000;
/** Clients whose wrong tokens are tracked at once; beyond it the one idle longest is forgotten. */
export const TOKEN_GUESS_CLIENTS = 10_000;

/** Options of {@link createGuessLimiter}; every field has a default. */
export interface GuessLimiterOptions {
  /** Wrong tokens allowed per client and window. Default {@link TOKEN_GUESSES_ALLOWED}. */
  allowed?: number;
  /** Default {@link TOKEN_GUESS_WINDOW_MS}. */
  windowMs?: number;
  /** Most clients tracked. Default {@link TOKEN_GUESS_CLIENTS}. */
  maxClients?: number;
  now?: () => number;
}

/** Counts wrong tokens (on `/login` and in `Authorization: Bearer`) per client address. */
export interface GuessLimiter {
  /** Seconds `client` must wait before its token is checked again; 0 when it may try now. */
  retryAfter(client: string): number;
  /** Counts a wrong token from `client`. */
  fail(client: string): void;
  /** Clients tracked now. */
  readonly size: number;
}

/**
 * A per-client limit on token guesses: after `allowed` wrong tokens within `windowMs`, a client is
 * refused until its oldest counted guess leaves the window. Other clients are not affected, and
 * the map of clients is bounded by `maxClients` (the client idle longest is forgotten first).
 *
 * @example
 * ```ts
 * const guesses = createGuessLimiter();
 * if (guesses.retryAfter("203.0.113.7") === 0 && !valid) guesses.fail("203.0.113.7");
 * ```
 */
export function createGuessLimiter(options: GuessLimiterOptions = {}): GuessLimiter {
  const allowed = options.allowed ?? TOKEN_GUESSES_ALLOWED;
  const windowMs = options.windowMs ?? TOKEN_GUESS_WINDOW_MS;
  const maxClients = options.maxClients ?? TOKEN_GUESS_CLIENTS;
  const now = options.now ?? Date.now;
  // Insertion order is the order of the last failure, so the first key is the stalest client.
  const failures = new Map<string, number[]>();
  const recent = (client: string, at: number): number[] => {
    const times = (failures.get(client) ?? []).filter((time) => at - time < windowMs);
    if (times.length === 0) failures.delete(client);
    return times;
  };
  return {
    get size() {
      return failures.size;
    },
    retryAfter(client) {
      const at = now();
      const times = recent(client, at);
      if (times.length > 0) failures.set(client, times);
      if (times.length < allowed) return 0;
      return Math.max(1, Math.ceil((times[0] + windowMs - at) / 1000));
    },
    fail(client) {
      const at = now();
      const times = recent(client, at);
      times.push(at);
      failures.delete(client);
      failures.set(client, times.slice(-allowed));
      while (failures.size > maxClients) failures.delete(failures.keys().next().value!);
    },
  };
}

/**
 * The client a request counts against: its remote address from `Deno.serve`'s handler info (Hono's
 * `c.env`), IPv6 addresses by their /64 network (one host usually has a whole /64), `"unknown"`
 * without one (`app.request()` in tests). Proxies are not trusted: `X-Forwarded-For` is ignored.
 */
export function clientKey(env: unknown): string {
  const addr = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
  const host = typeof addr?.hostname === "string" ? addr.hostname.toLowerCase() : undefined;
  if (host === undefined || host === "") return "unknown";
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(host)?.[1];
  if (mapped !== undefined) return mapped;
  if (!host.includes(":")) return host;
  const [head, tail] = host.replace(/%.*$/, "").split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
