/**
 * The metrics-only app of `marketpipe metrics --port`: `/metrics` in the Prometheus text format or
 * OpenMetrics (by the `Accept` header), gzip when asked, a cap on concurrent requests and on the
 * size of a request's head. {@link listen} runs it on `Deno.serve`.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { UsageError } from "../core/errors.ts";

/** Content type of the Prometheus text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** Content type of OpenMetrics 1.0.0, served when the `Accept` header prefers it. */
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/**
 * Deno's HTTP server answers 400 (not 431) to a request head over 64 KiB, before any handler
 * runs (measured with Deno 2.9.6: 65,540 bytes served, 65,541 refused; more than 128 header
 * fields are refused too). A configured limit above this would never be reached.
 */
export const MAX_HEADER_SIZE_LIMIT = 65_536;

/** Options of {@link createMetricsApp}. */
export interface MetricsAppOptions {
  /** The exposition in the Prometheus text format (version 0.0.4). */
  scrape: () => Promise<string>;
  /** Requests served at once; one more gets 503 with `Retry-After: 1`. */
  maxConcurrent: number;
  /**
   * Bytes of the request line plus headers (each counted as `name: value\r\n`, then the blank
   * line); beyond it 431. At most {@link MAX_HEADER_SIZE_LIMIT}.
   */
  maxHeaderSize: number;
  /** Where a failed scrape is reported (the client gets a bare 500). */
  log?: (line: string) => void;
}

/**
 * Builds the app of `metrics --port`: `GET`/`HEAD /metrics` (404 elsewhere, 405 with `Allow` for
 * other methods), 431 for a head over `maxHeaderSize` and 503 beyond `maxConcurrent` requests,
 * checked in that order before the scrape.
 *
 * @example
 * ```ts
 * const app = createMetricsApp({
 *   scrape: () => telemetry.scrape(),
 *   maxConcurrent: 100,
 *   maxHeaderSize: 16_384,
 * });
 * const response = await app.request("/metrics", { headers: { "Accept-Encoding": "gzip" } });
 * ```
 */
export function createMetricsApp(options: MetricsAppOptions): Hono {
  const app = new Hono();
  app.use(_limitHeaderSize(options.maxHeaderSize));
  app.use(_limitConcurrency(options.maxConcurrent));
  app.use(compressMetrics());
  app.get("/metrics", (c) => metricsResponse(c.req.raw, options.scrape));
  app.all("/metrics", (c) => c.text("Method not allowed\n", 405, { Allow: "GET, HEAD" }));
  app.notFound((c) => c.text("Not found: try /metrics\n", 404));
  app.onError((error, c) => {
    options.log?.(`error: ${c.req.method} ${c.req.path}: ${error.stack ?? error}`);
    return c.text("Internal server error; see the server log\n", 500);
  });
  return app;
}

/** gzip for a metrics response when the client sends `Accept-Encoding: gzip` (any size). */
export function compressMetrics(): MiddlewareHandler {
  return compress({
    encoding: "gzip",
    threshold: 0,
    contentTypeFilter: /^(text\/plain|application\/openmetrics-text)\b/,
  });
}

/**
 * The response to a scrape: OpenMetrics (ending in `# EOF`) when `Accept` prefers
 * `application/openmetrics-text`, else the text format, with an exact `Content-Length`.
 */
export async function metricsResponse(
  request: Request,
  scrape: () => Promise<string>,
): Promise<Response> {
  const openMetrics = wantsOpenMetrics(request.headers.get("accept"));
  const text = await scrape();
  const body = new TextEncoder().encode(openMetrics ? toOpenMetrics(text) : text);
  return new Response(body, {
    headers: {
      "Content-Type": openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE,
      "Content-Length": String(body.length),
      "Cache-Control": "no-store",
    },
  });
}

/**
 * Whether an `Accept` header prefers OpenMetrics: an `application/openmetrics-text` range with a
 * quality above 0 and at least that of `text/plain` (what Prometheus sends when it can parse both).
 */
export function wantsOpenMetrics(accept: string | null | undefined): boolean {
  if (!accept) return false;
  let openMetrics = 0;
  let text = 0;
  for (const part of accept.split(",")) {
    const [range, ...params] = part.split(";").map((p) => p.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q)) continue;
    if (range === "application/openmetrics-text") openMetrics = Math.max(openMetrics, q);
    else if (range === "text/plain") text = Math.max(text, q);
  }
  return openMetrics > 0 && openMetrics >= text;
}

