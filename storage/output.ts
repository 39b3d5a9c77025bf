/**
 * Files that reading commands write for the user (`query --output`, downloads): where they may go,
 * and how they are written so that neither a managed file nor a half-written output can result.
 *
 * @module
 */
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { UsageError } from "../core/errors.ts";
import { fsyncDir, fsyncFile, ifFound } from "./fs.ts";

/**
 * The one folder inside a data directory that user output may be written to; everything else in
 * a data directory (bars, quarantine, reports, the databases, staging folders) is MarketPipe's.
 */
export const EXPORTS_DIR = "exports";

/** Options of {@link checkOutputPath}. */
export interface CheckOutputPathOptions {
  /** The flag or field that named the path, for errors (default `--output`). */
  label?: string;
  /** More files that must never be replaced, e.g. a metrics history database outside `dataDir`. */
  protectedFiles?: readonly string[];
}

/**
 * Checks that `output` may be written as a user file and returns its absolute path. Refused (a
 * {@link UsageError}) when it or, after symlinks, what it points to lies inside `dataDir` outside
 * `<dataDir>/exports/`, is one of `protectedFiles` (or their SQLite side files), is a directory,
 * or its folder does not exist.
 *
 * @example
 * ```ts
 * const path = await checkOutputPath("./data", "result.csv");
 * await writeFileAtomic(path, new TextEncoder().encode("a\n1\n"));
 * ```
 */
export async function checkOutputPath(
  dataDir: string,
  output: string,
  options: CheckOutputPathOptions = {},
): Promise<string> {
  const label = options.label ?? "--output";
  const refuse = (why: string): never => {
    throw new UsageError(`Cannot write ${label} "${output}": ${why}`);
  };
  if (output.trim() === "") refuse("expected a file path");
  if (/[/\\]$/.test(output)) refuse("expected a file path, not a directory");
  const absolute = resolve(output);
  let folder: string;
  try {
    folder = await Deno.realPath(dirname(absolute));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return refuse(`its folder ${dirname(absolute)} does not exist`);
    }
    throw error;
  }
  const target = join(folder, basename(absolute));
  const candidates = [absolute, target];
  const info = await ifFound(Deno.lstat(target));
  if (info?.isDirectory) refuse("it is a directory");
  if (info?.isSymlink) {
    // The rename replaces the link itself, but a link into the data directory is refused anyway:
    // the user almost certainly meant the file it points to.
    const link = await Deno.readLink(target);
    const pointed = resolve(folder, link);
    candidates.push(pointed);
    const real = await Deno.realPath(pointed).catch(() => undefined);
    if (real !== undefined) {
      if ((await Deno.stat(real)).isDirectory) refuse("it is a link to a directory");
      candidates.push(real);
    }
  }
  const dataDirs = [resolve(dataDir)];
  const realDataDir = await Deno.realPath(dataDir).catch(() => undefined);
  if (realDataDir !== undefined) dataDirs.push(realDataDir);
  for (const candidate of candidates) {
    for (const dir of dataDirs) {
      const inside = relative(dir, candidate);
      if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) continue;
      if (inside.split(/[/\\]/)[0] === EXPORTS_DIR && inside !== EXPORTS_DIR) continue;
      refuse(
        `it is inside the data directory ${dataDir} (${inside}), which only MarketPipe writes; ` +
          `choose a path outside it or under ${join(dataDir, EXPORTS_DIR)}/`,
      );
    }
    for (const file of options.protectedFiles ?? []) {
      const base = resolve(file);
      const real = await Deno.realPath(base).catch(() => base);
      for (const name of [base, real]) {
        if ([name, `${name}-wal`, `${name}-shm`, `${name}-journal`].includes(candidate)) {
          refuse(`it is MarketPipe's database ${file}`);
        }
      }
    }
  }
  return target;
}

/** The path of a fresh temp file beside `path` (same folder, so a rename onto `path` is atomic). */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${crypto.randomUUID().slice(0, 8)}`);
}

/**
 * Writes a file atomically: `write` fills a temp file beside `path`, which is then fsynced and
 * renamed over `path`, and the folder fsynced. A failure removes the temp file and leaves `path`
 * as it was. `write` gets the temp file's path and must close what it opens.
 */
export async function writeFileAtomic<T>(
  path: string,
  write: (tempPath: string) => Promise<T>,
  tempPath = tempPathBeside(path),
): Promise<T> {
  try {
    const result = await write(tempPath);
    await fsyncFile(tempPath);
    await Deno.rename(tempPath, path);
    await fsyncDir(dirname(path));
    return result;
  } catch (error) {
    await Deno.remove(tempPath).catch(() => {});
    throw error;
  }
}
