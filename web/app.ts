import { Hono } from "hono";
import { CorruptFileError, UsageError } from "../core/errors.ts";
import { QueryRejectedError, QuerySqlError, QueryTimeoutError, runQuery } from "../storage/mod.ts";
import { registerApi } from "./api.ts";
import { prepareAssets } from "./assets.ts";
import { type AppDeps, DEFAULT_LIMITS, type WebContext } from "./context.ts";
import { HttpError } from "./errors.ts";
import { html } from "./html.ts";
import { compressMetrics, metricsResponse } from "./metrics_server.ts";
import { openApiDocument } from "./openapi.ts";
import { registerChart } from "./chart.ts";
import { registerConsole } from "./console.ts";
import { registerPages } from "./pages.ts";
import { registerSchedules } from "./schedules.ts";
import { checkKnownParams } from "./params.ts";
import { parseQuery } from "./queries.ts";
import {
  accessLog,
  limitBody,
  loopbackHostsOnly,
  requireToken,
  sameOriginWrites,
  securityHeaders,
  wantsJson,
} from "./middleware.ts";
import { createGuessLimiter, createLimiter } from "./security.ts";
import { viewOf } from "./services.ts";
import { notice, page, type ViewSettings } from "./views.ts";

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

  app.use(accessLog(deps));
  app.use(securityHeaders());
  if (deps.loopbackHostsOnly) app.use(loopbackHostsOnly());
  app.use(sameOriginWrites());
  if (deps.token !== undefined) {
    app.use(requireToken(deps.token, { authReads: deps.authReads, guesses: context.guesses }));
  }
  app.use(limitBody(limits.maxBodyBytes));

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

  // The same response as `metrics --port`: OpenMetrics when asked, gzip when accepted.
  app.use("/metrics", compressMetrics());
  app.get("/metrics", (c) => {
    checkKnownParams(c.req.query(), []);
    return metricsResponse(c.req.raw, deps.scrapeMetrics);
  });

  app.get("/api/openapi.json", (c) => {
    checkKnownParams(c.req.query(), []);
    return c.json(openApiDocument(deps.version));
  });

  app.get("/assets/:name", async (c) => {
    const { v } = parseQuery(c.req.query(), "GET /assets/{name}");
    const asset = assets.get(c.req.param("name"));
    if (!asset) throw new HttpError(404, "not_found", "No such asset");
    const etag = `"${asset.hash}"`;
    const headers: Record<string, string> = {
      "Content-Type": asset.type,
      ETag: etag,
      "Cache-Control": v === asset.hash.slice(0, 12)
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
  registerChart(app, context, layout);
  registerConsole(app, context, layout);
  registerSchedules(app, {
    meta: deps.store.meta,
    scheduler: () => deps.scheduler,
    now: context.now,
    layout,
  });

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
    if (wantsJson(c)) {
      // Escaped so that a value echoed in a message is never markup, whatever reads it.
      const body = JSON.stringify({ error: { code: http.code, message: http.message } })
        .replace(/[<>&']/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
      return c.body(body, status, { "Content-Type": "application/json" });
    }
    if (c.req.header("hx-request")) return c.html(notice(http.message, "error").value, status);
    const title = http.status === 404 ? "Not found" : `Error ${http.status}`;
    let view: ViewSettings | undefined;
    try {
      view = viewOf(c);
    } catch {
      // The error may be the page's own ?tz=: show it in exchange time.
    }
    return c.html(
      page(layout, {
        title,
        section: "none",
        view,
        body: html`<h1>${title}</h1>${
          notice(http.message, "error")
        }<p><a href="/">Back to the overview</a></p>`,
      }).value,
      status,
    );
  });

  return app;
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
