/**
 * A mock HTTP server for provider APIs, on 127.0.0.1 and a free port. It speaks HTTP/1.1 over a
 * raw TCP listener, so it can do what a real server (or the network) does that `Deno.serve`
 * cannot: drop a connection before answering, or cut a body short. Routes are provider mocks
 * mounted under a path prefix (`/alpaca`, `/polygon`, ...); every request is recorded, and
 * faults can be queued per provider.
 *
 * @module
 */

/** A request as a provider mock sees it: path and query without the mount prefix. */
export interface MockRequest {
  /** 1-based sequence number over the whole server. */
  seq: number;
  provider: string;
  method: string;
  /** Path below the provider's prefix, e.g. `/v2/stocks/bars`. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  /** When the request arrived, epoch ms. */
  at: number;
}

/** What a provider mock answers. */
export interface MockResponse {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

/** A JSON answer of `body` with `headers` after its Content-Type. */
export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): MockResponse {
  return {
    status,
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

/** A provider mock mounted on the server. */
export interface MockRoute {
  handle(request: MockRequest): MockResponse | Promise<MockResponse>;
}

/** A fault applied to one request instead of (or before) the normal answer. */
export type Fault =
  /** No fault: answer normally (to space faults out in a queue). */
  | { kind: "none" }
  /** Answer with this status and body (default: a generic server error). */
  | { kind: "status"; status: number; body?: string; headers?: Record<string, string> }
  /** Close the connection without answering. */
  | { kind: "drop" }
  /** Send the real headers and half of the real body, then close. */
  | { kind: "truncate" }
  /** 200 with a body that is not JSON. */
  | { kind: "malformed" }
  /** 200 with an empty body. */
  | { kind: "empty" }
  /** Wait `ms` before answering normally. */
  | { kind: "slow"; ms: number };

/** One recorded request and how it was answered. */
export interface RecordedRequest {
  seq: number;
  provider: string;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Epoch ms of arrival. */
  at: number;
  /** Status sent, or undefined when the connection was dropped. */
  status?: number;
  /** The injected fault, if any. */
  fault?: Fault["kind"];
}

/** Options of {@link startMockServer}. */
export interface MockServerOptions {
  /** Delay before every answer, in ms (a network round trip). Default 0. */
  latencyMs?: number;
}

/** A running mock server. */
export interface MockServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Base URL of a mounted provider, `url + "/" + provider`. */
  base(provider: string): string;
  /** Every request so far, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Queue faults for the next requests to `provider`, one per request. */
  inject(provider: string, ...faults: Fault[]): void;
  /** Faults still queued for `provider`. */
  pending(provider: string): number;
  close(): Promise<void>;
}

const _MAX_HEAD = 64 * 1024;
const _STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  410: "Gone",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Runs `fn` against a mock server of `routes` started for it, closed afterwards. */
export async function withMockServer<T>(
  routes: Record<string, MockRoute>,
  fn: (server: MockServer) => Promise<T>,
): Promise<T> {
  const server = startMockServer(routes);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

/**
 * Start a mock server with `routes` mounted by name. Close it with {@link MockServer.close}.
 *
 * @example
 * ```ts
 * const server = startMockServer({ alpaca: createAlpacaMock({ market }) });
 * env.ALPACA_BASE_URL = server.base("alpaca");
 * ```
 */
export function startMockServer(
  routes: Record<string, MockRoute>,
  options: MockServerOptions = {},
): MockServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const requests: RecordedRequest[] = [];
  const faults = new Map<string, Fault[]>();
  const connections = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  const closing = new AbortController();
  let seq = 0;

  const loop = (async () => {
    try {
      for await (const conn of listener) {
        connections.add(conn);
        const handler = _handle(conn).finally(() => {
          connections.delete(conn);
          handlers.delete(handler);
        });
        handlers.add(handler);
      }
    } catch (error) {
      if (!closing.signal.aborted) throw error;
    }
  })();

  async function _handle(conn: Deno.Conn): Promise<void> {
    try {
      const head = await _readHead(conn);
      if (head === undefined) return;
      const [requestLine, ...headerLines] = head.split("\r\n");
      const [method, target] = requestLine.split(" ");
      const headers = new Headers();
      for (const line of headerLines) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      const full = new URL(target, url);
      const [, provider = ""] = full.pathname.split("/");
      const route = routes[provider];
      const record: RecordedRequest = {
        seq: ++seq,
        provider,
        method,
        path: full.pathname.slice(provider.length + 1) || "/",
        query: Object.fromEntries(full.searchParams),
        headers: Object.fromEntries(headers),
        at: Date.now(),
      };
      requests.push(record);
      if (options.latencyMs) await _sleep(options.latencyMs, closing.signal);
      const fault = faults.get(provider)?.shift();
      record.fault = fault?.kind === "none" ? undefined : fault?.kind;
      if (fault?.kind === "drop") return;
      if (fault?.kind === "slow") await _sleep(fault.ms, closing.signal);
      let response: MockResponse;
      if (fault?.kind === "status") {
        response = {
          status: fault.status,
          headers: { "Content-Type": "application/json", ...fault.headers },
          body: fault.body ?? JSON.stringify({ message: "internal server error" }),
        };
      } else if (fault?.kind === "malformed") {
        response = {
          status: 200,
          headers: { "Content-Type": "application/json" },
          body: '{"bars":{"AAPL":[{"t":"2024-03-04T09:00:00Z","o":1',
        };
      } else if (fault?.kind === "empty") {
        response = { status: 200, headers: { "Content-Type": "application/json" }, body: "" };
      } else if (!route) {
        response = { status: 404, body: `no mock mounted at /${provider}` };
      } else {
        response = await route.handle({ ...record, query: full.searchParams, headers });
      }
      record.status = response.status;
      await _write(conn, response, fault?.kind === "truncate");
    } catch {
      // The client went away (timeout) or the server is closing: nothing to answer.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  return {
    url,
    base: (provider) => `${url}/${provider}`,
    requests,
    inject(provider, ...list) {
      faults.set(provider, [...(faults.get(provider) ?? []), ...list]);
    },
    pending: (provider) => faults.get(provider)?.length ?? 0,
    async close() {
      closing.abort();
      listener.close();
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.allSettled([...handlers]);
      await loop;
    },
  };
}

async function _readHead(conn: Deno.Conn): Promise<string | undefined> {
  const buffer = new Uint8Array(_MAX_HEAD);
  let length = 0;
  while (length < buffer.length) {
    const n = await conn.read(buffer.subarray(length));
    if (n === null) return undefined;
    length += n;
    const text = new TextDecoder().decode(buffer.subarray(0, length));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) return text.slice(0, end);
  }
  return undefined;
}

async function _write(conn: Deno.Conn, response: MockResponse, truncate: boolean): Promise<void> {
  const body = new TextEncoder().encode(response.body);
  const headers: Record<string, string> = {
    "Content-Type": "application/json; charset=utf-8",
    ...response.headers,
    "Content-Length": String(body.length),
    "Connection": "close",
    "Date": new Date().toUTCString(),
  };
  const head = `HTTP/1.1 ${response.status} ${_STATUS_TEXT[response.status] ?? "Status"}\r\n` +
    Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n";
  await _writeAll(conn, new TextEncoder().encode(head));
  await _writeAll(conn, truncate ? body.subarray(0, Math.floor(body.length / 2)) : body);
}

async function _writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
