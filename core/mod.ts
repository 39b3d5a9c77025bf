/**
 * Core: plain types, the exchange calendar, timeframes, config resolution, errors and the
 * ingest engine. Pure logic; no DuckDB, SQLite or network.
 *
 * @module
 */
export { aggregateBars, bucketStart } from "./aggregate.ts";
export * from "./calendar.ts";
export {
  parseConfigFile,
  parseDuration,
  parseIntOption,
  parseNumberOption,
  resolveOptions,
} from "./config.ts";
export type { OptionSource, OptionSpec, ResolvedOptions } from "./config.ts";
export { closest, didYouMean, errorMessage, UsageError } from "./errors.ts";
export {
  cleanBars,
  ingest,
  partitionPeriod,
  planTasks,
  requestKeyOf,
  sourceKeyOf,
} from "./ingest.ts";
export type {
  IngestDeps,
  IngestOptions,
  IngestProgress,
  IngestRequest,
  IngestSummary,
  SymbolSummary,
} from "./ingest.ts";
export { JOB_STATUSES } from "./jobs.ts";
export type {
  IngestStore,
  JobRecord,
  JobSpec,
  JobStatus,
  NewTask,
  SourceKey,
  TaskRecord,
  TaskResult,
  TaskStatus,
  WriteResult,
} from "./jobs.ts";
export { runPool } from "./pool.ts";
export {
  type FetchOptions,
  type FetchRequest,
  type Provider,
  type ProviderEnvVar,
  ProviderError,
  type ProviderInfo,
} from "./provider.ts";
export { backoffDelay, type RetryOptions, sleep, withRetry } from "./retry.ts";
export { isValidSymbol, parseSymbols, parseSymbolsFile } from "./symbols.ts";
export { type Bar, type Session, type Timeframe, TIMEFRAME_MINUTES, TIMEFRAMES } from "./types.ts";
