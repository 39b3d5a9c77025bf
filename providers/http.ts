/**
 * The one HTTP layer of the market-data providers: rate limiting, timeouts, retries with backoff
 * and jitter, response checks, metrics and secret masking, so each provider file holds only its
 * endpoints, paging and mapping to `Bar`.
 *
 * @module
 */
import { parseIntOption, parseNumberOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import type { Metrics } from "../core/metrics.ts";
import { ProviderError } from "../core/provider.ts";
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimitHints,
  readRateLimitHeaders,
} from "../core/ratelimit.ts";
import { backoffDelay, withRetry } from "../core/retry.ts";
import { redact, redactError } from "../core/secrets.ts";

/** Default request timeout: time to headers and body together. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Default attempts per request, the first included. */
export const DEFAULT_ATTEMPTS = 5;

/** How a provider reads an error answer that is not worth a retry. */
export interface ErrorExplanation {
  /** Appended to the message, e.g. which env var to check. */
  hint?: string;
  /** Whether every later request of this client would fail the same way (bad credentials). */
  fatal?: boolean;
}

/** Options of {@link createHttpClient}. */
export interface HttpClientOptions {
  /** Provider name, used in messages and metric labels. */
  provider: string;
  /** Scheme, host and optional path prefix, e.g. `https://data.alpaca.markets`. */
  baseUrl: string;
  /** Requests per minute of the client-side limiter (ignored when `rateLimiter` is given). */
  perMinute?: number;
  /** A limiter to share; default one built from `perMinute`. */
  rateLimiter?: RateLimiter;
  /** Headers sent with every request (auth). */
  headers?: Record<string, string>;
  /** Values masked in every message this client produces. */
  secrets?: readonly (string | undefined)[];
  metrics?: Metrics;
  /** Time to headers and body of one attempt. Default {@link DEFAULT_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Attempts per request for 429, 5xx, timeouts, connection errors and torn bodies. Default 5. */
  attempts?: number;
  /** First backoff ceiling, doubled per attempt. Default 500 ms. */
  baseDelayMs?: number;
  /** Largest backoff. Default 30 s. */
  maxDelayMs?: number;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  /** Jitter source in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Provider-specific reading of a non-retriable error answer. */
  explainError?: (status: number, message: string) => ErrorExplanation | undefined;
}

/** Options of one request. */
export interface RequestOptions<T> {
  /** Query parameters; `undefined` values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** Feed label for metrics. */
  feed?: string;
  signal?: AbortSignal;
  /** `"json"` (default) parses the body as JSON before `parse`; `"text"` hands over the text. */
  body?: "json" | "text";
  /**
   * Check the body of a 2xx answer and return the typed data. Throw a `TypeError` describing the
   * mismatch: the client turns it into a `ProviderError` naming the path and status.
   */
  parse: (body: unknown) => T;
  /** Error answers that are a valid result (e.g. IEX's 404 "Unknown symbol" means no data). */
  accept?: (status: number, text: string) => T | undefined;
}

/** A configured client for one provider. */
export interface HttpClient {
  readonly provider: string;
  readonly baseUrl: string;
  readonly rateLimiter: RateLimiter;
  /**
   * GET `path` (relative to the base URL, may carry a query) with rate limiting, retries and
   * checks. Throws {@link ProviderError} with secrets masked, or the signal's reason on abort.
   */
  get<T>(path: string, options: RequestOptions<T>): Promise<T>;
  /** `text` with this client's secrets masked. */
  redact(text: string): string;
}

/** Options every HTTP provider takes besides its credentials (for tests: a fake fetch or clock). */
export interface HttpProviderOptions {
  /** Default: the provider's public endpoint. */
  baseUrl?: string;
  /** Requests per minute; default the provider's documented free-plan limit. */
  rateLimit?: number;
  metrics?: Metrics;
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
  attempts?: number;
  baseDelayMs?: number;
  now?: () => number;
  random?: () => number;
}

/**
 * The {@link HttpProviderOptions} of a provider from registry settings: base URL from
 * `baseUrlVar` (checked), `--rate-limit`, metrics, and the `MARKETPIPE_HTTP_*` knobs.
 */
export function httpOptionsFromSettings(
  settings: { env: Record<string, string | undefined>; metrics?: Metrics; rateLimit?: number },
  baseUrlVar: string,
  defaultBaseUrl: string | undefined,
): HttpProviderOptions {
  return {
    baseUrl: baseUrlFromEnv(settings.env, baseUrlVar, defaultBaseUrl),
    rateLimit: settings.rateLimit,
    metrics: settings.metrics,
    ...httpSettingsFromEnv(settings.env),
  };
}

