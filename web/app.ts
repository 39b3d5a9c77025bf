import { Hono } from "hono";
import type { Context } from "hono";
import { CorruptFileError, UsageError } from "../core/errors.ts";
import { QueryRejectedError, QuerySqlError, QueryTimeoutError, runQuery } from "../storage/mod.ts";
import { registerApi } from "./api.ts";
import { prepareAssets } from "./assets.ts";
import { type AppDeps, DEFAULT_LIMITS, type WebContext } from "./context.ts";
import { HttpError } from "./errors.ts";
import { html } from "./html.ts";
import { openApiDocument } from "./openapi.ts";
import { registerPages } from "./pages.ts";
import { checkKnownParams } from "./params.ts";
import {
  clientKey,
  createGuessLimiter,
  createLimiter,
  hasValidCredentials,
  isLoopback,
  SECURITY_HEADERS,
  SESSION_COOKIE,
} from "./security.ts";
import { notice, page } from "./views.ts";

/**
 * Builds the MarketPipe web app: dashboard pages and htmx partials, the REST API, `/metrics`,
 * health endpoints and embedded assets, with authentication, security headers, a body size
 * limit and a cap on concurrent heavy requests. `Deno.serve` runs it in `marketpipe serve`;
 * tests call `app.request()`.
 *
 * @example
 * ```ts
 * const app = createApp({ store, data, jobs, scrapeMetrics: () => telemetry.scrape(), version });
 * const response = await app.request("/api/symbols");
 * ```
 */
