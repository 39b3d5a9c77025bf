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
