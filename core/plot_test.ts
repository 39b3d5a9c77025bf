import assert from "node:assert/strict";
import { plotLine, plotLines, type PlotPoint } from "./plot.ts";

/** Every line's width in code points (what a terminal shows for these box characters). */
function widths(lines: string[]): number[] {
  return lines.map((line) => [...line].length);
}

/** The y-axis label of a chart row (text before ` ┤`). */
function labelOf(line: string): string {
  return line.slice(0, line.indexOf(" ┤")).trim();
}

function chartRows(lines: string[]): string[] {
  return lines.filter((line) => line.includes("┤"));
}

/** Row index of the marker in a column (relative to the start of the plot area). */
function markerRows(lines: string[]): number[][] {
  const rows = chartRows(lines);
  const start = rows[0].indexOf("┤") + 1;
  const columns = rows[0].length - start;
  return Array.from(
    { length: columns },
    (_, col) => rows.flatMap((row, r) => row[start + col] === "●" ? [r] : []),
  );
}

const RAMP: PlotPoint[] = Array.from({ length: 30 }, (_, i) => ({ x: 1_000 + i * 60, y: i * 10 }));

Deno.test("plotLine() makes every line exactly the requested width", () => {
  for (const width of [20, 41, 60, 80, 133]) {
    for (const height of [3, 5, 12]) {
      const lines = plotLine(RAMP, { width, height });
      assert.equal(lines.length, height + 2, "plot rows, the x axis and its labels");
      assert.deepEqual(widths(lines), Array(lines.length).fill(width), `width ${width}`);
    }
  }
});

Deno.test("plotLine() labels the y axis with the maximum, middle and minimum", () => {
  const lines = plotLine(RAMP, { width: 60, height: 9 });
  const labels = chartRows(lines).map(labelOf);
  assert.deepEqual(labels, ["290", "", "", "", "145", "", "", "", "0"]);
  // Labels are right-aligned against the axis.
  const axisColumns = chartRows(lines).map((line) => line.indexOf("┤"));
  assert.equal(new Set(axisColumns).size, 1);
  assert.match(lines.at(-2)!, /^\s+└─+$/);
});

Deno.test("plotLine() draws a rising line from the bottom left to the top right", () => {
  const lines = plotLine(RAMP, { width: 60, height: 9 });
  const rows = markerRows(lines);
  assert.deepEqual(rows[0], [8], "first column: the minimum, on the bottom row");
  assert.deepEqual(rows.at(-1), [0], "last column: the maximum, on the top row");
  const used = rows.filter((r) => r.length > 0).map((r) => r[0]);
  assert.equal(used.length, RAMP.length, "one marker per point");
  for (let i = 1; i < used.length; i++) assert.ok(used[i] <= used[i - 1], "never goes down");
});

Deno.test("plotLine() joins a jump between columns with a vertical stroke", () => {
  const lines = plotLine([{ x: 0, y: 0 }, { x: 1, y: 100 }], { width: 30, height: 6 });
  const rows = chartRows(lines);
  const start = rows[0].indexOf("┤") + 1;
  const last = rows[0].length - 1;
  assert.equal(rows[5][start], "●");
  assert.equal(rows[0][last], "●");
  for (let r = 1; r <= 4; r++) assert.equal(rows[r][last], "│", `row ${r}`);
});

Deno.test("plotLine() labels the x axis with the first and last x at both ends", () => {
  const lines = plotLine(RAMP, {
    width: 50,
    formatX: (x) => `t${x}`,
  });
  const axis = lines.at(-1)!;
  const plotStart = lines[0].indexOf("┤") + 1;
  assert.equal(axis.indexOf("t1000"), plotStart, "first x under the first column");
  assert.ok(axis.trimEnd().endsWith(`t${1_000 + 29 * 60}`));
  assert.equal([...axis].length, 50);
});

Deno.test("plotLine() sorts points by x before drawing", () => {
  const shuffled = [...RAMP].reverse();
  assert.deepEqual(plotLine(shuffled, { width: 60 }), plotLine(RAMP, { width: 60 }));
});

