/**
 * Market-data providers: a plain registry of factories, one file per provider.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import type { Metrics } from "../core/metrics.ts";
import type { Provider, ProviderInfo } from "../core/provider.ts";
import type { Timeframe } from "../core/types.ts";
import { alpacaFactory } from "./alpaca.ts";
import { fake, fakeInfo } from "./fake.ts";
import { finnhubFactory } from "./finnhub.ts";
import { iexFactory } from "./iex.ts";
import { polygonFactory } from "./polygon.ts";

export { alpaca, alpacaInfo, type AlpacaOptions } from "./alpaca.ts";
export { fake, fakeInfo, generateFakeDay } from "./fake.ts";
export { finnhub, finnhubInfo, type FinnhubOptions } from "./finnhub.ts";
export {
  createHttpClient,
  type HttpClient,
  type HttpClientOptions,
  type HttpProviderOptions,
} from "./http.ts";
export { iex, iexInfo, type IexOptions } from "./iex.ts";
export { polygon, polygonInfo, type PolygonOptions } from "./polygon.ts";
export { checkReferenceSource, fetchReference, type ReferenceFetchOptions } from "./reference.ts";
export { FAKE_REFERENCE_DATES, fakeReferenceSnapshots } from "./reference_fake.ts";
export {
  assetClassFromName,
  NASDAQ_DIRECTORY_URLS,
  type NasdaqDirectory,
  parseNasdaqDirectory,
} from "./reference_nasdaq.ts";
export {
  servesHistoricalTickers,
  type TickerSegment,
  type TickerSegments,
  withTickerHistory,
} from "./ticker_history.ts";

/** Settings a provider factory may use; each provider reads what it needs. */
export interface ProviderSettings {
  /** Environment variables (credentials, base URLs). */
  env: Record<string, string | undefined>;
  /** Provider-specific options from flags or config, e.g. the fake provider's seed. */
  params: Record<string, string | number | boolean>;
  /** Where HTTP providers record requests, errors, latency and rate-limiter waits. */
  metrics?: Metrics;
  /** Requests per minute override (`--rate-limit`). */
  rateLimit?: number;
  /** Decides which sessions have closed (the fake provider makes bars of those only). */
  clock?: Clock;
}

/** The source options of a job, which a provider may refuse before anything is written. */
export interface ProviderCheckRequest {
  timeframe: Timeframe;
  feed: string;
  adjustment: string;
}

/** A registered provider: what it is and how to create it. */
export interface ProviderFactory {
  info: ProviderInfo;
  /**
   * Throw a `UsageError` when the provider cannot work with these settings (missing
   * credentials, a bad base URL) or cannot serve `request`. Cheap, no I/O; the CLI calls it
   * before opening the data directory. `create` runs the same checks on the settings.
   */
  check?(settings: ProviderSettings, request?: ProviderCheckRequest): void;
  create(settings: ProviderSettings): Provider;
}

/** All providers by name. */
export const providers = {
  fake: {
    info: fakeInfo,
    // Bars made in-process: no HTTP requests, so no mp_requests_total or latency to count.
    create: ({ params, clock }) =>
      fake({
        seed: typeof params.seed === "number" ? params.seed : undefined,
        gapRate: typeof params.gapRate === "number" ? params.gapRate : undefined,
        corruptRate: typeof params.corruptRate === "number" ? params.corruptRate : undefined,
        now: clock,
      }),
  },
  alpaca: alpacaFactory,
  polygon: polygonFactory,
  finnhub: finnhubFactory,
  iex: iexFactory,
} satisfies Record<string, ProviderFactory>;

/** Names of the registered providers. */
export const PROVIDER_NAMES: string[] = Object.keys(providers);

/** The factory of a provider by name, or undefined. */
export function providerFactory(name: string): ProviderFactory | undefined {
  // Own keys only: "constructor" or "toString" must not find Object.prototype's members.
  return Object.hasOwn(providers, name)
    ? (providers as Record<string, ProviderFactory>)[name]
    : undefined;
}
