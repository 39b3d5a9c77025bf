/**
 * The app's middlewares, in the order `createApp` installs them: security headers, the loopback
 * Host check, the same-origin check of writes, the token check and the body size limit.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
import { HttpError } from "./errors.ts";
import {
  clientKey,
  type GuessLimiter,
  hasValidCredentials,
  isLoopback,
  SESSION_COOKIE,
} from "./security.ts";

// Typed loosely: interest-cohort (the FLoC opt-out) is not in Hono's list of directives.
const _PERMISSIONS: Record<string, string[]> = {
  camera: [],
  microphone: [],
  geolocation: [],
  interestCohort: [],
};

/**
 * Headers of every response: a Content-Security-Policy of this origin only (no inline script or
 * style), `nosniff`, no framing, no referrer, same-origin opener and resources, no powerful
 * features. Hono's other defaults are off: HSTS would pin plain-HTTP loopback servers to HTTPS.
 */
export function securityHeaders(): MiddlewareHandler {
  return secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'"],
      connectSrc: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
    xFrameOptions: "DENY",
    permissionsPolicy: _PERMISSIONS,
    originAgentCluster: false,
    strictTransportSecurity: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  });
}

/** 403 for a Host header that is not a loopback name (DNS rebinding of a loopback server). */
export function loopbackHostsOnly(): MiddlewareHandler {
  return async (c, next) => {
    const host = _host(c);
    if (!isLoopback(host.replace(/:\d+$/, ""))) {
      throw new HttpError(
        403,
        "forbidden_host",
        `Host ${
          JSON.stringify(host.slice(0, 80))
        } is not a loopback name; this server answers only 127.0.0.1 and localhost (start it with --host to serve other names)`,
      );
    }
    await next();
  };
}

/**
 * 403 for a write (any method but GET, HEAD and OPTIONS) from another site: an `Origin` whose
 * host is not the Host header, or `Sec-Fetch-Site` `cross-site` or `same-site`. A request with
 * neither header (curl, scripts) passes. Not `hono/csrf`: that one checks only form and text
 * bodies, so a cross-site JSON write would pass, and it refuses scripts that send no `Origin`.
 */
export function sameOriginWrites(): MiddlewareHandler {
  return async (c, next) => {
    if (!_isSafe(c.req.method)) {
      const origin = c.req.header("origin");
      const site = c.req.header("sec-fetch-site");
      let foreign = site === "cross-site" || site === "same-site";
      // A form POST under `Referrer-Policy: no-referrer` says `Origin: null`; the browser's
      // Sec-Fetch-Site still tells a same-origin one apart (a sandboxed frame says cross-site).
      if (origin !== undefined && !(origin === "null" && site === "same-origin")) {
        try {
          foreign ||= new URL(origin).host !== _host(c);
        } catch {
          foreign = true;
        }
      }
      if (foreign) throw new HttpError(403, "forbidden_origin", "Cross-origin request refused");
    }
    await next();
  };
}

/** Options of {@link requireToken}. */
export interface RequireTokenOptions {
  /** Reads need the token too (`--auth-reads`); writes always do. */
  authReads?: boolean;
  /** Wrong Bearer tokens counted per client address. */
  guesses: GuessLimiter;
}

/**
 * Requires `token` as `Authorization: Bearer` or the session cookie, for writes (and reads with
 * `authReads`), except on the health, login and asset routes. Without it: 401 with
 * `WWW-Authenticate`, or a redirect to `/login` for a page a browser navigates to. Not
 * `hono/bearer-auth`: the session cookie is an alternative, a wrong Bearer token counts as a
 * guess of the client, and a malformed header is a 401 like a missing one.
 */
