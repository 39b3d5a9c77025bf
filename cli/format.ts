export {
  formatBytes,
  formatCount,
  formatDuration,
  formatIsoTime,
  formatPrices,
  formatTime,
  shellCommand,
  shellQuote,
  TIME_ZONE_SETTINGS,
  type TimeZoneSetting,
} from "../core/format.ts";
import { formatDuration } from "../core/format.ts";

/** An aligned text table; columns listed in `right` are right-aligned. */
export function renderTable(
  headers: string[],
  rows: (string | number)[][],
  options: { right?: number[] } = {},
): string[] {
  const cells = rows.map((row) => row.map(String));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length))
  );
  const right = new Set(options.right ?? []);
  const line = (row: string[]) =>
    row.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(
      "  ",
    )
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)];
}

/** Write {@link renderTable}'s lines to `context.out`, one call per line. */
export function printTable(
  context: { out: (line: string) => void },
  ...table: Parameters<typeof renderTable>
): void {
  for (const line of renderTable(...table)) context.out(line);
}

/** Write `value` as JSON indented by two spaces: the `--json` output of most commands. */
export function printJson(context: { out: (line: string) => void }, value: unknown): void {
  context.out(JSON.stringify(value, null, 2));
}

/** A progress callback; `finish()` leaves the last state as a line of its own. */
export interface ProgressReporter {
  (done: number, total: number, detail: string, elapsedMs: number): void;
  /**
   * Write the last reported state as a finished line (ending the redrawn bar with a newline, so
   * what follows starts on a line of its own); an interrupted run thereby shows its final count.
   * Does nothing when nothing was reported or the log already holds that count.
   */
  finish(): void;
}

/** Progress reporting: a redrawn bar on a terminal, a line every ~10% otherwise. */
export function progressReporter(options: {
  status?: (text: string) => void;
  err: (line: string) => void;
  now?: () => number;
}): ProgressReporter {
  let lastDecile = -1;
  let lastDraw = 0;
  let last: { done: number; total: number; detail: string } | undefined;
  let lastWrittenDone = -1;
  const now = options.now ?? Date.now;
  // `elapsedMs` undefined: the last line of a run, without an ETA.
  const eta = (done: number, total: number, elapsedMs?: number) =>
    elapsedMs !== undefined && done > 0 && done < total
      ? ` ETA ${formatDuration((elapsedMs / done) * (total - done))}`
      : "";
  const bar = (done: number, total: number, detail: string, elapsedMs?: number) => {
    const filled = Math.round((total === 0 ? 1 : Math.min(1, done / total)) * 24);
    return `[${"#".repeat(filled)}${".".repeat(24 - filled)}] ${detail}${
      eta(done, total, elapsedMs)
    }`;
  };
  const logLine = (done: number, total: number, detail: string, elapsedMs?: number) =>
    `${String(Math.round((total === 0 ? 1 : done / total) * 100)).padStart(3)}% ${detail}${
      eta(done, total, elapsedMs)
    }`;
  const report = (done: number, total: number, detail: string, elapsedMs: number) => {
    last = { done, total, detail };
    if (options.status) {
      if (now() - lastDraw < 100 && done < total) return;
      lastDraw = now();
      options.status(bar(done, total, detail, elapsedMs));
      return;
    }
    const decile = Math.floor((total === 0 ? 1 : done / total) * 10);
    if (decile > lastDecile) {
      lastDecile = decile;
      lastWrittenDone = done;
      options.err(logLine(done, total, detail, elapsedMs));
    }
  };
  report.finish = () => {
    if (!last) return;
    const { done, total, detail } = last;
    // The last state without an ETA: nothing more is coming.
    if (options.status) {
      // Through err: it clears the redrawn line and ends with a newline.
      options.err(bar(done, total, detail));
    } else if (done !== lastWrittenDone) {
      // A log already says where a finished run ended; an interrupted one says it here.
      options.err(logLine(done, total, detail));
    }
    last = undefined;
    lastWrittenDone = -1;
  };
  return report;
}

/** `["--data-dir", dir]` for a suggested command, or nothing for the default `./data`. */
export function dataDirArgs(dataDir: string): string[] {
  return dataDir === "./data" || dataDir === "data" ? [] : ["--data-dir", dataDir];
}
