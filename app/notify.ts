/**
 * The scheduler's webhook (`notify: {url: ...}` in the config file): a JSON POST on a failed or
 * partial scheduled run and when series go stale, retried with backoff, every text in it (and
 * in the log line of a failed delivery) with secrets masked.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import { backoffDelay, sleep as realSleep } from "../core/retry.ts";
import type { NotifyConfig } from "../core/schedule.ts";
import { redact, redactUrl } from "../core/secrets.ts";

/** What the webhook receives, as JSON. */
export type NotifyEvent =
  | {
    event: "run.failed" | "run.partial";
    schedule: string;
    command: string;
    /** The fire time the run was for, ISO 8601 UTC. */
    plannedAt: string;
    /** Attempts made, the last one included. */
    attempts: number;
    error: string | null;
    jobIds: string[];
  }
  | {
    event: "series.stale";
    series: {
      symbol: string;
      timeframe: string;
      last: string;
      expected: string;
      missedSessions: number;
    }[];
  };

/**
 * The webhook's JSON body of `event`, snake_case like every record MarketPipe prints or serves:
 * `{"event": "run.failed", "schedule", "command", "planned_at", "attempts", "error", "job_ids"}` or
 * `{"event": "series.stale", "series": [{"symbol", "timeframe", "last", "expected",
 * "missed_sessions"}]}`; the notifier adds `at` and `host`.
 */
export function notifyEventJson(event: NotifyEvent): Record<string, unknown> {
  if (event.event === "series.stale") {
    return {
      event: event.event,
      series: event.series.map((s) => ({
        symbol: s.symbol,
        timeframe: s.timeframe,
        last: s.last,
        expected: s.expected,
        missed_sessions: s.missedSessions,
      })),
    };
  }
  return {
    event: event.event,
    schedule: event.schedule,
    command: event.command,
    planned_at: event.plannedAt,
    attempts: event.attempts,
    error: event.error,
    job_ids: event.jobIds,
  };
}

/** The outcome of one notification. */
export interface Delivery {
  delivered: boolean;
  attempts: number;
  /** Why the last attempt failed (masked), when not delivered. */
  error?: string;
}

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  fetch?: typeof globalThis.fetch;
  /** Values masked wherever they appear (API keys, tokens); the config's header values always are. */
  secrets?: readonly string[];
  /** Where a failed delivery is reported, one line. */
  log?: (line: string) => void;
  /** Delay before the first retry, doubled per retry (full jitter); default 1 s. */
  baseDelayMs?: number;
  /** Longest one attempt may take; default 10 s. */
  timeoutMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Jitter source; default Math.random. */
  random?: () => number;
  /** Added to each body as `host`, to tell servers apart. */
  host?: string;
  now?: () => number;
}

/** Sends {@link NotifyEvent}s; resolves (never rejects) with what happened. */
export type Notifier = (event: NotifyEvent, signal?: AbortSignal) => Promise<Delivery>;

/**
 * A notifier POSTing each event as JSON (`{event, at, host, ...}`) to `config.url`, retrying
 * network errors, 429 and 5xx answers up to `config.retries` times. A 4xx answer is not retried.
 *
 * @example
 * ```ts
 * const notify = createNotifier({ url: "https://hooks.example/x", headers: {}, retries: 3 });
 * await notify({ event: "series.stale", series: [] });
 * ```
 */
export function createNotifier(config: NotifyConfig, options: NotifierOptions = {}): Notifier {
  const fetch = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? Date.now;
  const secrets = [...(options.secrets ?? []), ...Object.values(config.headers)];
  const mask = (text: string) => redact(text, secrets);
  const shownUrl = mask(redactUrl(config.url));
  return async (event, signal) => {
    const body = mask(JSON.stringify({
      ...notifyEventJson(event),
      at: new Date(now()).toISOString(),
      ...(options.host === undefined ? {} : { host: options.host }),
    }));
    let error = "";
    const attempts = config.retries + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let retriable = true;
      try {
        const response = await fetch(config.url, {
          method: "POST",
          headers: { "Content-Type": "application/json", ...config.headers },
          body,
          signal: _withTimeout(signal, options.timeoutMs ?? 10_000),
        });
        await response.body?.cancel();
        if (response.ok) return { delivered: true, attempts: attempt };
        error = `HTTP ${response.status}`;
        retriable = response.status === 429 || response.status >= 500;
      } catch (caught) {
        if (signal?.aborted) {
          error = "cancelled";
          retriable = false;
        } else {
          error = mask(errorMessage(caught).split("\n")[0]);
        }
      }
      if (!retriable || attempt === attempts) {
        const message = `Cannot notify ${shownUrl} of ${event.event}: ${error} after ${attempt} ${
          attempt === 1 ? "attempt" : "attempts"
        }`;
        options.log?.(`warning: ${message}`);
        return { delivered: false, attempts: attempt, error: message };
      }
      try {
        await sleep(
          backoffDelay(attempt, {
            baseDelayMs: options.baseDelayMs ?? 1_000,
            maxDelayMs: 60_000,
            random: options.random,
          }),
          signal,
        );
      } catch {
        return { delivered: false, attempts: attempt, error: "cancelled" };
      }
    }
    return { delivered: false, attempts, error };
  };
}

/**
 * Values of environment variables that look like credentials (names with KEY, SECRET, TOKEN or
 * PASSWORD), for {@link NotifierOptions.secrets}.
 */
export function secretValuesOf(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .filter(([name, value]) =>
      /KEY|SECRET|TOKEN|PASSWORD/i.test(name) && value !== undefined && value !== ""
    )
    .map(([, value]) => value!);
}

function _withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}
