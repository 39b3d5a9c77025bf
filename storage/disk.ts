/**
 * Telling a full or read-only disk from other write failures, whoever reported it: Deno (`code`
 * `ENOSPC`/`EROFS`), DuckDB (`IO Error: ... No space left on device`) or SQLite (`SQLITE_FULL`,
 * "database or disk is full"). The result names the path, which the raw messages often do not.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { errorMessage, StorageError } from "../core/errors.ts";
import { ifFound } from "./fs.ts";

const _SQLITE_FULL = 13;
const _NO_SPACE = /No space left on device|database or disk is full|\bENOSPC\b/i;
const _READ_ONLY = /Read-only file system|\bEROFS\b/i;

/**
 * A {@link StorageError} `No space left on device while writing <path>` (or `Read-only file
 * system while writing <path>`) when `error` or one of its causes says so, chained to `error`;
 * undefined for any other failure.
 */
export function storageErrorOf(error: unknown, path: string): StorageError | undefined {
  for (let e = error, depth = 0; e !== undefined && depth < 20; depth++) {
    if (e instanceof StorageError) return e;
    const { code, errcode } = (e ?? {}) as { code?: unknown; errcode?: unknown };
    const text = errorMessage(e);
    if (code === "ENOSPC" || errcode === _SQLITE_FULL || _NO_SPACE.test(text)) {
      return new StorageError(`No space left on device while writing ${path}`, {
        path,
        code: "ENOSPC",
      }, { cause: error });
    }
    if (code === "EROFS" || _READ_ONLY.test(text)) {
      return new StorageError(`Read-only file system while writing ${path}`, {
        path,
        code: "EROFS",
      }, { cause: error });
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}

/** Why files cannot be created somewhere: a read-only mount or missing permission. */
export interface Unwritable {
  code: "EROFS" | "EACCES";
  /** `read-only file system` or `permission denied`. */
  reason: string;
}

/**
 * Why files cannot be created in the directory holding `file`, or undefined when they can.
 * Creates and removes a probe file; callers ask only after a failure, since SQLite says just
 * "unable to open database file" either way.
 */
export function unwritableDirOf(file: string): Unwritable | undefined {
  const probe = join(dirname(file), `.marketpipe-probe-${crypto.randomUUID()}`);
  try {
    Deno.openSync(probe, { write: true, createNew: true }).close();
  } catch (error) {
    const denied = unwritableBy(error);
    if (denied) return denied;
    // A missing directory or a full disk is not a read-only one: the caller's error stands.
    const code = (error as { code?: unknown }).code;
    if (error instanceof Deno.errors.NotFound || code === "ENOSPC") return undefined;
    throw error;
  }
  Deno.removeSync(probe);
  return undefined;
}

/** The {@link Unwritable} a failed Deno file operation means, or undefined for other errors. */
export function unwritableBy(error: unknown): Unwritable | undefined {
  if ((error as { code?: unknown })?.code === "EROFS") {
    return { code: "EROFS", reason: "read-only file system" };
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return { code: "EACCES", reason: "permission denied" };
  }
  return undefined;
}

/** Name of the file that keeps a little space free in the data directory (see {@link ensureReserve}). */
export const RESERVE_FILE = ".reserve";
const _RESERVE_BYTES = 256 * 1024;

/**
 * Keep {@link RESERVE_FILE} (256 KiB) in `dataDir`, so that a writer that fills the disk can
 * still record why (see {@link withReserve}). Best effort: when the disk has no room for it now,
 * nothing is reserved and the next write reports the full disk itself.
 */
export async function ensureReserve(dataDir: string): Promise<void> {
  const path = join(dataDir, RESERVE_FILE);
  if ((await ifFound(Deno.stat(path)))?.size === _RESERVE_BYTES) return;
  try {
    await Deno.writeFile(path, new Uint8Array(_RESERVE_BYTES));
  } catch (error) {
    if (storageErrorOf(error, path)?.code !== "ENOSPC") throw error;
    await Deno.remove(path).catch(() => {});
  }
}

/**
 * Run `write`; when it fails on a full disk, delete the reserve file of `dataDir` and run it
 * once more. For the last bookkeeping after a disk filled up (marking the job failed), when no
 * other write of this process competes for the space set free.
 */
export function withReserve<T>(dataDir: string, write: () => T): T {
  try {
    return write();
  } catch (error) {
    if (storageErrorOf(error, dataDir)?.code !== "ENOSPC") throw error;
    try {
      Deno.removeSync(join(dataDir, RESERVE_FILE));
    } catch (removeError) {
      if (removeError instanceof Deno.errors.NotFound) throw error;
      throw removeError;
    }
    return write();
  }
}
