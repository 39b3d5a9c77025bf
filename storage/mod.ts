/**
 * Storage: the only code that touches DuckDB, Parquet files and SQLite.
 *
 * @module
 */
export { BAR_COLUMNS, createBarViews, openDuckDB, sqlIdent, sqlString } from "./duckdb.ts";
export { readTextFileCapped } from "./fs.ts";
export {
  BARS_DIR,
  LAYOUT_VERSION,
  partitionDir,
  type PartitionTree,
  QUARANTINE_DIR,
  timeframeDir,
} from "./layout.ts";
export {
  type BarFile,
  listFiles,
  listPartitionFiles,
  listStoredSymbols,
  manifestVersion,
} from "./manifest.ts";
export {
  type BarSeries,
  isReadOnly,
  META_FILE,
  MetaStore,
  migrate,
  type MigrationStatus,
  migrationStatus,
  openDatabase,
  openExistingMigrated,
  openMigrated,
  openReadOnlyDatabase,
  type OperationScope,
  parseSourceLabel,
  sourceLabel,
} from "./meta.ts";
export { type Migration, MIGRATIONS } from "./migrations.ts";
export { SCHEMA_VERSION, writeBars } from "./partitions.ts";
export {
  type MemberInterval,
  ReferenceStore,
  type TickerSegment,
  UNIVERSE_NAME_PATTERN,
  type UniverseInfo,
} from "./reference.ts";
export {
  DEFAULT_QUERY_TIMEOUT_MS,
  openQueryEngine,
  type QueryEngine,
  QueryTimeoutError,
} from "./query_engine.ts";
export { QueryRejectedError, QuerySqlError } from "./query_guard.ts";
export { REFERENCE_TABLES, referenceVersion } from "./query_reference.ts";
export { countQueryRows, type QueryResult, runQuery, writeQueryParquet } from "./query.ts";
export {
  checkExportColumns,
  EXPORT_FORMATS,
  exportBars,
  type ExportBarsOptions,
  type ExportFormat,
  type ExportProgress,
  type ExportRequest,
  type ExportSummary,
} from "./export.ts";
export { formatCsv, formatJson, formatTable } from "./query_format.ts";
export {
  type BarColumns,
  type BarLineageColumns,
  barsPageEnd,
  type BarsRequest,
  exportBarsParquet,
  readBars,
  type ReadBarsOptions,
} from "./query_bars.ts";
export {
  type CorruptSeriesFile,
  type StoredBarSeries,
  storedBarSeries,
  type StoredInventory,
  storedInventory,
} from "./query_inventory.ts";
export {
  checkOutputPath,
  type CheckOutputPathOptions,
  EXPORTS_DIR,
  writeFileAtomic,
} from "./output.ts";
export {
  checkParquetFile,
  type CorruptFile,
  corruptFileError,
  corruptFileMessage,
} from "./corrupt.ts";
export {
  CORRUPT_DIR,
  type CorruptScan,
  type CorruptStoredFile,
  findCorruptFiles,
  moveCorruptFiles,
  type MovedFile,
} from "./repair.ts";
export {
  dirOwner,
  EXPORT_DIR_PREFIX,
  makeExportDir,
  makeOwnedDir,
  ownedDirName,
  ownerStatus,
  removeDeadOwnedDirs,
  type RemoveDeadOwnedDirsOptions,
} from "./owned_dirs.ts";
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
  METRICS_HISTORY_FILE,
  openTelemetry,
  type ScrapeOptions,
  type Telemetry,
  type TelemetryOptions,
} from "./telemetry.ts";
export {
  AGGREGATE_ID_PREFIX,
  AGGREGATE_TIMEFRAMES,
  aggregatePartitions,
  type AggregatePartitionsOptions,
  type AggregationStore,
  type AggregationSummary,
  type DailySession,
  type TimeframeAggregation,
} from "./aggregate.ts";
export { type CrossCheckBars, readCrossCheckBars } from "./aggregate_check.ts";
export {
  compactPartitions,
  type CompactPartitionsOptions,
  type CompactSummary,
  DEFAULT_COMPACT_THRESHOLD,
  replacePartition,
} from "./partitions.ts";
export {
  pruneBars,
  type PrunedPartition,
  type PruneOptions,
  type PruneSelection,
  type PruneSummary,
} from "./prune.ts";
export {
  type QuarantinedBar,
  quarantineDir,
  readQuarantine,
  writeQuarantine,
} from "./quarantine.ts";
export {
  findValidationReport,
  listValidationReports,
  type NewValidationReport,
  parseCsv,
  readValidationReport,
  REPORT_CSV_HEADER,
  type ReportRow,
  REPORTS_DIR,
  saveValidationReport,
  type ValidationReportRecord,
} from "./reports.ts";
export { readBarRows, type StoredRow } from "./reports_bars.ts";
export {
  findStoredGaps,
  type FindStoredGapsOptions,
  readDayCounts,
  readKnownEmptyDays,
  type StoredGaps,
} from "./reports_gaps.ts";
export { readStoredDayCounts } from "./coverage.ts";
export {
  aggregateIngested,
  type AggregateIngestedOptions,
  type IngestedRange,
} from "./aggregate_ingested.ts";
export { isFile, pathExists } from "./fs.ts";
export {
  assertLayoutCurrent,
  type DataLayout,
  detectLayout,
  type Layout1File,
  type LayoutMigrationResult,
  type LayoutStatus,
  layoutStatus,
  listLayout1Files,
  migrateLayout,
  type MigrateLayoutOptions,
  type MigrateLayoutProgress,
  type MigrateStep,
  writeLayoutFile,
} from "./migrate_layout.ts";
