/**
 * The partition layout of the data directory (version {@link LAYOUT_VERSION}), and its only
 * owner: every path of a bar or quarantine partition is built and parsed here.
 *
 * ```
 * <data>/layout.json                                               {"layout": 2}
 * <data>/<tree>/timeframe=<tf>/symbol=<S>/year=<YYYY>/<first>_<last>-<id>.parquet
 * ```
 *
 * A partition is one folder (tree, timeframe, symbol, year) of immutable files, each named by the
 * first and last trading date it holds. Which files are live is recorded in the manifest
 * (storage/manifest.ts), never decided by listing folders.
 *
 * @module
 */
import { join } from "node:path";
import { isTimeframe, type Timeframe } from "../core/types.ts";
import { readDirOrEmpty } from "./fs.ts";

/** The trees partition files live in: stored bars and the quarantine. */
export type PartitionTree = "bars" | "quarantine";

/** Folder of the stored bars inside the data directory. */
export const BARS_DIR = "bars";

/** Folder of the quarantined bars inside the data directory. */
export const QUARANTINE_DIR = "quarantine";

/** The layout this build reads and writes. */
export const LAYOUT_VERSION = 2;

/** The file in the data directory that records its layout version. */
export const LAYOUT_FILE = "layout.json";

/** Prefix of temporary files in partition directories; they never end in `.parquet`. */
export const TEMP_PREFIX = ".tmp-";

/**
 * The partition folder of a timeframe, symbol and trading date, relative to the data directory,
 * in the bars tree or the quarantine: `bars/timeframe=1m/symbol=AAPL/year=2024`.
 */
export function partitionDir(
  timeframe: Timeframe,
  symbol: string,
  tradingDate: string,
  tree: PartitionTree = "bars",
): string {
  return join(
    tree,
    `timeframe=${timeframe}`,
    `symbol=${symbol}`,
    `year=${Number(tradingDate.slice(0, 4))}`,
  );
}

/** A new file name for rows from `firstDate` to `lastDate`: `2024-03-04_2024-03-08-1a2b3c4d.parquet`. */
export function newFileName(firstDate: string, lastDate: string): string {
  return `${firstDate}_${lastDate}-${crypto.randomUUID().slice(0, 8)}.parquet`;
}

/** Directory of all partitions of a timeframe (absolute when `dataDir` is). */
export function timeframeDir(
  dataDir: string,
  timeframe: Timeframe,
  tree: PartitionTree = "bars",
): string {
  return join(dataDir, tree, `timeframe=${timeframe}`);
}

/** A partition file's place in the layout, parsed from its path. */
export interface PartitionPath {
  tree: PartitionTree;
  timeframe: Timeframe;
  symbol: string;
  year: number;
  /** First and last trading date the partition can hold. */
  start: string;
  end: string;
}

/**
 * Where a partition file (or folder) sits in the layout, from its path: relative to the data
 * directory, or any path that contains `<tree>/timeframe=...` (the last such place counts);
 * undefined for a path that is not in a partition of this layout.
 */
export function parsePartitionPath(path: string): PartitionPath | undefined {
  const parts = path.split(/[\\/]/);
  const at = parts.findLastIndex((part, i) =>
    (part === BARS_DIR || part === QUARANTINE_DIR) && parts[i + 1]?.startsWith("timeframe=")
  );
  if (at < 0) return undefined;
  const [tree, tf, sym, yearPart] = parts.slice(at) as [
    PartitionTree,
    string,
    string | undefined,
    string | undefined,
  ];
  const timeframe = tf.slice("timeframe=".length);
  if (!isTimeframe(timeframe)) return undefined;
  if (!sym?.startsWith("symbol=") || sym.length === "symbol=".length) return undefined;
  const symbol = sym.slice("symbol=".length);
  const year = /^year=([1-9]\d{3})$/.exec(yearPart ?? "")?.[1];
  if (year === undefined) return undefined;
  return {
    tree,
    timeframe,
    symbol,
    year: Number(year),
    start: `${year}-01-01`,
    end: `${year}-12-31`,
  };
}

/** A Parquet file found by {@link walkParquetFiles}. */
export interface ParquetFileEntry {
  path: string;
  size: number;
}

/**
 * Every `.parquet` file under `dir` (any depth) with its size, sorted by path; none when `dir` is
 * missing. Temp files never end in `.parquet`, so they are never listed.
 */
export async function walkParquetFiles(dir: string): Promise<ParquetFileEntry[]> {
  const out: ParquetFileEntry[] = [];
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readDirOrEmpty(path)) {
      const child = join(path, entry.name);
      if (entry.isDirectory) await walk(child);
      else if (entry.isFile && entry.name.endsWith(".parquet")) {
        out.push({ path: child, size: (await Deno.stat(child)).size });
      }
    }
  };
  await walk(dir);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Whether any `.parquet` file is under `dir`; stops at the first one. */
export async function hasParquetFile(dir: string): Promise<boolean> {
  for (const entry of await readDirOrEmpty(dir)) {
    if (entry.isFile && entry.name.endsWith(".parquet")) return true;
    if (entry.isDirectory && await hasParquetFile(join(dir, entry.name))) return true;
  }
  return false;
}
