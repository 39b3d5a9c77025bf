/** A point of a line chart. */
export interface PlotPoint {
  x: number;
  y: number;
}

/** Options of {@link plotLine}. */
export interface PlotOptions {
  /** Total width in characters, axis labels included. Default 80. */
  width?: number;
  /** Rows of the plot area. Default 12. */
  height?: number;
  /** Label of an x value (e.g. a time). */
  formatX?: (x: number) => string;
  /** Label of a y value. */
  formatY?: (y: number) => string;
}

/**
 * Draw a line chart with Unicode characters: a y axis with the maximum, middle and minimum
 * labels, the line itself (`●` at each column's value, `│` joining consecutive columns) and an x
 * axis labelled with the first and last x. Every line is exactly `width` characters wide.
 */
export function plotLine(points: readonly PlotPoint[], options: PlotOptions = {}): string[] {
  const width = Math.max(20, options.width ?? 80);
  const height = Math.max(3, options.height ?? 12);
  const formatX = options.formatX ?? ((x: number) => String(x));
  const formatY = options.formatY ?? ((y: number) => _compact(y));
  if (points.length === 0) return ["(no data)".padEnd(width)];
  const sorted = [...points].sort((a, b) => a.x - b.x);
  let min = Math.min(...sorted.map((p) => p.y));
  let max = Math.max(...sorted.map((p) => p.y));
  if (min === max) {
    min -= min === 0 ? 1 : Math.abs(min) * 0.1;
    max += max === 0 ? 1 : Math.abs(max) * 0.1;
  }
  const labels = [formatY(max), formatY((max + min) / 2), formatY(min)];
  const axisWidth = Math.max(...labels.map((l) => l.length)) + 1;
  const plotWidth = width - axisWidth - 1;
  const x0 = sorted[0].x;
  const x1 = sorted.at(-1)!.x;
  const columns: (number | undefined)[] = Array(plotWidth).fill(undefined);
  for (const point of sorted) {
    const col = x1 === x0
      ? plotWidth - 1
      : Math.round(((point.x - x0) / (x1 - x0)) * (plotWidth - 1));
    columns[col] = point.y; // the last value of each column wins
  }
  const grid = Array.from({ length: height }, () => Array(plotWidth).fill(" "));
  const rowOf = (y: number) => height - 1 - Math.round(((y - min) / (max - min)) * (height - 1));
  let previous: number | undefined;
  for (let col = 0; col < plotWidth; col++) {
    const y = columns[col];
    if (y === undefined) continue;
    const row = rowOf(y);
    if (previous !== undefined && previous !== row) {
      const [from, to] = previous < row ? [previous + 1, row] : [row + 1, previous];
      for (let r = from; r < to; r++) grid[r][col] = "│";
    }
    grid[row][col] = "●";
    previous = row;
  }
  const lines = grid.map((cells, r) => {
    const label = r === 0
      ? labels[0]
      : r === height - 1
      ? labels[2]
      : r === Math.floor((height - 1) / 2)
      ? labels[1]
      : "";
    return `${label.padStart(axisWidth - 1)} ┤${cells.join("")}`.padEnd(width);
  });
  lines.push(`${"".padStart(axisWidth - 1)} └${"─".repeat(plotWidth)}`.padEnd(width));
  const left = formatX(x0);
  const right = formatX(x1);
  const gap = Math.max(1, width - axisWidth - 1 - left.length - right.length);
  lines.push(
    `${"".padStart(axisWidth + 1)}${left}${" ".repeat(gap)}${right}`.slice(0, width).padEnd(width),
  );
  return lines;
}

function _compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (abs >= 100 || abs === 0) return value.toFixed(0);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}
