import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import type { IngestStore, RejectedBar, WriteResult } from "../core/jobs.ts";
import type { Bar } from "../core/types.ts";
import { ensureReserve, withReserve } from "./disk.ts";
import { openDuckDB } from "./duckdb.ts";
import { META_FILE, MetaStore, openMigrated } from "./meta.ts";
import { assertLayoutCurrent, detectLayout, writeLayoutFile } from "./migrate_layout.ts";
import { recordFreshness } from "./metrics_store.ts";
import { writeBars } from "./partitions.ts";
import { writeQuarantine } from "./quarantine.ts";
import type { Migration } from "./migrations.ts";

/**
 * The data directory opened for writing: metadata (jobs, coverage, locks) plus the partition
 * writer. Implements the ingest engine's {@link IngestStore}.
 */
export interface Store extends IngestStore {
  readonly dataDir: string;
  readonly meta: MetaStore;
  /** Migrations applied when the store was opened. */
  readonly applied: Migration[];
  /** The store's DuckDB instance (opened on first use), for storage functions such as aggregation. */
  duckdb(): Promise<DuckDBInstance>;
  /** Store rejected bars with their rule under `<data>/quarantine/` (atomic, merged per partition). */
  writeQuarantine(rejected: RejectedBar[], options: { jobId: string }): Promise<void>;
  close(): void;
}

/**
 * Open (creating if needed) a data directory for writing and apply pending migrations.
 *
 * @example
 * ```ts
 * const store = await openStore("./data", { command: "ingest" });
 * try {
 *   console.log(store.meta.listJobs({ limit: 5 }));
 * } finally {
 *   store.close();
 * }
 * ```
 */
export async function openStore(
  dataDir: string,
  options: {
    command?: string;
    threads?: number;
    /** Compact a partition once a write leaves it with this many files (0: never; default 16). */
    compactThreshold?: number;
  } = {},
): Promise<Store> {
  await Deno.mkdir(dataDir, { recursive: true });
  // Never two layouts in one directory: an old one is converted by `marketpipe migrate` first,
  // and a new one records its layout before its first file.
  await assertLayoutCurrent(dataDir);
  if (await detectLayout(dataDir) === "empty") await writeLayoutFile(dataDir);
  const { db, applied } = openMigrated(join(dataDir, META_FILE));
  const meta = new MetaStore(db, { command: options.command });
  try {
    await ensureReserve(dataDir);
  } catch (error) {
    meta.close();
    throw error;
  }
  let duckdb: Promise<DuckDBInstance> | undefined;
  const engine = () => duckdb ??= openDuckDB({ threads: options.threads });
  return {
    dataDir,
    meta,
    applied,
    reapDeadJobs: () => meta.reapDeadJobs(),
    coveredDays: (source, symbols, start, end) => meta.coveredDays(source, symbols, start, end),
    findResumableJob: (key) => meta.findResumableJob(key),
    getJob: (id) => meta.getJob(id),
    listTasks: (id) => meta.listTasks(id),
    createJob: (spec, key, tasks) => meta.createJob(spec, key, tasks),
    claimJob: (id) => meta.claimJob(id),
    startTask: (id, seq) => meta.startTask(id, seq),
    completeTask: (id, seq, source, result) => meta.completeTask(id, seq, source, result),
    // A task that failed on a full disk must still say why: the reserve makes room for it (and
    // for finishJob after it, in the same freed space).
    failTask: (id, seq, error) => withReserve(dataDir, () => meta.failTask(id, seq, error)),
    releaseTask: (id, seq) => meta.releaseTask(id, seq),
    // Called once the job's writes have ended: if the disk filled up, the reserve makes room
    // to record that the job failed and why.
    finishJob: (id, status, error) => withReserve(dataDir, () => meta.finishJob(id, status, error)),
    duckdb: engine,
    async writeQuarantine(rejected, writeOptions) {
      if (rejected.length === 0) return;
      await writeQuarantine({ dataDir, duckdb: await engine(), meta }, rejected, writeOptions);
    },
    async writeBars(bars: Bar[], writeOptions): Promise<WriteResult> {
      return await writeBars(
        { dataDir, duckdb: await engine(), meta, compactThreshold: options.compactThreshold },
        bars,
        {
          ...writeOptions,
          onWritten: (newest) => recordFreshness(meta.db, newest, Date.now()),
        },
      );
    },
    close() {
      try {
        meta.close();
      } finally {
        if (duckdb) duckdb.then((instance) => instance.closeSync()).catch(() => {});
      }
    },
  };
}