/**
 * The {@link HttpClientOptions} a caller injects (metrics, `fetch`, clock, the backoff of tests)
 * and the `MARKETPIPE_HTTP_*` knobs of `env`: the part every reference source's client shares.
 */
export function injectedClientOptions(
  options: Pick<HttpClientOptions, "metrics" | "fetch" | "now" | "baseDelayMs" | "random"> & {
    env: Record<string, string | undefined>;
  },
): Pick<
  HttpClientOptions,
  "metrics" | "fetch" | "now" | "baseDelayMs" | "random" | "timeoutMs" | "attempts"
> {
  const { metrics, fetch, now, baseDelayMs, random } = options;
  return { metrics, fetch, now, baseDelayMs, random, ...httpSettingsFromEnv(options.env) };
}

/**
 * Throw a one-line {@link UsageError} naming the variables to set when a credential is missing.
 * Each group lists the accepted names of one credential, preferred name first.
 */
export function requireCredentials(
  provider: string,
  env: Record<string, string | undefined>,
  groups: readonly (readonly string[])[],
): string[] {
  const values = groups.map((names) => firstEnv(env, names));
  if (values.every((value) => value !== undefined)) return values as string[];
  const missing = groups.filter((_, i) => values[i] === undefined);
  const preferred = missing.map((names) => names[0]).join(" and ");
  const aliases = missing.filter((names) => names.length > 1);
  const alternative = aliases.length === missing.length
    ? ` (or ${missing.map((names) => names.slice(1).join(" or ")).join(" and ")})`
    : "";
  throw new UsageError(
    `Missing credentials for provider "${provider}": set ${preferred}${alternative}`,
  );
}

/** Knobs of the HTTP layer that a user may set through the environment. */
export interface HttpEnvSettings {
  timeoutMs?: number;
  attempts?: number;
}

/**
 * Read `MARKETPIPE_HTTP_TIMEOUT` (seconds, default 30) and `MARKETPIPE_HTTP_ATTEMPTS` (default 5).
 * Throws {@link UsageError} for bad values.
 */
export function httpSettingsFromEnv(env: Record<string, string | undefined>): HttpEnvSettings {
  const settings: HttpEnvSettings = {};
  const timeout = env.MARKETPIPE_HTTP_TIMEOUT;
  if (timeout !== undefined && timeout !== "") {
    settings.timeoutMs = Math.round(
      parseNumberOption(timeout, "MARKETPIPE_HTTP_TIMEOUT", 0.01, 3_600) * 1000,
    );
  }
  const attempts = env.MARKETPIPE_HTTP_ATTEMPTS;
  if (attempts !== undefined && attempts !== "") {
    settings.attempts = parseIntOption(attempts, "MARKETPIPE_HTTP_ATTEMPTS", 1, 20);
  }
  return settings;
}

/**
 * The base URL from `<PROVIDER>_BASE_URL` or the default, checked and without a trailing slash.
 * Throws {@link UsageError} when the variable is not an http(s) URL.
 */
export function baseUrlFromEnv(
  env: Record<string, string | undefined>,
  name: string,
  fallback: string | undefined,
): string | undefined {
  const value = env[name];
  const text = value === undefined || value === "" ? fallback : value;
  if (text === undefined) return undefined;
  const protocol = URL.parse(text)?.protocol;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new UsageError(`Invalid ${name} "${redact(text, [])}": expected an http(s) URL`);
  }
  return text.replace(/\/+$/, "");
}

/** The first of `names` that is set and not empty in `env`. */
export function firstEnv(
  env: Record<string, string | undefined>,
  names: readonly string[],
): string | undefined {
  return names.map((name) => env[name]).find((value) => value !== undefined && value !== "");
}

/**
 * A check that each paging cursor (`next_page_token`, `next_url`) of one paged fetch is new: a
 * repeated one is a `ProviderError` naming `path`, since paging would never end.
 */
export function cursorGuard(
  http: HttpClient,
  name: string,
): (cursor: string, path: string) => void {
  const seen = new Set<string>();
  return (cursor, path) => {
    if (seen.has(cursor)) {
      throw new ProviderError(
        http.redact(
          `Cannot fetch ${path} from "${http.provider}": the server repeated a ${name}, ` +
            "paging would never end",
        ),
        { provider: http.provider, status: 200 },
      );
    }
    seen.add(cursor);
  };
}

/** Whether an error means the request was cancelled through its signal. */
export function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && (error === signal.reason || _isAbortError(error));
}

