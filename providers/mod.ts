/**
 * Market-data providers: a plain registry of factories, one file per provider.
 *
 * @module
 */
import type { Metrics } from "../core/metrics.ts";
import type { Provider, ProviderInfo } from "../core/provider.ts";
import { fake, fakeInfo } from "./fake.ts";

export { fake, fakeInfo, generateFakeDay } from "./fake.ts";

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
}

/** A registered provider: what it is and how to create it. */
export interface ProviderFactory {
  info: ProviderInfo;
  create(settings: ProviderSettings): Provider;
}

/** All providers by name. */
export const providers = {
  fake: {
    info: fakeInfo,
    create: ({ params }) =>
      fake({
        seed: typeof params.seed === "number" ? params.seed : undefined,
        gapRate: typeof params.gapRate === "number" ? params.gapRate : undefined,
      }),
  },
} satisfies Record<string, ProviderFactory>;

/** Names of the registered providers. */
export const PROVIDER_NAMES: string[] = Object.keys(providers);

/** The factory of a provider by name, or undefined. */
export function providerFactory(name: string): ProviderFactory | undefined {
  return (providers as Record<string, ProviderFactory>)[name];
}
