/**
 * The jobs the server runs besides ingests: `prune` and `delete` (remove stored bars, as
 * `marketpipe prune` and `marketpipe delete` do) and `export` (stored bars to one file under
 * `<data>/exports/`, as `marketpipe export` writes it). Each is recorded as a job row of its kind
 * with its options, reports progress, stops at its signal, and records what it did as the job's
 * `result`.
 *
 * @module
 */
import { join } from "node:path";
import type { JobKind, JobRecord } from "../core/jobs.ts";
import {
  EXPORT_FORMATS,
  exportBars,
  type ExportFormat,
  type ExportRequest,
  EXPORTS_DIR,
  type OperationScope,
  pruneBars,
  type PruneSelection,
  type PruneSummary,
  type Store,
} from "../storage/mod.ts";
import { pruneJson } from "./records.ts";

/** How far a job is: `done` of `total` units (`tasks`, `partitions` or `bars`). */
export interface JobProgress {
  done: number;
  total: number;
  unit: string;
}

/** Options of {@link Operation.run} and {@link runOperation}. */
export interface OperationOptions {
  /** Stops the job between partitions (prune, delete) or at once (export, nothing left). */
  signal?: AbortSignal;
  onProgress?: (progress: JobProgress) => void;
}

/** A prune, delete or export, ready to run as a job. */
export interface Operation {
  kind: Exclude<JobKind, "ingest">;
  /** What the job row records. */
  scope: OperationScope;
  /** Does the work of job `jobId` and resolves to what it did (the job's `result`). */
  run(jobId: string, options: OperationOptions): Promise<Record<string, unknown>>;
}

/**
 * Works out what {@link pruneOperation} would remove: the plan `prune --dry-run` prints. Writes
 * nothing.
 */
export async function previewPrune(
  store: Store,
  selection: PruneSelection,
  options: { signal?: AbortSignal } = {},
): Promise<PruneSummary> {
  return await pruneBars(await _writer(store), selection, { dryRun: true, signal: options.signal });
}

/**
 * A `prune` (bars of trading dates before a cutoff) or `delete` (every bar of some symbols): the
 * same removal as the commands, partition by partition; its result is {@link pruneJson}.
 */
export function pruneOperation(
  store: Store,
  kind: "prune" | "delete",
  selection: PruneSelection,
): Operation {
  const timeframes = [...selection.cutoffs.keys()];
  const before = [...selection.cutoffs.values()][0];
  const params: OperationScope["params"] = {};
  if (before !== undefined) params.before = before;
  if (selection.provider !== undefined) params.provider = selection.provider;
  return {
    kind,
    scope: {
      timeframe: timeframes.length === 1 ? timeframes[0] : undefined,
      symbols: selection.symbols,
      params,
    },
    run: async (jobId, { signal, onProgress }) => {
      const summary = await pruneBars(await _writer(store), selection, {
        jobId,
        signal,
        onProgress: (done, total) => onProgress?.({ done, total, unit: "partitions" }),
      });
      return pruneJson(summary);
    },
  };
}

/**
 * An `export` of stored bars to `<data>/exports/<job id>.<format>` ({@link exportFile}); its
 * result names the file and counts its bars and bytes.
 */
export function exportOperation(
  store: Store,
  request: ExportRequest,
  options: { memoryLimit?: string; tempLimit?: string } = {},
): Operation {
  const params: OperationScope["params"] = { format: request.format };
  if (request.columns !== undefined) params.columns = request.columns.join(",");
  if (request.timeZone !== undefined) params.tz = request.timeZone;
  return {
    kind: "export",
    scope: {
      timeframe: request.timeframe,
      symbols: request.symbols,
      start: request.start,
      end: request.end,
      params,
    },
    run: async (jobId, { signal, onProgress }) => {
      await Deno.mkdir(join(store.dataDir, EXPORTS_DIR), { recursive: true });
      const file = join(EXPORTS_DIR, `${jobId}.${request.format}`);
      const summary = await exportBars(store.dataDir, request, join(store.dataDir, file), {
        ...options,
        signal,
        onProgress: (p) => onProgress?.({ done: p.rows, total: p.totalRows, unit: "bars" }),
      });
      return {
        file,
        format: request.format,
        rows: summary.rows,
        bytes: summary.files[0].bytes,
      };
    },
  };
}

/**
 * The file a succeeded export job wrote, absolute, with its format; undefined for any other
 * job. The name comes from the job id and a known format only, so it stays inside `exports/`.
 */
export function exportFile(
  dataDir: string,
  job: JobRecord,
): { path: string; format: ExportFormat } | undefined {
  const format = job.params.format;
  if (job.kind !== "export" || !(EXPORT_FORMATS as readonly unknown[]).includes(format)) {
    return undefined;
  }
  return {
    path: join(dataDir, EXPORTS_DIR, `${job.id}.${format}`),
    format: format as ExportFormat,
  };
}

/**
 * Records `operation` as a running job of this process (`onStart` gets it), runs it, and
 * finishes the job: `succeeded` with its result, `cancelled` when `signal` stopped it (resolved,
 * not thrown), else `failed` with the error, which is rethrown.
 *
 * @example
 * ```ts
 * const selection = { cutoffs: new Map([["1m", "2024-01-01"]] as const) };
 * const job = await runOperation(store, pruneOperation(store, "prune", selection));
 * console.log(job.status, job.result);
 * ```
 */
export async function runOperation(
  store: Store,
  operation: Operation,
  options: OperationOptions & { onStart?: (job: JobRecord) => void } = {},
): Promise<JobRecord> {
  const job = store.meta.createOperationJob(operation.kind, operation.scope);
  options.onStart?.(job);
  try {
    const result = await operation.run(job.id, options);
    return store.meta.finishOperationJob(job.id, result);
  } catch (error) {
    const cancelled = options.signal?.aborted === true;
    const finished = store.meta.finishJob(
      job.id,
      cancelled ? "cancelled" : "failed",
      error instanceof Error ? error.message : String(error),
    );
    if (cancelled) return finished;
    throw error;
  }
}

/**
 * How far a job got when this process does not run it: an ingest's ended tasks, a succeeded
 * prune or delete's partitions, a succeeded export's bars; null when there is nothing to count.
 */
export function storedProgress(store: Store, job: JobRecord): JobProgress | null {
  if (job.kind === "ingest") {
    const { ended, total } = store.meta.countTasks(job.id);
    return total === 0 ? null : { done: ended, total, unit: "tasks" };
  }
  if (job.status !== "succeeded" || job.result === null) return null;
  if (job.kind === "export") {
    const rows = Number(job.result.rows);
    return { done: rows, total: rows, unit: "bars" };
  }
  const partitions = (job.result.partitions as unknown[]).length;
  return { done: partitions, total: partitions, unit: "partitions" };
}

async function _writer(store: Store) {
  return { dataDir: store.dataDir, duckdb: await store.duckdb(), meta: store.meta };
}
