import { UsageError } from "../core/errors.ts";
import { formatBytes } from "../core/format.ts";

/** What `promise` (a file system call) gives, or undefined when it fails with `NotFound`. */
export async function ifFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Whether something exists at `path` (false only when it is not found; other errors throw). */
export async function pathExists(path: string): Promise<boolean> {
  return await ifFound(Deno.stat(path)) !== undefined;
}

/** Whether `path` is a regular file (false when it is not found; other errors throw). */
export async function isFile(path: string): Promise<boolean> {
  return (await ifFound(Deno.stat(path)))?.isFile ?? false;
}

/** The entries of folder `dir`, none when it is missing. */
export async function readDirOrEmpty(dir: string): Promise<Deno.DirEntry[]> {
  return await ifFound(Array.fromAsync(Deno.readDir(dir))) ?? [];
}

/** Names of the subfolders of `dir`, sorted; none when it is missing. */
export async function subdirs(dir: string): Promise<string[]> {
  return (await readDirOrEmpty(dir)).filter((entry) => entry.isDirectory).map((entry) => entry.name)
    .sort();
}

/** Flushes a file's contents to disk; returns its size in bytes. */
export async function fsyncFile(path: string): Promise<number> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.sync();
  return (await file.stat()).size;
}

/** Flushes a directory entry change (a rename, a new file) to disk where the platform can. */
export async function fsyncDir(path: string): Promise<void> {
  try {
    using dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch (error) {
    // Directories cannot be opened for sync on every platform; the rename itself is atomic.
    if (Deno.build.os !== "windows") throw error;
  }
}

/**
 * Reads a text file of at most `maxBytes` as a stream, so a huge or endless file (`/dev/zero`)
 * costs no more than the limit. Throws a {@link UsageError} naming `label`, the path and the
 * limit when the file is larger, and the file system's error when it cannot be read.
 */
export async function readTextFileCapped(
  path: string,
  maxBytes: number,
  label: string,
): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const read = await file.read(buffer);
    if (read === null) break;
    size += read;
    if (size > maxBytes) {
      throw new UsageError(
        `Cannot read ${label} ${path}: it is larger than the limit of ${formatBytes(maxBytes)}`,
      );
    }
    chunks.push(buffer.slice(0, read));
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(all);
}
