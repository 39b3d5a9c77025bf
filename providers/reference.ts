/**
 * Reference sources for the symbol master: a plain registry of the sources `symbols update
 * --source` accepts, each turning its API or files into dated {@link ReferenceSnapshot}s
 * (providers/REFERENCE.md).
 *
 * @module
 */
import { isValidDate } from "../core/calendar.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import type { Metrics } from "../core/metrics.ts";
import {
  REFERENCE_SOURCES,
  type ReferenceSnapshot,
  type ReferenceSource,
} from "../core/reference.ts";
import { checkAlpacaReference, fetchAlpacaReference } from "./reference_alpaca.ts";
import { fakeReferenceSnapshots } from "./reference_fake.ts";
import { fetchNasdaqReference } from "./reference_nasdaq.ts";
import { checkPolygonReference, fetchPolygonReference } from "./reference_polygon.ts";

export { servesHistoricalTickers, withTickerHistory } from "./ticker_history.ts";

/** Options of {@link fetchReference}. */
export interface ReferenceFetchOptions {
  /** The date the snapshot should describe, `YYYY-MM-DD` (the CLI defaults it to today). */
  asOf: string;
  /** nasdaq: contents of `nasdaqlisted.txt` / `otherlisted.txt` files the CLI read. */
  texts?: { name: string; text: string }[];
  /** nasdaq: URLs of those files to fetch (default the two on nasdaqtrader.com, when no texts). */
  urls?: string[];
  /** Credentials and base URLs, like the bar providers read them. */
  env: Record<string, string | undefined>;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  now?: () => number;
  /** Requests per minute (`--rate-limit`); default each source's free-plan limit. */
  rateLimit?: number;
  metrics?: Metrics;
  /** For tests: backoff of the HTTP client (default 500 ms) and its jitter source. */
  baseDelayMs?: number;
  random?: () => number;
}

/**
 * Throw a {@link UsageError} when `source` is unknown or cannot run with these settings
 * (missing credentials, a bad base URL, files given to a source that reads none). No I/O, so the
 * CLI can call it before opening the data directory.
 */
export function checkReferenceSource(
  source: string,
  options: Pick<ReferenceFetchOptions, "env" | "texts" | "urls">,
): asserts source is ReferenceSource {
  if (!(REFERENCE_SOURCES as readonly string[]).includes(source)) {
    throw new UsageError(
      `Unknown reference source "${source}": expected one of ${REFERENCE_SOURCES.join(", ")}${
        didYouMean(source, REFERENCE_SOURCES)
      }`,
    );
  }
  if (
    source !== "nasdaq" && ((options.texts?.length ?? 0) > 0 || (options.urls?.length ?? 0) > 0)
  ) {
    throw new UsageError(
      `Cannot read files or URLs for reference source "${source}": --file and --url apply to ` +
        `--source nasdaq only`,
    );
  }
  if (source === "alpaca") checkAlpacaReference(options.env);
  if (source === "polygon") checkPolygonReference(options.env);
}

/**
 * Fetch what `source` says on `options.asOf`: one snapshot for alpaca, polygon and nasdaq; for
 * fake every fixed snapshot dated on or before `asOf`, oldest first (possibly none). Throws
 * {@link UsageError} for bad input (an unknown source, a malformed nasdaq file naming its line)
 * and `ProviderError` for API failures and bad payloads (naming the JSON field), secrets masked.
 *
 * @example
 * ```ts
 * const snapshots = await fetchReference("polygon", { asOf: "2024-06-28", env: Deno.env.toObject() });
 * store.applySnapshots(snapshots);
 * ```
 */
export async function fetchReference(
  source: ReferenceSource,
  options: ReferenceFetchOptions,
): Promise<ReferenceSnapshot[]> {
  checkReferenceSource(source, options);
  if (!isValidDate(options.asOf)) {
    throw new UsageError(`Invalid --as-of "${options.asOf}": expected YYYY-MM-DD`);
  }
  options.signal?.throwIfAborted();
  switch (source) {
    case "fake":
      return fakeReferenceSnapshots(options.asOf);
    case "alpaca":
      return [await fetchAlpacaReference(options)];
    case "polygon":
      return [await fetchPolygonReference(options)];
    case "nasdaq":
      return [await fetchNasdaqReference(options)];
  }
}
