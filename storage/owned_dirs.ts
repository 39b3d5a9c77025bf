/**
 * Temporary folders that say which process owns them, so that the next start of a command can
 * remove what a killed run left behind without touching the folders of a run that is still
 * going. The name ends with the owner's pid, its kernel start time (which tells a reused pid
 * apart) and a hash of its host name: `<label>-p<pid>-s<start>-h<host>`.
 *
 * @module
 */
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ifFound } from "./fs.ts";
import { processStartMarker } from "./meta.ts";

/** The owner recorded in a folder name by {@link ownedDirName}. */
export interface DirOwner {
  pid: number;
  /** Kernel start time of the owner ("" where the platform does not give one). */
  start: string;
  /** Hash of the owner's host name, 8 hex digits. */
  host: string;
}

/** `<label>-p<pid>-s<start>-h<host>` for this process; `label` should already be unique. */
export function ownedDirName(label: string): string {
  const start = processStartMarker(Deno.pid) ?? "";
  return `${label}-p${Deno.pid}-s${start}-h${_hostHash(hostname())}`;
}

/** The owner a folder name records, or `undefined` when it has none (another naming). */
export function dirOwner(name: string): DirOwner | undefined {
  const match = /-p(\d+)-s(\d*)-h([0-9a-f]{8})$/.exec(name);
  return match ? { pid: Number(match[1]), start: match[2], host: match[3] } : undefined;
}

/**
 * Whether the owner still runs: `dead` when, on this host, its pid runs no process or one started
 * at another time (a reused pid); `unknown` when that cannot be told (another host, or a platform
 * without start times).
 */
export function ownerStatus(owner: DirOwner): "alive" | "dead" | "unknown" {
  if (owner.host !== _hostHash(hostname()) || owner.start === "") return "unknown";
  const current = processStartMarker(owner.pid);
  if (current === null) return Deno.build.os === "linux" ? "dead" : "unknown";
  return current === owner.start ? "alive" : "dead";
}

/** Creates `<parent>/<ownedDirName(label)>` (owner-only, and never one that exists) and returns it. */
export async function makeOwnedDir(parent: string, label: string): Promise<string> {
  await Deno.mkdir(parent, { recursive: true });
  const path = join(parent, ownedDirName(label));
  await Deno.mkdir(path, { mode: 0o700 });
  return path;
}

/** Options of {@link removeDeadOwnedDirs}. */
export interface RemoveDeadOwnedDirsOptions {
  /**
   * Folders with the prefix whose owner cannot be checked (none recorded, as before owners were
   * recorded, or another host's) are removed once their last change is older than this; default:
   * kept.
   */
  uncheckedMaxAgeMs?: number;
  now?: number;
}

/**
 * Removes the folders in `parent` whose names start with `prefix` and whose owner is dead (see
 * {@link ownerStatus}), with everything in them; returns their names. Only this user's real
 * folders are touched, never a link or another user's folder; a missing `parent` is fine.
 */
export async function removeDeadOwnedDirs(
  parent: string,
  prefix: string,
  options: RemoveDeadOwnedDirsOptions = {},
): Promise<string[]> {
  const removed: string[] = [];
  const entries = await ifFound(Array.fromAsync(Deno.readDir(parent)));
  if (entries === undefined) return removed;
  const uid = Deno.uid();
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith(prefix)) continue;
    const path = join(parent, entry.name);
    const info = await ifFound(Deno.lstat(path)); // undefined: another process cleaned it
    if (!info?.isDirectory || (uid !== null && info.uid !== null && info.uid !== uid)) continue;
    const owner = dirOwner(entry.name);
    const status = owner ? ownerStatus(owner) : "unknown";
    if (status === "alive") continue;
    if (
      status === "unknown" && (options.uncheckedMaxAgeMs === undefined ||
        (options.now ?? Date.now()) - (info.mtime?.getTime() ?? 0) <= options.uncheckedMaxAgeMs)
    ) continue;
    try {
      await Deno.remove(path, { recursive: true });
      removed.push(entry.name);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return removed;
}

/** FNV-1a of the host name as 8 hex digits: short, fixed-width and safe in a file name. */
function _hostHash(name: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/** Name prefix of the folders `serve` writes Parquet exports to. */
export const EXPORT_DIR_PREFIX = "marketpipe-export-";

/**
 * A fresh owner-only folder for one server's Parquet exports in `parent` (default: the system
 * temp folder), after removing the export folders there of servers that were killed (their owner
 * is dead); those of running servers are kept.
 */
export async function makeExportDir(parent: string = tmpdir()): Promise<string> {
  await removeDeadOwnedDirs(parent, EXPORT_DIR_PREFIX);
  return await makeOwnedDir(parent, `${EXPORT_DIR_PREFIX}${crypto.randomUUID().slice(0, 8)}`);
}
