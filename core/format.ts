/** Human-readable numbers, durations, times and sizes for terminals and pages. */

/** `12,345` style integer formatting. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Seconds or minutes, e.g. `1.2s`, `3m 04s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return minutes < 60
    ? `${minutes}m ${String(seconds).padStart(2, "0")}s`
    : `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/** Epoch ms as `2024-03-04 15:30:12Z`, or `-`. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + "Z";
}

/** Bytes as `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * One argument as a POSIX shell (and bash with history expansion) reads it back unchanged: as it
 * is when it holds only safe characters, in double quotes when nothing in it expands there, else
 * in single quotes (`it's $HOME` -> `'it'\''s $HOME'`).
 *
 * @example
 * ```ts
 * shellQuote("/data with space"); // "\"/data with space\""
 * shellQuote("$HOME's data"); // "'$HOME'\\''s data'"
 * ```
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  // Double quotes read best for SQL (`"... = 'AAPL'"`) and are safe without $ ` \ " ! in them.
  if (!/["$`\\!]/.test(arg)) return `"${arg}"`;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command line to suggest to the user: each argument quoted with {@link shellQuote}. */
export function shellCommand(args: readonly string[]): string {
  return args.map(shellQuote).join(" ");
}