export function requireToken(token: string, options: RequireTokenOptions): MiddlewareHandler {
  const { guesses } = options;
  return async (c, next) => {
    const path = c.req.path;
    const open = path === "/healthz" || path === "/readyz" || path === "/login" ||
      path === "/logout" || path.startsWith("/assets/");
    if (open || (_isSafe(c.req.method) && !options.authReads)) return await next();
    const authorization = c.req.header("authorization");
    // A Bearer token is a guess like a /login form: both count against the client's address,
    // and a client over the limit is not checked at all (the right token waits too).
    const bearer = /^Bearer\s/i.test(authorization ?? "");
    const client = clientKey(c.env);
    if (bearer) {
      const wait = guesses.retryAfter(client);
      if (wait > 0) {
        throw new HttpError(
          429,
          "too_many_requests",
          `Too many wrong tokens from this address: try again in ${wait} s`,
          { headers: { "Retry-After": String(wait) } },
        );
      }
    }
    if (hasValidCredentials(authorization, getCookie(c, SESSION_COOKIE), token)) {
      return await next();
    }
    if (bearer) guesses.fail(client);
    if (!wantsJson(c) && c.req.method === "GET" && !c.req.header("hx-request")) {
      return c.redirect(`/login?next=${encodeURIComponent(path)}`, 303);
    }
    throw new HttpError(
      401,
      "unauthorized",
      "A token is required: send Authorization: Bearer <MARKETPIPE_API_TOKEN> (or log in at /login)",
      { headers: { "WWW-Authenticate": 'Bearer realm="marketpipe"' } },
    );
  };
}

/**
 * 413 for a request body over `maxBytes`: by `Content-Length` when given, else counted while it
 * is read into memory. Not `hono/body-limit`: it rebuilds a chunked request with
 * `new Request(raw, ...)`, which reads `request.signal` and makes Deno print its legacy
 * abort-behaviour warning on every such request.
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  const tooLarge = () =>
    new HttpError(413, "payload_too_large", `Request body too large: at most ${maxBytes} bytes`);
  return async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || !c.req.raw.body) return await next();
    const length = c.req.header("content-length");
    if (length !== undefined && !c.req.raw.headers.has("transfer-encoding")) {
      if (Number(length) > maxBytes) throw tooLarge();
      return await next();
    }
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    let size = 0;
    const reader = c.req.raw.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    const body = new Blob(chunks);
    c.req.raw = new Request(c.req.url, { method: c.req.method, headers: c.req.raw.headers, body });
    await next();
  };
}

/** Whether errors of this route are JSON (the API, health and metrics) rather than a page. */
export function wantsJson(c: Context): boolean {
  const path = c.req.path;
  return path.startsWith("/api/") || path === "/api" || path === "/healthz" ||
    path === "/readyz" || path === "/metrics";
}

function _host(c: Context): string {
  return c.req.header("host") ?? new URL(c.req.url).host;
}

function _isSafe(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

/** Where {@link accessLog} writes ({@link AppDeps.accessLog}). */
export interface AccessLogTarget {
  /** Receives one line per request; unset: no access log. */
  accessLog?: (line: string) => void;
}

/** Query parameters whose values never reach the access log. */
const _SECRET_PARAMS = /token|key|secret|pass|auth|sig|session|credential/i;

/**
 * One access-log line per request once its response body is sent (or the client went away):
 * `GET /api/bars?symbol=AAPL&token=*** 200 5120B 12ms`: method, path with the values of
 * secret-looking query parameters masked, status, body bytes sent and milliseconds. Mount it
 * first so that it also sees what the other middlewares refuse.
 */
export function accessLog(target: AccessLogTarget): MiddlewareHandler {
  return async (c, next) => {
    const log = target.accessLog;
    if (!log) return await next();
    const started = performance.now();
    const where = _loggedPath(new URL(c.req.url));
    const method = c.req.method;
    await next();
    const response = c.res;
    let logged = false;
    const write = (bytes: number, note = "") => {
      if (logged) return;
      logged = true;
      const ms = Math.round(performance.now() - started);
      log(`${method} ${where} ${response.status} ${bytes}B ${ms}ms${note}`);
    };
    if (!response.body) {
      write(0);
      return;
    }
    let bytes = 0;
    const counted = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
        flush() {
          write(bytes);
        },
        cancel() {
          write(bytes, " (client closed)");
        },
      }),
    );
    c.res = new Response(counted, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

function _loggedPath(url: URL): string {
  if (url.search === "") return url.pathname;
  const parts = [...url.searchParams].map(([name, value]) => {
    const shown = _SECRET_PARAMS.test(name) ? "***" : value;
    return `${encodeURIComponent(name)}=${encodeURIComponent(shown).replaceAll("%2C", ",")}`;
  });
  const text = `${url.pathname}?${parts.join("&")}`;
  // A console query can be long: the log keeps its start.
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