Deno.test("plotLine() draws a single point mid-chart with its x label under it", () => {
  const lines = plotLine([{ x: 5, y: 42 }], { width: 30, height: 5, formatX: (x) => `t=${x}` });
  assert.deepEqual(widths(lines), Array(7).fill(30));
  const rows = markerRows(lines);
  const used = rows.flatMap((r, col) => r.length > 0 ? [col] : []);
  assert.equal(used.length, 1);
  const column = used[0];
  assert.deepEqual(rows[column], [2], "mid-height");
  assert.ok(Math.abs(column - (rows.length - 1) / 2) <= 1, `column ${column} is in the middle`);
  const labels = chartRows(lines).map(labelOf);
  assert.deepEqual([labels[0], labels[2], labels[4]], ["46.20", "42.00", "37.80"]);
  // The x label once, centred under the point (not the same time at both ends).
  const axis = lines.at(-1)!;
  assert.equal(axis.split("t=5").length - 1, 1, axis);
  const markerAt = lines[2].indexOf("●");
  const labelAt = axis.indexOf("t=5");
  assert.ok(labelAt <= markerAt && markerAt < labelAt + 3, `${axis}\n${lines[2]}`);
});

Deno.test("plotLines() draws each series with its marker and names them in a legend", () => {
  const lines = plotLines([
    { label: 'operation="ingest"', points: [{ x: 0, y: 1 }, { x: 10, y: 2 }] },
    { label: 'operation="validate"', points: [{ x: 0, y: 5 }, { x: 10, y: 4 }] },
  ], { width: 60, height: 5 });
  assert.deepEqual(widths(lines), Array(8).fill(60));
  const legend = lines.at(-1)!;
  assert.equal(legend.trimEnd(), '  ● operation="ingest"  ○ operation="validate"');
  const chart = chartRows(lines).join("\n");
  assert.equal(chart.split("●").length - 1, 2);
  assert.equal(chart.split("○").length - 1, 2);
  // ○ starts at the top (5 is the maximum), ● at the bottom.
  assert.ok(chartRows(lines)[0].includes("○"));
  assert.ok(chartRows(lines).at(-1)!.includes("●"));
  assert.throws(
    () => plotLines(Array.from({ length: 7 }, (_, i) => ({ label: `${i}`, points: [] }))),
    /Cannot plot 7 lines: at most 6/,
  );
});

Deno.test("plotLine() draws a constant series as a flat line with a range around it", () => {
  const flat = Array.from({ length: 10 }, (_, i) => ({ x: i, y: 7 }));
  const lines = plotLine(flat, { width: 40, height: 5 });
  assert.deepEqual(widths(lines), Array(7).fill(40));
  const used = markerRows(lines).filter((r) => r.length > 0);
  assert.equal(used.length, 10);
  assert.ok(used.every((r) => r.length === 1 && r[0] === 2), "every marker on the middle row");
  const labels = chartRows(lines).map(labelOf);
  assert.deepEqual([labels[0], labels[2], labels[4]], ["7.70", "7.00", "6.30"]);
  assert.ok(!lines.join("").includes("│"), "no vertical strokes on a flat line");

  const zeros = plotLine(flat.map((p) => ({ ...p, y: 0 })), { width: 40, height: 5 });
  assert.deepEqual(
    chartRows(zeros).map(labelOf).filter((l) => l !== ""),
    ["1.00", "0", "-1.00"],
  );
});

Deno.test("plotLine() says there is no data for an empty series, at the requested width", () => {
  assert.deepEqual(plotLine([], { width: 30 }), ["(no data)" + " ".repeat(21)]);
  assert.deepEqual(plotLine([]), ["(no data)".padEnd(80)]);
});

Deno.test("plotLine() formats large values compactly and respects formatY", () => {
  const big = [{ x: 0, y: 0 }, { x: 1, y: 2_500_000 }];
  assert.deepEqual(
    chartRows(plotLine(big, { width: 40, height: 3 })).map(labelOf),
    ["2.5M", "1.3M", "0"],
  );
  assert.deepEqual(
    chartRows(plotLine(big, { width: 40, height: 3, formatY: (y) => `${y / 1e6} M` })).map(
      labelOf,
    ),
    ["2.5 M", "1.25 M", "0 M"],
  );
});

Deno.test("plotLine() never goes below 20 columns or 3 rows", () => {
  const lines = plotLine(RAMP, { width: 5, height: 1 });
  assert.equal(lines.length, 5);
  assert.deepEqual(widths(lines), Array(5).fill(20));
});
