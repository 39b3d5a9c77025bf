/** Backoff settings for {@link withRetry}. */
export interface RetryOptions {
  /** Total attempts including the first. Default 5. */
  attempts?: number;
  /** Delay before the second attempt, doubled each time. Default 500 ms. */
  baseDelayMs?: number;
  /** Upper bound for one delay. Default 30 s. */
  maxDelayMs?: number;
  /** Which errors are worth another attempt. Default: none. */
  isRetriable?: (error: unknown) => boolean;
  /** A server-provided wait in ms for this error (e.g. Retry-After), used instead of backoff. */
  retryAfterMs?: (error: unknown) => number | undefined;
  /** Called before each wait, e.g. for logging or metrics. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  signal?: AbortSignal;
  /** Source of jitter in [0, 1). Default Math.random. */
  random?: () => number;
}

/** Exponential backoff with full jitter: a random delay in [0, min(max, base * 2^(attempt-1))]. */
export function backoffDelay(attempt: number, options: RetryOptions = {}): number {
  const base = options.baseDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30_000;
  const ceiling = Math.min(max, base * 2 ** (attempt - 1));
  return Math.round(ceiling * (options.random ?? Math.random)());
}

/** Run `fn`, retrying retriable failures with backoff; rethrows the last error. */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1;; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || options.signal?.aborted || !options.isRetriable?.(error)) {
        throw error;
      }
      const delayMs = options.retryAfterMs?.(error) ?? backoffDelay(attempt, options);
      options.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs, options.signal);
    }
  }
}

/** Wait `ms`, rejecting with the signal's reason if it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
