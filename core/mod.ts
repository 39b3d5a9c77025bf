/**
 * Core: plain types, the exchange calendar, timeframes, config resolution, errors and the
 * ingest engine. Pure logic; no DuckDB, SQLite or network.
 *
 * @module
 */
export { aggregateBars, bucketStart } from "./aggregate.ts";
export * from "./calendar.ts";
export {
  type Clock,
  clockFromEnv,
  fixedClock,
  includesExtendedHours,
  isSessionClosed,
  lastCompletedSession,
  NOW_ENV,
  type SessionCloseOptions,
  systemClock,
} from "./clock.ts";
export {
  parseConfigFile,
  parseDuration,
  parseIntOption,
  parseNumberOption,
  resolveOptions,
} from "./config.ts";
export type { OptionSource, OptionSpec, ResolvedOptions } from "./config.ts";
export {
  closest,
  CorruptFileError,
  didYouMean,
  errorChain,
  errorMessage,
  findStorageError,
  StorageError,
  UsageError,
} from "./errors.ts";
export {
  batchTasks,
  cleanBars,
  DEFAULT_BATCH_BARS,
  ingest,
  MAX_BARS_PER_DAY,
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
export {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitHints,
  type RateLimitWaitMode,
  readRateLimitHeaders,
} from "./ratelimit.ts";
export { backoffDelay, type RetryOptions, sleep, withRetry } from "./retry.ts";
export { MASK, maskSecret, redact, redactError, redactUrl, SECRET_PARAMS } from "./secrets.ts";
export { isValidSymbol, parseSymbols, parseSymbolsFile } from "./symbols.ts";
export {
  ASSET_CLASSES,
  type AssetClass,
  checkSnapshot,
  type MergeCounts,
  type MergePlan,
  mergeSnapshot,
  REFERENCE_SOURCES,
  type ReferenceSnapshot,
  type ReferenceSource,
  SOURCE_PRIORITY,
  SYMBOL_STATUSES,
  type SymbolRecord,
  type SymbolStatus,
  type SymbolVersion,
  TRACKED_FIELDS,
} from "./reference.ts";
export {
  type Filter,
  FILTER_FIELDS,
  type FilterComparison,
  type FilterField,
  type FilterValue,
  matchesFilter,
  MAX_FILTER_LENGTH,
  parseFilter,
} from "./universe_filter.ts";
export { type Bar, type Session, type Timeframe, TIMEFRAME_MINUTES, TIMEFRAMES } from "./types.ts";
export {
  createValidator,
  type EffectiveRule,
  effectiveRules,
  type Finding,
  parseValidationSettings,
  RULE_IDS,
  type RuleSettings,
  SEVERITIES,
  type Severity,
  validateBars,
  type ValidateOptions,
  VALIDATION_RULES,
  validationConfigText,
  type ValidationRule,
  type ValidationSettings,
} from "./validate.ts";
export { crossCheckBars, type CrossCheckOptions, type CrossCheckResult } from "./validate_cross.ts";
export {
  type DayCount,
  expectedRegularBars,
  findGaps,
  type FindGapsOptions,
  type LowCoverageDay,
  type SymbolGaps,
  tradingDayRanges,
  tradingDayRuns,
} from "./validate_gaps.ts";
