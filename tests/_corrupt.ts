/** Fixtures that damage stored files the ways disks and killed copies do. */
import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";
import type { PartitionTree } from "../storage/layout.ts";
import { listFiles, withManifest } from "../storage/manifest.ts";

/**
 * Absolute path (under `dataDir` as given) of the one live file of `symbol`'s `timeframe` bars
 * (or quarantine) that holds `date` (default: any date), from the manifest; throws unless there
 * is exactly one.
 */
export async function liveFile(
  dataDir: string,
  timeframe: Timeframe,
  symbol: string,
  options: { tree?: PartitionTree; date?: string } = {},
): Promise<string> {
  const tree = options.tree ?? "bars";
  const files = await withManifest(
    dataDir,
    (db) => listFiles(db, { tree, timeframe, symbol, start: options.date, end: options.date }),
    [],
  );
  if (files.length !== 1) {
    throw new Error(
      `Expected one live ${tree} file of ${symbol} ${timeframe}${
        options.date ? ` on ${options.date}` : ""
      } in ${dataDir}, found ${files.length}`,
    );
  }
  return join(dataDir, files[0].path);
}

/** Cuts the file to half its size, as an interrupted copy does: the Parquet footer is gone. */
export async function truncateFile(path: string): Promise<void> {
  await Deno.truncate(path, Math.floor((await Deno.stat(path)).size / 2));
}

/**
 * Overwrites the first bytes of every zstd frame in the file with garbage, keeping its size and
 * its footer: the file still opens and counts its rows, but its pages no longer decompress.
 */
export async function damageZstdPages(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  let seed = 12345;
  let frames = 0;
  // Stop before the footer (its last 8 bytes are the length and "PAR1"; its length before it).
  const footer = new DataView(bytes.buffer).getUint32(bytes.length - 8, true);
  const end = bytes.length - 8 - footer;
  for (let i = 4; i + 4 < end; i++) {
    if (
      bytes[i] === 0x28 && bytes[i + 1] === 0xb5 && bytes[i + 2] === 0x2f && bytes[i + 3] === 0xfd
    ) {
      for (let j = i + 4; j < Math.min(i + 28, end); j++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        bytes[j] = seed >>> 24;
      }
      frames++;
    }
  }
  if (frames === 0) throw new Error(`No zstd frame found in ${path}`);
  await Deno.writeFile(path, bytes);
}
