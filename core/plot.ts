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

/** One line of {@link plotLines}: its points and the legend's name for it. */
export interface PlotSeries {
  label: string;
  points: readonly PlotPoint[];
}

/** Markers of the lines of {@link plotLines}, in order (the first is that of {@link plotLine}). */
export const PLOT_MARKERS: readonly string[] = Object.freeze(["●", "○", "▲", "■", "◆", "×"]);

/**
 * Draw a line chart with Unicode characters: a y axis with the maximum, middle and minimum
 * labels, the line itself (`●` at each column's value, `│` joining consecutive columns) and an x
 * axis labelled with the first and last x (a single point: its x under it, in the middle). Every
 * line is exactly `width` characters wide.
 */
export function plotLine(points: readonly PlotPoint[], options: PlotOptions = {}): string[] {
  return _plot([{ label: "", points }], options);
}

/**
 * Several lines on one chart like {@link plotLine}, each with its marker of
 * {@link PLOT_MARKERS}, and a legend below naming each marker's line. At most
 * `PLOT_MARKERS.length` series; throws RangeError for more.
 */
export function plotLines(series: readonly PlotSeries[], options: PlotOptions = {}): string[] {
  if (series.length > PLOT_MARKERS.length) {
    throw new RangeError(
      `Cannot plot ${series.length} lines: at most ${PLOT_MARKERS.length} fit one chart`,
    );
  }
  const width = Math.max(20, options.width ?? 80);
  const lines = _plot(series, options);
  if (lines.length === 1) return lines; // no data
  // The legend: "● label  ○ label", wrapped to the width.
  const entries = series.map((s, i) => `${PLOT_MARKERS[i]} ${s.label}`);
  let line = "";
  for (const entry of entries) {
    if (line !== "" && [...line].length + 2 + [...entry].length > width) {
      lines.push(line.padEnd(width));
      line = "";
    }
    line = line === "" ? `  ${entry}` : `${line}  ${entry}`;
  }
  lines.push(_padTo(line, width));
  return lines;
}

function _padTo(text: string, width: number): string {
  const chars = [...text];
  return chars.length >= width
    ? chars.slice(0, width).join("")
    : text + " ".repeat(width - chars.length);
}

function _plot(series: readonly PlotSeries[], options: PlotOptions): string[] {
  const width = Math.max(20, options.width ?? 80);
  const height = Math.max(3, options.height ?? 12);
  const formatX = options.formatX ?? ((x: number) => String(x));
  const formatY = options.formatY ?? ((y: number) => _compact(y));
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return ["(no data)".padEnd(width)];
  let min = Math.min(...all.map((p) => p.y));
  let max = Math.max(...all.map((p) => p.y));
  if (min === max) {
    min -= min === 0 ? 1 : Math.abs(min) * 0.1;
    max += max === 0 ? 1 : Math.abs(max) * 0.1;
  }
  const labels = [formatY(max), formatY((max + min) / 2), formatY(min)];
  const axisWidth = Math.max(...labels.map((l) => l.length)) + 1;
  const plotWidth = width - axisWidth - 1;
  const x0 = Math.min(...all.map((p) => p.x));
  const x1 = Math.max(...all.map((p) => p.x));
  // A single time sits in the middle, where its label can be read.
  const columnOf = (x: number) =>
    x1 === x0
      ? Math.floor((plotWidth - 1) / 2)
      : Math.round(((x - x0) / (x1 - x0)) * (plotWidth - 1));
  const grid = Array.from({ length: height }, () => Array(plotWidth).fill(" "));
  const rowOf = (y: number) => height - 1 - Math.round(((y - min) / (max - min)) * (height - 1));
  series.forEach((s, index) => {
    const marker = PLOT_MARKERS[index] ?? "●";
    const columns: (number | undefined)[] = Array(plotWidth).fill(undefined);
    for (const point of [...s.points].sort((a, b) => a.x - b.x)) {
      columns[columnOf(point.x)] = point.y; // the last value of each column wins
    }
    let previous: number | undefined;
    for (let col = 0; col < plotWidth; col++) {
      const y = columns[col];
      if (y === undefined) continue;
      const row = rowOf(y);
      if (previous !== undefined && previous !== row) {
        const [from, to] = previous < row ? [previous + 1, row] : [row + 1, previous];
        for (let r = from; r < to; r++) if (grid[r][col] === " ") grid[r][col] = "│";
      }
      grid[row][col] = marker;
      previous = row;
    }
  });
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
  const plotStart = axisWidth + 1;
  if (x1 === x0) {
    const text = formatX(x0);
    const at = Math.max(0, plotStart + columnOf(x0) - Math.floor(text.length / 2));
    lines.push(`${" ".repeat(at)}${text}`.slice(0, width).padEnd(width));
    return lines;
  }
  const left = formatX(x0);
  const right = formatX(x1);
  const gap = Math.max(1, width - axisWidth - 1 - left.length - right.length);
  lines.push(
    `${"".padStart(plotStart)}${left}${" ".repeat(gap)}${right}`.slice(0, width).padEnd(width),
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