// Failures worth another attempt, carried through withRetry and turned into ProviderError.
class _Transient extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number | undefined,
    readonly waitMs: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A client for one provider: every request waits for the provider's rate limiter, runs with a
 * timeout, and is retried with exponential backoff and full jitter on 429, 5xx, timeouts,
 * connection errors and unparsable bodies (`attempts` in all, default 5). Other 4xx fail at once;
 * an answer `explainError` marks fatal (bad credentials) also fails every later request of this
 * client without sending it. `X-Ratelimit-Remaining: 0` holds requests until
 * `X-Ratelimit-Reset`; a 429 holds them for `Retry-After`, the reset, or at least one request
 * interval. Records `mp_requests_total`, `mp_errors_total`, `mp_request_latency_seconds` and
 * `mp_rate_limiter_waits_total` with bounded labels. Messages name the provider, the URL path
 * (never the query) and the status, with secrets masked. Every error it throws is final
 * (`retriable: false`): the retries happened here, so callers must not multiply them.
 *
 * @example
 * ```ts
 * const http = createHttpClient({ provider: "alpaca", baseUrl, perMinute: 200, headers });
 * const page = await http.get("/v2/stocks/bars", { query: { symbols: "AAPL" }, parse: checkPage });
 * ```
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { provider, metrics } = options;
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const secrets = options.secrets ?? [];
  const doFetch = options.fetch ?? globalThis.fetch;
  const now = options.now ?? (() => Date.now());
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  const retryOptions = {
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 30_000,
    random: options.random ?? Math.random,
  };
  const rateLimiter = options.rateLimiter ?? createRateLimiter({
    perMinute: options.perMinute ?? 60,
    now,
    onWait: (mode) => metrics?.rateLimiterWaits.inc({ provider, mode }),
  });
  const headers: Record<string, string> = {
    "Accept": "application/json",
    "User-Agent": "marketpipe",
    ...options.headers,
  };
  let fatal: ProviderError | undefined;

  const mask = (text: string) => redact(text, secrets);
  const fail = (
    message: string,
    extra: { status?: number; retriable?: boolean; cause?: unknown } = {},
  ) =>
    new ProviderError(mask(message), {
      provider,
      status: extra.status,
      retriable: extra.retriable ?? false,
      cause: extra.cause === undefined ? undefined : redactError(extra.cause, secrets),
    });

  async function get<T>(path: string, request: RequestOptions<T>): Promise<T> {
    if (fatal) throw fatal;
    const url = _buildUrl(baseUrl, path, request.query);
    const what = `Cannot fetch ${url.pathname} from "${provider}"`;
    const signal = request.signal;
    let lastTransient: _Transient | undefined;
    let attemptsMade = 0;
    try {
      return await withRetry(async (attempt) => {
        attemptsMade = attempt;
        if (fatal) throw fatal;
        await rateLimiter.acquire(signal);
        return await attemptOnce(url, what, request, attempt);
      }, {
        attempts,
        signal,
        ...retryOptions,
        isRetriable: (error) => error instanceof _Transient,
        // A 429 already paused the shared limiter, which the next attempt waits for.
        retryAfterMs: (error) => error instanceof _Transient ? error.waitMs : undefined,
        onRetry: ({ error }) => {
          lastTransient = error as _Transient;
        },
      });
    } catch (error) {
      if (isAbort(error, signal)) throw signal!.reason;
      if (error instanceof _Transient) {
        throw fail(
          `${what}: ${error.message}${attemptsMade > 1 ? ` after ${attemptsMade} attempts` : ""}`,
          { status: error.status, cause: error.cause ?? lastTransient?.cause },
        );
      }
      throw error;
    }
  }

  /**
   * One attempt: send, honour the rate-limit headers, then read the answer by its status. Throws
   * a {@link _Transient} for what is worth another attempt, a final `ProviderError` otherwise.
   */
  async function attemptOnce<T>(
    url: URL,
    what: string,
    request: RequestOptions<T>,
    attempt: number,
  ): Promise<T> {
    const started = now();
    const feed = request.feed ?? "";
    const record = (status: number | undefined, errorCode?: string) => {
      if (!metrics) return;
      const statusClass = status === undefined ? "none" : `${Math.floor(status / 100)}xx`;
      metrics.requests.inc({ provider, feed, status: statusClass });
      metrics.requestLatency.observe({ provider, feed }, (now() - started) / 1000);
      if (errorCode !== undefined) metrics.errors.inc({ provider, feed, code: errorCode });
    };
    try {
      const { status, text, headers: answerHeaders } = await _fetchText(doFetch, url, {
        headers,
        timeoutMs,
        signal: request.signal,
      });
      const hints = readRateLimitHeaders(answerHeaders, now());
      if (hints.remaining !== undefined && hints.remaining <= 0 && hints.resetAt !== undefined) {
        rateLimiter.pauseUntil(hints.resetAt, "headers");
      }
      if (status === 429 || status >= 500) throw overloaded(status, text, hints, attempt);
      if (status < 200 || status >= 300) {
        const accepted = request.accept?.(status, text);
        if (accepted === undefined) {
          record(status, String(status));
          throw refused(what, status, text);
        }
        record(status);
        return accepted;
      }
      const body = request.body === "text" ? text : _parseJson(status, text);
      let value: T;
      try {
        value = request.parse(body);
      } catch (error) {
        record(status, "shape");
        throw fail(`${what}: HTTP ${status} with an unexpected body: ${_firstLine(error)}`, {
          status,
          cause: error,
        });
      }
      record(status);
      return value;
    } catch (error) {
      if (error instanceof _Transient) record(error.status, error.code);
      throw error;
    }
  }

  /** The retriable failure of a 429 or 5xx answer; a 429 also pauses the shared limiter. */
  function overloaded(
    status: number,
    text: string,
    hints: RateLimitHints,
    attempt: number,
  ): _Transient {
    let waitMs = hints.retryAfterMs ??
      (status === 429 && hints.resetAt !== undefined
        ? Math.max(0, hints.resetAt - now())
        : undefined);
    if (status === 429) {
      // Without a hint, back off by at least one request interval at the configured rate.
      waitMs ??= Math.max(backoffDelay(attempt, retryOptions), rateLimiter.intervalMs);
      rateLimiter.pauseUntil(now() + waitMs, "429");
      waitMs = 0;
    }
    return new _Transient(
      `HTTP ${status}${_detail(_serverMessage(text))}`,
      String(status),
      status,
      waitMs,
    );
  }

  /** The final error of any other non-2xx answer; a fatal one fails every later request too. */
  function refused(what: string, status: number, text: string): ProviderError {
    const message = _serverMessage(text);
    const explanation = options.explainError?.(status, message);
    const error = fail(
      `${what}: HTTP ${status}${_detail(message)}${
        explanation?.hint ? `: ${explanation.hint}` : ""
      }`,
      { status },
    );
    if (explanation?.fatal) fatal = error;
    return error;
  }

  return { provider, baseUrl, rateLimiter, get, redact: mask };
}

