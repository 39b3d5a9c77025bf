/**
 * Storage: the only code that touches DuckDB, Parquet files and SQLite.
 *
 * @module
 */
export { BAR_COLUMNS, createBarViews, openDuckDB, sqlIdent, sqlString } from "./duckdb.ts";
export { PARTITION_FILE, partitionDir, timeframeDir } from "./layout.ts";
export {
  META_FILE,
  MetaStore,
  migrate,
  type MigrationStatus,
  migrationStatus,
  openDatabase,
  sourceLabel,
} from "./meta.ts";
export { type Migration, MIGRATIONS } from "./migrations.ts";
export { SCHEMA_VERSION, writeBars } from "./partitions.ts";
export {
  formatCsv,
  formatJson,
  formatTable,
  openQueryEngine,
  type QueryEngine,
  QueryRejectedError,
  type QueryResult,
  QuerySqlError,
  QueryTimeoutError,
  runQuery,
  writeQueryParquet,
} from "./query.ts";
export { type StorageStats, storageStats } from "./stats.ts";
export { openStore, type Store } from "./store.ts";
export {
  addMetricDeltas,
  countRunningJobs,
  type MetricSample,
  pruneMetricSamples,
  readFreshness,
  readMetricSamples,
  readMetricTotals,
  recordFreshness,
  sampleAtOrBefore,
  sampleCounts,
  type StoredSeries,
} from "./metrics_store.ts";
export {
  createTelemetry,
  legacySeries,
  openTelemetry,
  type ScrapeOptions,
  type Telemetry,
  type TelemetryOptions,
} from "./telemetry.ts";
