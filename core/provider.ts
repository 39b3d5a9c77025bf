import type { Bar, Timeframe } from "./types.ts";

/** What to fetch: bars for some symbols over inclusive exchange-local dates. */
export interface FetchRequest {
  symbols: string[];
  timeframe: Timeframe;
  /** First trading date, `YYYY-MM-DD`, inclusive. */
  start: string;
  /** Last trading date, `YYYY-MM-DD`, inclusive. */
  end: string;
  feed?: string;
  adjustment?: string;
  /** Bars per request for providers that page (`--batch-size`); each provider has a default. */
  pageSize?: number;
}

/** Options every fetch accepts. */
export interface FetchOptions {
  signal?: AbortSignal;
}

/**
 * A market-data source. Returns normalized bars sorted by symbol then `ts`, only for the
 * requested dates, without duplicates. Throws {@link ProviderError} on provider failures.
 *
 * @example
 * ```ts
 * const bars = await provider.fetchBars(
 *   { symbols: ["AAPL"], timeframe: "1m", start: "2024-03-04", end: "2024-03-08" },
 *   { signal },
 * );
 * ```
 */
export interface Provider {
  readonly name: string;
  /** How many symbols one request may carry (Alpaca's multi-symbol endpoint); default 1. */
  readonly maxSymbolsPerRequest?: number;
  fetchBars(request: FetchRequest, options?: FetchOptions): Promise<Bar[]>;
}

/** An environment variable a provider reads. */
export interface ProviderEnvVar {
  name: string;
  description: string;
  secret: boolean;
  required: boolean;
  /** Other names read when this one is not set (e.g. the Alpaca SDK's `APCA_API_KEY_ID`). */
  aliases?: readonly string[];
}

/** Static description of a provider, shown by `marketpipe providers`. */
export interface ProviderInfo {
  name: string;
  description: string;
  status: "active" | "retired";
  env: ProviderEnvVar[];
  timeframes: readonly Timeframe[];
  feeds: readonly string[];
  defaultFeed: string;
  adjustments: readonly string[];
  notes?: string;
  /** Default client-side limit in requests per minute (`--rate-limit` overrides it). */
  rateLimitPerMinute?: number;
}

/** Error raised by a provider; callers branch on `retriable`. */
export class ProviderError extends Error {
  readonly provider: string;
  readonly status: number | undefined;
  readonly retriable: boolean;
  constructor(
    message: string,
    options: { provider: string; status?: number; retriable?: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "ProviderError";
    this.provider = options.provider;
    this.status = options.status;
    this.retriable = options.retriable ?? false;
  }
}
