/**
 * Bad input from the user: a flag, a config value or an argument. The CLI prints the message on
 * one line and exits with code 2; the HTTP API answers 400.
 */
export class UsageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * A stored file that cannot be read (truncated, bad compression, not Parquet). It is left as it is;
 * `marketpipe repair --move` moves it aside. Callers branch on it to point there instead of
 * suggesting a retry that would fail again.
 */
export class CorruptFileError extends Error {
  /** Path of the unreadable file. */
  readonly path: string;
  /** What the reader said, one line. */
  readonly reason: string;

  constructor(
    message: string,
    file: { path: string; reason: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CorruptFileError";
    this.path = file.path;
    this.reason = file.reason;
  }
}

/** The closest candidate to `input` by edit distance, or undefined when nothing is close. */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = _editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(input.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** `" (did you mean \"x\"?)"` or an empty string. */
export function didYouMean(input: string, candidates: Iterable<string>): string {
  const match = closest(input, candidates);
  return match === undefined ? "" : ` (did you mean "${match}"?)`;
}

function _editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        previous + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      previous = saved;
    }
  }
  return row[b.length];
}

/** The message of an error-like value, for one-line reports. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A write the file system refused because the disk is full (`ENOSPC`), read-only (`EROFS`) or
 * not ours to write (`EACCES`), naming the path. The ingest engine stops a job on it: every other
 * task would fail the same way.
 */
export class StorageError extends Error {
  /** The file or directory that could not be written. */
  readonly path: string;
  readonly code: "ENOSPC" | "EROFS" | "EACCES";

  constructor(
    message: string,
    details: { path: string; code: "ENOSPC" | "EROFS" | "EACCES" },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StorageError";
    this.path = details.path;
    this.code = details.code;
  }
}

/** The first {@link StorageError} in `error`'s `cause` chain (itself included), if any. */
export function findStorageError(error: unknown): StorageError | undefined {
  for (let e = error, depth = 0; e !== undefined && depth < 20; depth++) {
    if (e instanceof StorageError) return e;
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}

/**
 * The first line of an error's message and of each `cause` below it, joined with ": ", leaving
 * out a cause whose text is already there: one line that keeps the reason (`Cannot write
 * partition ...: No space left on device while writing ...`), for task errors and job records.
 */
export function errorChain(error: unknown): string {
  let text = "";
  for (let e = error, depth = 0; e !== undefined && depth < 20; depth++) {
    const line = errorMessage(e).split("\n")[0].trim();
    if (line !== "" && !text.includes(line)) text = text === "" ? line : `${text}: ${line}`;
    e = e instanceof Error ? e.cause : undefined;
  }
  return text;
}
