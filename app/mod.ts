/**
 * Application services under both the CLI and the HTTP API: the ingest job service, the prune,
 * delete and export jobs of the server, and the one JSON shape of each record they show.
 *
 * @module
 */
export {
  type JobDeps,
  type JobOutcome,
  type JobPlan,
  planJob,
  ResumeError,
  runJob,
  type RunJobOptions,
} from "./jobs.ts";
export {
  exportFile,
  exportOperation,
  type JobProgress,
  type Operation,
  type OperationOptions,
  previewPrune,
  pruneOperation,
  runOperation,
  storedProgress,
} from "./operations.ts";
export {
  jobJson,
  masterJson,
  pruneJson,
  reportJson,
  symbolJson,
  taskJson,
  universeJson,
} from "./records.ts";
export {
  type BackfillPlan,
  planBackfill,
  type PlanBackfillOptions,
  type PlanSettings,
  planUpdate,
  type PlanUpdateOptions,
  type SeriesPlan,
} from "./update.ts";
