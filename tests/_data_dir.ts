/** A fresh data directory for storage tests: migrated metadata and an in-memory DuckDB. */
import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { openDuckDB } from "../storage/duckdb.ts";
import { META_FILE, MetaStore, openMigrated } from "../storage/meta.ts";

/** What {@link withDataDir} gives a test. */
export interface TestStore {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: MetaStore;
}

/**
 * Run `fn` with a temporary data directory (named from `prefix`), a migrated MetaStore in it and
 * an in-memory DuckDB of `threads` threads; all closed and removed afterwards.
 */
export async function withDataDir(
  options: { prefix: string; threads: number },
  fn: (store: TestStore) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: options.prefix });
  const { db } = openMigrated(join(dataDir, META_FILE));
  const meta = new MetaStore(db, { command: "test" });
  const duckdb = await openDuckDB({ threads: options.threads });
  try {
    await fn({ dataDir, duckdb, meta });
  } finally {
    duckdb.closeSync();
    meta.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}
