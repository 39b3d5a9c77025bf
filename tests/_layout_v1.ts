/**
 * The committed layout-1 data directory (tests/fixtures/layout-v1, written by the build before
 * storage v2) and what tests compare before and after converting it. Tests copy it first: the
 * fixture itself is never changed.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { sqlString } from "../storage/duckdb.ts";

/** Absolute path of the committed fixture. */
export const LAYOUT_V1_FIXTURE = fileURLToPath(new URL("./fixtures/layout-v1", import.meta.url));

/** A fresh copy of the fixture in a new temp directory; returns its path. */
export async function copyLayoutV1Fixture(prefix = "marketpipe-layout-v1-"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await copyDir(LAYOUT_V1_FIXTURE, dir);
  return dir;
}

/** Copy every file and folder under `from` into `to` (created if missing). */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) await copyDir(source, target);
    else if (entry.isFile) await Deno.copyFile(source, target);
  }
}

/** Bar columns compared by {@link digestStored}, symbol and timeframe included. */
const _VALUES = [
  "symbol",
  "timeframe",
  "ts",
  "open",
  "high",
  "low",
  "close",
  "volume",
  "vwap",
  "trade_count",
  "trading_date",
  "session",
  "provider",
  "feed",
  "adjustment",
  "ingest_id",
  "ingested_at",
];

/** Rows and a digest of every value per timeframe of one tree, as {@link digestStored} gives. */
export type StoredDigest = Record<string, { rows: number; xor: string; sum: string }>;

/**
 * Per timeframe: rows, `bit_xor` and `sum` of a hash of every value of every row of `tree`. In
 * layout 1 symbol and timeframe are read from the files; in layout 2 from the folder names
 * (hive partitioning), as MarketPipe's readers get them. Quarantine rows include rule and detail.
 */
export async function digestStored(
  connection: DuckDBConnection,
  dataDir: string,
  tree: "bars" | "quarantine",
  layout: 1 | 2,
): Promise<StoredDigest> {
  const values = [..._VALUES, ...(tree === "quarantine" ? ["rule", "detail"] : [])];
  const source = layout === 1
    ? `read_parquet(${
      sqlString(join(dataDir, tree, "**", "data.parquet"))
    }, hive_partitioning = false)`
    : `read_parquet(${
      sqlString(join(dataDir, tree, "*", "*", "*", "*.parquet"))
    }, hive_partitioning = true, hive_types_autocast = false)`;
  const reader = await connection.runAndReadAll(
    `SELECT timeframe, count(*) AS n, bit_xor(h)::VARCHAR AS x, sum(h::HUGEINT)::VARCHAR AS s
     FROM (SELECT timeframe, hash(${values.join(", ")}) AS h FROM ${source})
     GROUP BY timeframe ORDER BY timeframe`,
  );
  const out: StoredDigest = {};
  for (const row of reader.getRowObjectsJson()) {
    out[String(row.timeframe)] = { rows: Number(row.n), xor: String(row.x), sum: String(row.s) };
  }
  return out;
}

/** Every file under `dir`, relative, sorted (folders left out). */
export async function listFilesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) out.push(...await listFilesUnder(join(dir, entry.name), rel));
      else out.push(rel);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}
