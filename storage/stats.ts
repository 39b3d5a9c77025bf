import { join } from "node:path";
import { BARS_DIR, walkParquetFiles } from "./layout.ts";

/** Files and bytes of Parquet data under `<data>/bars`. */
export interface StorageStats {
  files: number;
  bytes: number;
}

/** Count the live Parquet files and their size under `<data>/bars` (0 when absent). */
export async function storageStats(dataDir: string): Promise<StorageStats> {
  const files = await walkParquetFiles(join(dataDir, BARS_DIR));
  return { files: files.length, bytes: files.reduce((sum, file) => sum + file.size, 0) };
}
