import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The metric set of MarketPipe. Labels are bounded: provider, feed, status code class, error
 * code, rule, severity, operation, timeframe, job outcome. Symbols appear only in the data
 * freshness gauge, capped by configuration. Never a secret.
 */
export interface Metrics {
  registry: Registry;
  requests: Counter<"provider" | "feed" | "status">;
  errors: Counter<"provider" | "feed" | "code">;
  requestLatency: Histogram<"provider" | "feed">;
  rateLimiterWaits: Counter<"provider" | "mode">;
  ingestRows: Counter<"provider" | "timeframe">;
  validationErrors: Counter<"rule" | "severity">;
  processingTime: Histogram<"operation">;
  jobs: Counter<"outcome">;
  jobsRunning: Gauge<string>;
}

/**
 * Create a fresh registry with every MarketPipe metric registered. One per process, created in
 * main.ts and passed down; tests create their own.
 *
 * @example
 * ```ts
 * const metrics = createMetrics();
 * metrics.ingestRows.inc({ provider: "fake", timeframe: "1m" }, 960);
 * console.log(await metrics.registry.metrics());
 * ```
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: "mp_requests_total",
      help: "HTTP requests to market-data providers by response status",
      labelNames: ["provider", "feed", "status"],
      registers,
    }),
    errors: new Counter({
      name: "mp_errors_total",
      help: "Provider request failures by error code (HTTP status, timeout, network, parse)",
      labelNames: ["provider", "feed", "code"],
      registers,
    }),
    requestLatency: new Histogram({
      name: "mp_request_latency_seconds",
      help: "Latency of provider HTTP requests",
      labelNames: ["provider", "feed"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rateLimiterWaits: new Counter({
      name: "mp_rate_limiter_waits_total",
      help: "Times a request waited for the rate limiter (mode: local bucket, server headers, 429)",
      labelNames: ["provider", "mode"],
      registers,
    }),
    ingestRows: new Counter({
      name: "mp_ingest_rows_total",
      help: "Bars written to storage by ingest (new or updated)",
      labelNames: ["provider", "timeframe"],
      registers,
    }),
    validationErrors: new Counter({
      name: "mp_validation_errors_total",
      help: "Validation findings by rule and severity",
      labelNames: ["rule", "severity"],
      registers,
    }),
    processingTime: new Histogram({
      name: "mp_processing_time_seconds",
      help: "Duration of pipeline operations (ingest task, validate, aggregate, query)",
      labelNames: ["operation"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    jobs: new Counter({
      name: "mp_jobs_total",
      help: "Finished jobs by outcome",
      labelNames: ["outcome"],
      registers,
    }),
    jobsRunning: new Gauge({
      name: "mp_jobs_running",
      help: "Jobs running in this process",
      registers,
    }),
  };
}