/**
 * Rewrites a Prometheus text exposition (0.0.4) as OpenMetrics 1.0.0: a counter family is named
 * without its `_total` suffix (its samples keep it), a counter whose name lacks `_total` (or
 * whose base name another family has) and `untyped` become `unknown`, double quotes in HELP are escaped, blank lines go, and `# EOF` ends it.
 */
export function toOpenMetrics(text: string): string {
  const renamed = new Map<string, string>();
  const lines = text.split("\n").filter((line) => line.trim() !== "" && line !== "# EOF");
  const families = new Set(lines.flatMap((line) => /^# TYPE (\S+) /.exec(line)?.[1] ?? []));
  for (const line of lines) {
    const match = /^# TYPE (\S+) counter$/.exec(line);
    const base = match?.[1].replace(/_total$/, "");
    // A base name another family already has stays as it is, typed unknown: no clash.
    if (match && base !== match[1] && !families.has(base!)) renamed.set(match[1], base!);
  }
  const out = lines.map((line) => {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      if (kind === "counter") {
        return renamed.has(name) ? `# TYPE ${renamed.get(name)} counter` : `# TYPE ${name} unknown`;
      }
      return kind === "untyped" ? `# TYPE ${name} unknown` : line;
    }
    const help = /^# HELP (\S+) ?(.*)$/.exec(line);
    if (help) {
      const [, name, doc] = help;
      // Text-format HELP escapes only backslash and newline; OpenMetrics also needs \".
      const escaped = doc.replace(/\\.|"/g, (s) => s === '"' ? '\\"' : s);
      return `# HELP ${renamed.get(name) ?? name} ${escaped}`;
    }
    return line;
  });
  return out.join("\n") + "\n# EOF\n";
}

/**
 * The size of a request's head as it was sent: request line, each header as `name: value\r\n`
 * and the blank line. Deno parses the head before any handler sees it, so this is rebuilt from the
 * parsed request; it is exact for one space after each colon and no repeated header names (a
 * repeated name is joined into one value and counts a few bytes less).
 */
export function requestHeadSize(request: Request): number {
  const url = new URL(request.url);
  let size = `${request.method} ${url.pathname}${url.search} HTTP/1.1\r\n`.length;
  // Header values are byte strings: one character per byte.
  for (const [name, value] of request.headers) size += name.length + 2 + value.length + 2;
  return size + 2;
}

function _limitHeaderSize(maxHeaderSize: number): MiddlewareHandler {
  return async (c, next) => {
    if (requestHeadSize(c.req.raw) > maxHeaderSize) {
      return c.text("Request header fields too large\n", 431, { Connection: "close" });
    }
    await next();
  };
}

function _limitConcurrency(maxConcurrent: number): MiddlewareHandler {
  let running = 0;
  return async (c, next) => {
    if (running >= maxConcurrent) {
      return c.text("Too many concurrent requests\n", 503, { "Retry-After": "1" });
    }
    running++;
    try {
      await next();
    } finally {
      running--;
    }
  };
}

/** Options of {@link listen}. */
export interface ListenOptions {
  hostname: string;
  /** 0: any free port. */
  port: number;
  /** Aborting stops accepting requests; the server finishes once those in flight are answered. */
  signal: AbortSignal;
  /** Called with the bound address (the real port when `port` is 0). */
  onListen?: (addr: { hostname: string; port: number }) => void;
}

/**
 * Serves `app` over HTTP/1.1 (keep-alive, pipelining) with `Deno.serve`: for `metrics --port`
 * and any other server (it holds no dashboard code, so it is cheap to import). An address in use is a {@link UsageError}.
 *
 * @example
 * ```ts
 * const server = listen(createMetricsApp(options), { hostname: "127.0.0.1", port: 0, signal });
 * await server.finished;
 * ```
 */
export function listen(
  app: { fetch: (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response> },
  options: ListenOptions,
): Deno.HttpServer {
  const { hostname, port, signal, onListen } = options;
  try {
    return Deno.serve({
      hostname,
      port,
      signal,
      onListen: (addr) => onListen?.({ hostname: addr.hostname, port: addr.port }),
    }, (request, info) => app.fetch(request, info));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`Cannot listen on ${hostname}:${port}: the address is in use`, {
        cause: error,
      });
    }
    throw error;
  }
}
