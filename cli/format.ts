export {
  formatBytes,
  formatCount,
  formatDuration,
  formatTime,
  shellCommand,
  shellQuote,
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

/** Progress reporting: a redrawn bar on a terminal, a line every ~10% otherwise. */
export function progressReporter(options: {
  status?: (text: string) => void;
  err: (line: string) => void;
  now?: () => number;
}): (done: number, total: number, detail: string, elapsedMs: number) => void {
  let lastDecile = -1;
  let lastDraw = 0;
  const now = options.now ?? Date.now;
  return (done, total, detail, elapsedMs) => {
    const fraction = total === 0 ? 1 : done / total;
    const eta = done > 0 && done < total
      ? ` ETA ${formatDuration((elapsedMs / done) * (total - done))}`
      : "";
    if (options.status) {
      if (now() - lastDraw < 100 && done < total) return;
      lastDraw = now();
      const width = 24;
      const filled = Math.round(fraction * width);
      options.status(`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${detail}${eta}`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > lastDecile) {
      lastDecile = decile;
      options.err(`${String(Math.round(fraction * 100)).padStart(3)}% ${detail}${eta}`);
    }
  };
}

/** `["--data-dir", dir]` for a suggested command, or nothing for the default `./data`. */
export function dataDirArgs(dataDir: string): string[] {
  return dataDir === "./data" || dataDir === "data" ? [] : ["--data-dir", dataDir];
}