export function createApp(deps: AppDeps): Hono {
  const limits = { ...DEFAULT_LIMITS, ...deps.limits };
  const assets = prepareAssets();
  const context: WebContext = {
    deps,
    limits,
    heavy: deps.heavy ??
      createLimiter({ concurrency: limits.heavyConcurrency, queue: limits.heavyQueue }),
    guesses: deps.guesses ?? createGuessLimiter({ now: deps.now }),
    assets,
    now: deps.now ?? Date.now,
    asset: (name) => `/assets/${name}?v=${assets.get(name)?.hash.slice(0, 12) ?? ""}`,
  };
  const layout = {
    asset: context.asset,
    version: deps.version,
    authEnabled: deps.token !== undefined,
  };
  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    let headers = c.res.headers;
    try {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    } catch {
      // Immutable headers (a response passed through): copy it once.
      c.res = new Response(c.res.body, c.res);
      headers = c.res.headers;
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    }
  });

  app.use("*", async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (deps.loopbackHostsOnly) {
      const name = host.replace(/:\d+$/, "");
      if (!isLoopback(name)) {
        throw new HttpError(
          403,
          "forbidden_host",
          `Host ${
            JSON.stringify(host.slice(0, 80))
          } is not a loopback name; this server answers only 127.0.0.1 and localhost (start it with --host to serve other names)`,
        );
      }
    }
    const unsafe = !["GET", "HEAD", "OPTIONS"].includes(c.req.method);
    if (unsafe) {
      const origin = c.req.header("origin");
      const site = c.req.header("sec-fetch-site");
      let foreign = site === "cross-site" || site === "same-site";
      if (origin !== undefined) {
        try {
          foreign ||= new URL(origin).host !== host;
        } catch {
          foreign = true;
        }
      }
      if (foreign) {
        throw new HttpError(403, "forbidden_origin", "Cross-origin request refused");
      }
    }
    const path = c.req.path;
    const open = path === "/healthz" || path === "/readyz" || path === "/login" ||
      path === "/logout" || path.startsWith("/assets/");
    if (deps.token !== undefined && !open && (unsafe || deps.authReads)) {
      const cookie = _cookie(c.req.header("cookie"), SESSION_COOKIE);
      const authorization = c.req.header("authorization");
      // A Bearer token is a guess like a /login form: both count against the client's address,
      // and a client over the limit is not checked at all (the right token waits too).
      const bearer = /^Bearer\s/i.test(authorization ?? "");
      const client = clientKey(c.env);
      if (bearer) {
        const wait = context.guesses.retryAfter(client);
        if (wait > 0) {
          throw new HttpError(
            429,
            "too_many_requests",
            `Too many wrong tokens from this address: try again in ${wait} s`,
            { headers: { "Retry-After": String(wait) } },
          );
        }
      }
      if (!hasValidCredentials(authorization, cookie, deps.token)) {
        if (bearer) context.guesses.fail(client);
        if (!_wantsJson(c) && c.req.method === "GET" && !c.req.header("hx-request")) {
          return c.redirect(`/login?next=${encodeURIComponent(path)}`, 303);
        }
        throw new HttpError(
          401,
          "unauthorized",
          "A token is required: send Authorization: Bearer <MARKETPIPE_API_TOKEN> (or log in at /login)",
          { headers: { "WWW-Authenticate": 'Bearer realm="marketpipe"' } },
        );
      }
    }
    await next();
  });

  // Not hono's bodyLimit: it rebuilds a chunked request with `new Request(raw, ...)`, which reads
  // `request.signal` and makes Deno print its legacy abort-behaviour warning on every such request.
  app.use("*", async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || !c.req.raw.body) return await next();
    const tooLarge = () =>
      new HttpError(
        413,
        "payload_too_large",
        `Request body too large: at most ${limits.maxBodyBytes} bytes`,
      );
    const length = c.req.header("content-length");
    if (length !== undefined && !c.req.raw.headers.has("transfer-encoding")) {
      if (Number(length) > limits.maxBodyBytes) throw tooLarge();
      return await next();
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = c.req.raw.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limits.maxBodyBytes) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
    c.req.raw = new Request(c.req.url, {
      method: c.req.method,
      headers: c.req.raw.headers,
      body,
    });
    await next();
  });

  app.get("/healthz", (c) => {
    checkKnownParams(c.req.query(), []);
    return c.json({ status: "ok" });
  });

  app.get("/readyz", async (c) => {
    checkKnownParams(c.req.query(), []);
    const checks: Record<string, string> = {};
    let ready = !(deps.shuttingDown?.() ?? false);
    if (!ready) checks.server = "shutting down";
    try {
      deps.data.meta.dataVersion();
      checks.sqlite = "ok";
    } catch (error) {
      ready = false;
      checks.sqlite = (error as Error).message;
    }
    try {
      await deps.data.withEngine((engine) => runQuery(engine, "SELECT 1", { timeoutMs: 5_000 }));
      checks.duckdb = "ok";
    } catch (error) {
      ready = false;
      checks.duckdb = (error as Error).message;
    }
    return c.json({ status: ready ? "ready" : "not ready", checks }, ready ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    checkKnownParams(c.req.query(), []);
    const body = await deps.scrapeMetrics();
    return c.body(body, 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  app.get("/api/openapi.json", (c) => {
    checkKnownParams(c.req.query(), []);
    return c.json(openApiDocument(deps.version));
  });

  app.get("/assets/:name", async (c) => {
    checkKnownParams(c.req.query(), ["v"]);
    const asset = assets.get(c.req.param("name"));
    if (!asset) throw new HttpError(404, "not_found", "No such asset");
    const etag = `"${asset.hash}"`;
    const headers: Record<string, string> = {
      "Content-Type": asset.type,
      ETag: etag,
      "Cache-Control": c.req.query("v") === asset.hash.slice(0, 12)
        ? "public, max-age=31536000, immutable"
        : "public, max-age=300",
      Vary: "Accept-Encoding",
    };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "") && asset.bytes.length > 1024) {
      const gzip = await asset.gzip();
      return c.body(gzip as Uint8Array<ArrayBuffer>, 200, {
        ...headers,
        "Content-Encoding": "gzip",
      });
    }
    return c.body(asset.bytes as Uint8Array<ArrayBuffer>, 200, headers);
  });

  registerApi(app, context);
  registerPages(app, context, layout);

  const routes = () =>
    app.routes.filter((route) => route.method !== "ALL").map((route) => ({
      method: route.method,
      pattern: new RegExp(`^${route.path.replace(/:[^/]+/g, "[^/]+")}$`),
    }));

  app.notFound((c) => {
    const allowed = [
      ...new Set(routes().filter((r) => r.pattern.test(c.req.path)).map((r) => r.method)),
    ];
    if (allowed.length > 0) {
      throw new HttpError(405, "method_not_allowed", `Method ${c.req.method} not allowed`, {
        headers: { Allow: allowed.join(", ") },
      });
    }
    throw new HttpError(404, "not_found", `No route ${c.req.method} ${c.req.path}`);
  });

  app.onError((error, c) => {
    const http = _toHttpError(error);
    if (http.status >= 500 && http.code === "internal") {
      deps.log?.(`error: ${c.req.method} ${c.req.path}: ${(error as Error).stack ?? error}`);
    } else if (http.code === "corrupt_file") {
      deps.log?.(`error: ${c.req.method} ${c.req.path}: ${http.message}`);
    }
    for (const [name, value] of Object.entries(http.headers)) c.header(name, value);
    const status = http.status as 400;
    if (_wantsJson(c)) {
      // Escaped so that a value echoed in a message is never markup, whatever reads it.
      const body = JSON.stringify({ error: { code: http.code, message: http.message } })
        .replace(/[<>&']/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
      return c.body(body, status, { "Content-Type": "application/json" });
    }
    if (c.req.header("hx-request")) return c.html(notice(http.message, "error").value, status);
    const title = http.status === 404 ? "Not found" : `Error ${http.status}`;
    return c.html(
      page(layout, {
        title,
        section: "none",
        body: html`<h1>${title}</h1>${
          notice(http.message, "error")
        }<p><a href="/">Back to the overview</a></p>`,
      }).value,
      status,
    );
  });

  return app;
}

function _wantsJson(c: Context): boolean {
  const path = c.req.path;
  return path.startsWith("/api/") || path === "/api" || path === "/healthz" ||
    path === "/readyz" || path === "/metrics";
}

function _toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof UsageError) return new HttpError(400, "bad_request", error.message);
  if (error instanceof QueryRejectedError) {
    return new HttpError(400, "query_rejected", error.message);
  }
  if (error instanceof QuerySqlError) return new HttpError(400, "sql_error", error.message);
  if (error instanceof QueryTimeoutError) {
    return new HttpError(504, "query_timeout", error.message);
  }
  // The message names the file and the way out (marketpipe repair); other pages keep working.
  if (error instanceof CorruptFileError) return new HttpError(500, "corrupt_file", error.message);
  if (error instanceof DOMException && error.name === "AbortError") {
    return new HttpError(499, "client_closed", "The client closed the request");
  }
  return new HttpError(500, "internal", "Internal server error; see the server log");
}

function _cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}
