/** Fixtures that store hand-made bar files the way the writer does (layout 2, in the manifest). */
import { detectLayout, writeLayoutFile } from "../storage/migrate_layout.ts";
import type { DuckDBConnection } from "@duckdb/node-api";
import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";
import { sqlString } from "../storage/duckdb.ts";
import { newFileName, partitionDir, type PartitionTree } from "../storage/layout.ts";
import { commitFiles } from "../storage/manifest.ts";
import { META_FILE, openMigrated } from "../storage/meta.ts";
import { FILE_COLUMNS } from "../storage/partitions.ts";

/** What {@link storeBarFile} stores. */
export interface BarFileFixture {
  timeframe: Timeframe;
  symbol: string;
  /** A SELECT of exactly the file columns of layout 2 ({@link FILE_COLUMNS}), in their order. */
  select: string;
  /** Default `"bars"`. */
  tree?: PartitionTree;
  jobId?: string;
}

/**
 * Writes the rows of `select` as one file of its partition (`<tree>/timeframe=../symbol=../
 * year=<first date's year>/<first>_<last>-<id>.parquet`, zstd) and commits it to the manifest of
 * `dataDir`, as the writer would. Returns the file's absolute path (under `dataDir` as given).
 */
export async function storeBarFile(
  dataDir: string,
  connection: DuckDBConnection,
  fixture: BarFileFixture,
): Promise<string> {
  const tree = fixture.tree ?? "bars";
  // A data directory of this layout says so before its first file, as openStore does.
  if (await detectLayout(dataDir) === "empty") await writeLayoutFile(dataDir);
  const temp = join(dataDir, `.tmp-fixture-${crypto.randomUUID()}`);
  await connection.run(
    `COPY (${fixture.select}) TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  try {
    const described = await connection.runAndReadAll(
      `SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet(${sqlString(temp)}))`,
    );
    const columns = described.getRows().map(([name]) => name as string);
    const expected = tree === "bars" ? FILE_COLUMNS : [...FILE_COLUMNS, "rule", "detail"];
    if (columns.join() !== expected.join()) {
      throw new TypeError(`Invalid fixture columns ${columns}: expected ${expected}`);
    }
    const reader = await connection.runAndReadAll(
      `SELECT count(*)::DOUBLE, epoch_us(min(ts))::DOUBLE, epoch_us(max(ts))::DOUBLE,
         strftime(min(trading_date), '%Y-%m-%d'), strftime(max(trading_date), '%Y-%m-%d')
       FROM read_parquet(${sqlString(temp)})`,
    );
    const [rows, minTs, maxTs, firstDate, lastDate] = reader.getRows()[0] as [
      number,
      number,
      number,
      string,
      string,
    ];
    const dir = partitionDir(fixture.timeframe, fixture.symbol, firstDate, tree);
    const path = join(dir, newFileName(firstDate, lastDate));
    await Deno.mkdir(join(dataDir, dir), { recursive: true });
    await Deno.rename(temp, join(dataDir, path));
    const { db } = openMigrated(join(dataDir, META_FILE));
    try {
      commitFiles(db, [{
        path,
        tree,
        timeframe: fixture.timeframe,
        symbol: fixture.symbol,
        year: Number(firstDate.slice(0, 4)),
        firstDate,
        lastDate,
        rows,
        minTs,
        maxTs,
        bytes: (await Deno.stat(join(dataDir, path))).size,
        jobId: fixture.jobId ?? "job-1",
        createdAt: Date.now(),
      }], []);
    } finally {
      db.close();
    }
    return join(dataDir, path);
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}
