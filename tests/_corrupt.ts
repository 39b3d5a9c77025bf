/** Fixtures that damage stored files the ways disks and killed copies do. */

/** Cuts the file to half its size, as an interrupted copy does: the Parquet footer is gone. */
export async function truncateFile(path: string): Promise<void> {
  const size = (await Deno.stat(path)).size;
  await Deno.truncate(path, Math.floor(size / 2));
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