/**
 * GET `url` and read the whole body within `timeoutMs`. A timeout, a failed connection or a torn
 * body is a {@link _Transient}; a cancellation through `signal` throws the signal's reason.
 */
async function _fetchText(
  fetch: typeof globalThis.fetch,
  url: URL,
  options: { headers: Record<string, string>; timeoutMs: number; signal?: AbortSignal },
): Promise<{ status: number; text: string; headers: Headers }> {
  const { timeoutMs, signal } = options;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException("request timed out", "TimeoutError"));
  }, timeoutMs);
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let status: number | undefined;
  try {
    const response = await fetch(url, { headers: options.headers, signal: controller.signal });
    status = response.status;
    return { status, text: await response.text(), headers: response.headers };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new _Transient(
      timedOut
        ? `no answer within ${_seconds(timeoutMs)}`
        : status === undefined
        ? `connection failed (${_firstLine(error)})`
        : `HTTP ${status} body cut off (${_firstLine(error)})`,
      timedOut ? "timeout" : "network",
      status,
      undefined,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The JSON of a 2xx body; a body that does not parse is worth another attempt. */
function _parseJson(status: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new _Transient(
      `HTTP ${status} with a body that is not JSON (${text.length} bytes: ${
        JSON.stringify(_excerpt(text, 40))
      })`,
      "parse",
      status,
      undefined,
      { cause: error },
    );
  }
}

function _buildUrl(
  baseUrl: string,
  path: string,
  query: RequestOptions<unknown>["query"],
): URL {
  const url = new URL(baseUrl + (path.startsWith("/") ? path : `/${path}`));
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) url.searchParams.set(name, String(value));
  }
  return url;
}

/** The message of an error answer: JSON `message`/`error`/`detail`, else the text's first line. */
function _serverMessage(text: string): string {
  const trimmed = text.trim();
  if (trimmed === "") return "";
  try {
    const body = JSON.parse(trimmed);
    if (body && typeof body === "object") {
      for (const key of ["message", "error", "detail", "Error Message", "Information"]) {
        const value = (body as Record<string, unknown>)[key];
        if (typeof value === "string" && value !== "") return _excerpt(value, 200);
      }
    }
  } catch {
    // Not JSON: plain text, as IEX answers.
  }
  return _excerpt(trimmed.split("\n")[0], 200);
}

function _detail(message: string): string {
  return message === "" ? "" : ` ${JSON.stringify(message)}`;
}

function _excerpt(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}

function _firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Deno's fetch says only "fetch failed"; what failed is in the cause.
  if (error instanceof Error && error.cause !== undefined && message === "fetch failed") {
    return `${message}: ${_firstLine(error.cause)}`;
  }
  return message.split("\n")[0];
}

function _seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(2)} s`;
}

function _isAbortError(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}
