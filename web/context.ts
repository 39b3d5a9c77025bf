/**
 * What the server's routes share: the dependencies given to `createApp` and what it derives.
 *
 * @module
 */
import type { Scheduler } from "../app/scheduler.ts";
import type { Clock } from "../core/clock.ts";
import type { Store } from "../storage/mod.ts";
import type { ServedAsset } from "./assets.ts";
import type { DataSource } from "./data.ts";
import type { JobRunner } from "./jobs.ts";
import type { GuessLimiter, Limiter } from "./security.ts";
import type { ValidationReportDetail, ValidationReportSummary } from "./views.ts";

/** Validation reports, when the build stores them. */
export interface ValidationSource {
  listReports(options: { limit: number }): Promise<ValidationReportSummary[]>;
  getReport(id: string): Promise<ValidationReportDetail | undefined>;
}

/** Limits of the server; every field has a default. */
export interface AppLimits {
  /** Largest request body in bytes. Default 64 KiB. */
  maxBodyBytes: number;
  /** Longest a DuckDB read may run, in ms. Default 30 s. */
  queryTimeoutMs: number;
  /** Most rows `POST /api/query` returns. Default 10,000. */
  maxQueryRows: number;
  /** Heavy requests (DuckDB reads) running at once. Default 4. */
  heavyConcurrency: number;
  /** Heavy requests waiting for a slot; more get 503 with Retry-After. Default 64. */
  heavyQueue: number;
  /** Bars per page when `limit` is not given. Default 10,000. */
  defaultBarsLimit: number;
  /** Largest `limit` of `GET /api/bars`. Default 1,000,000. */
  maxBarsLimit: number;
  /** Most bars drawn in one chart. Default 20,000. */
  chartMaxBars: number;
}

/** The default {@link AppLimits}. */
export const DEFAULT_LIMITS: AppLimits = {
  maxBodyBytes: 64 * 1024,
  queryTimeoutMs: 30_000,
  maxQueryRows: 10_000,
  heavyConcurrency: 4,
  heavyQueue: 64,
  defaultBarsLimit: 10_000,
  maxBarsLimit: 1_000_000,
  chartMaxBars: 20_000,
};

/** Dependencies of `createApp`. */
export interface AppDeps {
  /** The data directory opened for writing (metadata and jobs). */
  store: Store;
  /** The read side (query engine and caches). */
  data: DataSource;
  /** Jobs run by this process. */
  jobs: JobRunner;
  /** The Prometheus exposition for `/metrics`. */
  scrapeMetrics: () => Promise<string>;
  /** Version shown in pages and the OpenAPI document. */
  version: string;
  /** MARKETPIPE_API_TOKEN: when set, POST and DELETE need it. */
  token?: string;
  /** With a token: reads need it too (`--auth-reads`). */
  authReads?: boolean;
  /** Refuse Host headers that are not loopback names (DNS rebinding); set when bound to loopback. */
  loopbackHostsOnly?: boolean;
  limits?: Partial<AppLimits>;
  /** The heavy-request limiter (default: one from `limits`). */
  heavy?: Limiter;
  /** Wrong tokens counted per client address (default: 10 a minute, 10,000 clients). */
  guesses?: GuessLimiter;
  /** Validation reports, when validation stores them. */
  validation?: ValidationSource;
  /** Defaults of jobs started from the web: `aggregate` as config `aggregate` sets it. */
  ingestDefaults?: { aggregate?: boolean };
  /** Decides which sessions jobs may ingest (closed ones only); default: system clock. */
  clock?: Clock;
  /** One line per request once its body is sent (`serve` without --quiet); default: none. */
  accessLog?: (line: string) => void;
  /** Where unexpected errors are logged (default: nowhere). */
  log?: (line: string) => void;
  /** The scheduler `serve` runs (set once it starts, after the app is built); none without schedules. */
  scheduler?: Scheduler;
  /** Whether the server is shutting down (`/readyz` answers 503). */
  shuttingDown?: () => boolean;
  now?: () => number;
}

/** What routes receive. */
export interface WebContext {
  deps: AppDeps;
  limits: AppLimits;
  heavy: Limiter;
  /** Wrong tokens per client, shared by `/login` and `Authorization: Bearer`. */
  guesses: GuessLimiter;
  assets: Map<string, ServedAsset>;
  now: () => number;
  /** URL of an embedded asset, with its content hash for caching. */
  asset(name: string): string;
}
