import { join } from "node:path";

/** Files and bytes of Parquet data under `<data>/bars`. */
export interface StorageStats {
  files: number;
  bytes: number;
}

/** Count the live Parquet files and their size under `<data>/bars` (0 when absent). */
export async function storageStats(dataDir: string): Promise<StorageStats> {
  const stats: StorageStats = { files: 0, bytes: 0 };
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".parquet")) {
        stats.files++;
        stats.bytes += (await Deno.stat(path)).size;
      }
    }
  };
  await walk(join(dataDir, "bars"));
  return stats;
}
