/**
 * The symbol page: its chart panel (candles, coverage calendar, latest bars) and the htmx
 * partial that swaps it when the timeframe or range changes.
 *
 * @module
 */
import { join } from "node:path";
import type { Hono } from "hono";
import { formatCount } from "../core/format.ts";
import { addDays, exchangeDate, isTradingDay } from "../core/calendar.ts";
import type { Timeframe } from "../core/types.ts";
import {
  type BarColumns,
  listValidationReports,
  parseCsv,
  readBars,
  readQuarantine,
  REPORT_CSV_HEADER,
} from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import { type CoverageDay, type CoverageSummary, summarizeCoverage } from "./coverage.ts";
import { badRequest } from "./errors.ts";
import { href, Html, html } from "./html.ts";
import { checkRange, parseSymbol } from "./params.ts";
import { CHART_RANGES, type ChartRange, type ParsedQuery, parseQuery } from "./queries.ts";
import {
  heavy,
  masterRows,
  noBarsError,
  referenceStore,
  responders,
  storedCoverage,
  viewOf,
} from "./services.ts";
import {
  empty,
  formatTime,
  type LayoutContext,
  masterPanel,
  masterSummary,
  nyOffsetMs,
  tableHead,
  timeTag,
  type TimeZoneSetting,
} from "./views.ts";

/** Findings and quarantined bars marked on one chart at most. */
const MAX_MARKERS = 500;

/** Validation reports searched for a chart's findings, newest first. */
const MAX_MARKER_REPORTS = 20;

/** Bars the moving-average overlay averages. */
export const MOVING_AVERAGE_BARS = 20;

/** Calendar days a symbol page shows by default, per timeframe (about 5 sessions of 1m bars). */
const DEFAULT_WINDOW_DAYS: Readonly<Record<Timeframe, number>> = {
  "1m": 7,
  "5m": 28,
  "15m": 56,
  "30m": 91,
  "1h": 182,
  "4h": 365,
  "1d": 1096,
};

/** Registers the symbol page and its chart partial. */
export function registerChart(app: Hono, ctx: WebContext, layout: LayoutContext): void {
  const { deps } = ctx;
  const { render, fragment } = responders(layout);

  app.get("/symbols/:symbol", async (c) => {
    const parsed = parseQuery(c.req.query(), "GET /symbols/{symbol}");
    const symbol = parseSymbol(c.req.param("symbol"));
    const tz = viewOf(c).tz;
    const panel = await chartData(ctx, symbol, parsed, tz);
    const series = (await deps.data.series()).filter((s) => s.symbol === symbol);
    const master = masterRows(ctx, [symbol]).get(symbol);
    const history = master === undefined ? [] : referenceStore(ctx).history(symbol);
    const body = html`<h1>${symbol}${
      master?.name
        ? html`
          <span class="muted small">${master.name}</span>
        `
        : ""
    }</h1>
${masterSummary(master, history)}
<div class="cards series-cards">${
      series.map((s) =>
        html`
          <div class="card" data-timeframe="${s.timeframe}">
            <div class="label">${s.timeframe}</div>
            <div class="value">${formatCount(s.rows)}</div>
            <div class="small muted">${_cardTime(s.firstTs, s.timeframe, tz)} to ${_cardTime(
              s.lastTs,
              s.timeframe,
              tz,
            )}</div>
          </div>
        `
      )
    }</div>
${chartPanel(panel)}
<h2>Reference data</h2>
${masterPanel(symbol, master, history)}`;
    return render(c, symbol, "symbols", body);
  });

  app.get("/partials/chart", async (c) => {
    const { symbol, ...parsed } = parseQuery(c.req.query(), "GET /partials/chart");
    return fragment(c, chartPanel(await chartData(ctx, symbol, parsed, viewOf(c).tz)));
  });
}

/** `[start, end]` of a range button: back from `last` (the last stored date), not before `first`. */
export function rangeDates(range: ChartRange, first: string, last: string): [string, string] {
  const clamp = (date: string) => (date < first ? first : date);
  const monthsBack = (months: number) => {
    const [y, m, d] = last.split("-").map(Number);
    const target = new Date(Date.UTC(y, m - 1 - months, 1));
    const days = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0))
      .getUTCDate();
    target.setUTCDate(Math.min(d, days));
    return addDays(target.toISOString().slice(0, 10), 1);
  };
  switch (range) {
    case "1D":
      return [last, last];
    case "5D": {
      let date = last;
      for (let seen = isTradingDay(last) ? 1 : 0; seen < 5;) {
        date = addDays(date, -1);
        if (isTradingDay(date)) seen++;
      }
      return [clamp(date), last];
    }
    case "1M":
      return [clamp(monthsBack(1)), last];
    case "6M":
      return [clamp(monthsBack(6)), last];
    case "YTD":
      return [clamp(`${last.slice(0, 4)}-01-01`), last];
    case "1Y":
      return [clamp(monthsBack(12)), last];
    case "All":
      return [first, last];
  }
}

async function chartData(
  ctx: WebContext,
  symbol: string,
  query: Pick<
    ParsedQuery<"GET /symbols/{symbol}">,
    "timeframe" | "start" | "end" | "range" | "compare"
  >,
  tz: TimeZoneSetting,
): Promise<ChartPanelData> {
  const { timeframe: requested, start: startParam, end: endParam, range } = query;
  checkRange(startParam, endParam);
  if (range !== undefined && (startParam !== undefined || endParam !== undefined)) {
    throw badRequest(`Invalid range ${range}: give range or start and end, not both`);
  }
  const stored = await heavy(ctx, () => ctx.deps.data.series());
  const series = stored.filter((s) => s.symbol === symbol);
  if (series.length === 0) throw await noBarsError(ctx, symbol);
  const timeframes = series.map((s) => s.timeframe);
  const timeframe = requested ?? timeframes[0];
  const shown = series.find((s) => s.timeframe === timeframe) ?? series[0];
  const firstDay = exchangeDate(shown.firstTs);
  const lastDay = exchangeDate(shown.lastTs);
  const ranged = range === undefined ? undefined : rangeDates(range, firstDay, lastDay);
  const end = ranged?.[1] ?? endParam ?? lastDay;
  const start = ranged?.[0] ?? startParam ??
    (() => {
      const from = addDays(end, 1 - DEFAULT_WINDOW_DAYS[timeframe]);
      return from < firstDay ? (firstDay <= end ? firstDay : end) : from;
    })();
  if (start > end) throw badRequest(`Invalid range: start ${start} is after end ${end}`);
  const { bars, truncated } = await _readChartBars(ctx, symbol, timeframe, start, end);
  let compare: ChartPanelData["compare"];
  if (query.compare !== undefined) {
    const known = stored.some((s) => s.symbol === query.compare && s.timeframe === timeframe);
    const read = known
      ? await _readChartBars(ctx, query.compare, timeframe, start, end)
      : { bars: [] };
    compare = { symbol: query.compare, bars: read.bars };
  }
  // The calendar spans whole months of the range, at most the last 12, and none before the
  // first stored bar (days never asked for are not gaps).
  const monthStart = `${end.slice(0, 7)}-01`;
  let calendarStart = `${(start < firstDay ? firstDay : start).slice(0, 7)}-01`;
  const earliest = addDays(monthStart, -335).slice(0, 7) + "-01";
  if (calendarStart < earliest) calendarStart = earliest;
  if (calendarStart > monthStart) calendarStart = monthStart;
  const calendarEnd = addDays(addDays(monthStart, 32).slice(0, 7) + "-01", -1);
  // An aggregated timeframe's days are judged by the 1m bars beneath them too.
  const byMinutes = timeframe !== "1m" && timeframes.includes("1m");
  const calendar = await storedCoverage(ctx, symbol, {
    timeframe,
    start: calendarStart,
    end: calendarEnd,
  });
  return {
    symbol,
    timeframe,
    timeframes,
    start,
    end,
    range,
    tz,
    stylesheet: ctx.asset("chart.css"),
    bars,
    barCount: bars[0]?.length ?? 0,
    truncated,
    compare,
    markers: bars.length === 0 ? [] : await chartMarkers(ctx, symbol, timeframe, start, end),
    calendar,
    calendarByMinutes: byMinutes,
    summary: summarizeCoverage(calendar),
  };
}

/** The newest bars (at most `chartMaxBars`) of a range, as one chunk oldest first. */
async function _readChartBars(
  ctx: WebContext,
  symbol: string,
  timeframe: Timeframe,
  start: string,
  end: string,
): Promise<{ bars: BarColumns[]; truncated: boolean }> {
  const max = ctx.limits.chartMaxBars;
  const chunks: BarColumns[] = [];
  let count = 0;
  await heavy(ctx, () =>
    ctx.deps.data.withEngine((engine) =>
      readBars(
        engine,
        { symbol, timeframe, start, end, limit: max + 1, descending: true },
        (chunk) => {
          chunks.push(chunk);
          count += chunk.length;
        },
        { timeoutMs: ctx.limits.queryTimeoutMs },
      )
    ));
  return { bars: _oldestFirst(chunks, Math.min(count, max)), truncated: count > max };
}

/** A validation finding or a quarantined bar, marked on the chart at its bar. */
export interface ChartMarker {
  /** Start of the bar, epoch ms. */
  ts: number;
  /** Trading date of the bar. */
  date: string;
  /** `error`, `warn` or `info` for findings of a report; `quarantined` for a rejected bar. */
  kind: "error" | "warn" | "info" | "quarantined";
  rule: string;
  detail: string;
  /** Where the finding is shown: its validation report, or the job that quarantined the bar. */
  href: string;
}

/**
 * The findings of the stored validation reports (newest report first, one marker per bar and
 * rule) and the quarantined bars of `symbol`'s `timeframe` between two dates, in time order.
 */
export async function chartMarkers(
  ctx: WebContext,
  symbol: string,
  timeframe: Timeframe,
  start: string,
  end: string,
): Promise<ChartMarker[]> {
  const byKey = new Map<string, ChartMarker>();
  // Reports are read from the store one symbol's CSV at a time (a report of 500 symbols holds
  // 500 files), when this build stores reports at all.
  if (ctx.deps.validation !== undefined) {
    const records = listValidationReports(ctx.deps.store.meta.db, { limit: 200 }).filter((r) =>
      r.timeframe === timeframe && r.symbols.includes(symbol) && r.start <= end && r.end >= start
    ).slice(0, MAX_MARKER_REPORTS);
    for (const record of records) {
      for (const row of await _reportRows(ctx.deps.store.dataDir, record.path, symbol)) {
        const ts = Date.parse(row.ts);
        if (!Number.isFinite(ts)) continue;
        const date = exchangeDate(ts);
        if (date < start || date > end) continue;
        const key = `${ts}|${row.rule}`;
        if (byKey.has(key)) continue;
        const kind = row.severity === "error" || row.severity === "warn" ? row.severity : "info";
        byKey.set(key, {
          ts,
          date,
          kind,
          rule: row.rule,
          detail: row.detail,
          href: findingHref(record.id, row.rule),
        });
      }
    }
  }
  const quarantined = await heavy(ctx, async () => {
    const connection = await (await ctx.deps.store.duckdb()).connect();
    try {
      return await readQuarantine(connection, ctx.deps.store.dataDir, timeframe, symbol, {
        start,
        end,
      });
    } finally {
      connection.closeSync();
    }
  });
  for (const q of quarantined) {
    const key = `${q.bar.ts}|${q.rule}`;
    const reported = byKey.get(key);
    byKey.set(key, {
      ts: q.bar.ts,
      date: q.bar.tradingDate,
      kind: "quarantined",
      rule: q.rule,
      detail: q.detail,
      href: reported?.href ?? `/jobs/${encodeURIComponent(q.jobId)}`,
    });
  }
  return [...byKey.values()].sort((a, b) => a.ts - b.ts || a.rule.localeCompare(b.rule))
    .slice(0, MAX_MARKERS);
}

/** The rows of one symbol's CSV in a report directory; none when the report has no such file. */
async function _reportRows(
  dataDir: string,
  reportPath: string,
  symbol: string,
): Promise<{ ts: string; rule: string; severity: string; detail: string }[]> {
  const path = join(reportPath, `${symbol}.csv`);
  let text: string;
  try {
    text = await Deno.readTextFile(join(dataDir, path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw new Error(`Cannot read validation report ${path}`, { cause: error });
  }
  const lines = parseCsv(text);
  if (lines.length === 0 || lines[0].join(",") !== REPORT_CSV_HEADER) {
    throw new Error(`Cannot read validation report ${path}: bad header`);
  }
  return lines.slice(1).filter((line) => line[0] === symbol).map((line) => ({
    ts: line[1],
    rule: line[2],
    severity: line[3],
    detail: line[4] ?? "",
  }));
}

/** The link of a report's finding: the report, filtered to the rule. */
export function findingHref(reportId: string, rule: string): string {
  return href(`/validation/${encodeURIComponent(reportId)}`, { rule });
}

/** A card's first or last bar: its trading date for daily bars, else the time in `tz`. */
function _cardTime(ms: number | null, timeframe: Timeframe, tz: TimeZoneSetting): Html {
  return timeTag(ms, tz, { date: timeframe === "1d" });
}

/** Chunks read newest first, as one chunk oldest first, keeping the newest `keep` rows. */
function _oldestFirst(chunks: readonly BarColumns[], keep: number): BarColumns[] {
  if (keep === 0) return [];
  const rows: [BarColumns, number][] = [];
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length && rows.length < keep; i++) rows.push([chunk, i]);
  }
  rows.reverse();
  const floats = (
    name: "ts" | "open" | "high" | "low" | "close" | "volume" | "vwap" | "tradeCount",
  ) => Float64Array.from(rows, ([chunk, i]) => chunk[name][i]);
  return [{
    length: keep,
    ts: floats("ts"),
    tsMicros: BigInt64Array.from(rows, ([chunk, i]) => chunk.tsMicros[i]),
    open: floats("open"),
    high: floats("high"),
    low: floats("low"),
    close: floats("close"),
    volume: floats("volume"),
    vwap: floats("vwap"),
    tradeCount: floats("tradeCount"),
    tradingDate: rows.map(([chunk, i]) => chunk.tradingDate[i]),
    session: rows.map(([chunk, i]) => chunk.session[i]),
  }];
}

/** Everything the chart panel of a symbol page shows. */
export interface ChartPanelData {
  symbol: string;
  timeframe: Timeframe;
  timeframes: readonly Timeframe[];
  start: string;
  end: string;
  /** The range button the dates came from, if any. */
  range?: ChartRange;
  /** URL of web/static/chart.css, linked from the panel so that swapped-in panels have it. */
  stylesheet?: string;
  /** Time zone of the server-rendered times (the script re-renders them for `local`). */
  tz?: TimeZoneSetting;
  /** Chart rows, oldest first. */
  bars: BarColumns[];
  barCount: number;
  truncated: boolean;
  /** A second symbol drawn as % change over the same dates (no bars: none stored). */
  compare?: { symbol: string; bars: BarColumns[] };
  /** Findings and quarantined bars in the range. */
  markers?: ChartMarker[];
  calendar: CoverageDay[];
  /** Whether the calendar judges the days by their 1m bars (an aggregated timeframe). */
  calendarByMinutes?: boolean;
  summary: CoverageSummary;
}

const _SESSION_CODES: Record<string, string> = { pre: "p", regular: "r", post: "o" };

/** Seconds to add to a UTC instant for New York wall-clock time, per trading date. */
function _offsetSeconds(cache: Map<string, number>, tradingDate: string): number {
  let offset = cache.get(tradingDate);
  if (offset === undefined) cache.set(tradingDate, offset = nyOffsetMs(tradingDate) / 1000);
  return offset;
}

/**
 * The chart's data attributes: `data-bars` rows `[time, open, high, low, close, volume]` with
 * time in New York wall-clock seconds (daily bars: their trading date at 00:00), `data-offsets`
 * `[[first row, seconds]...]` (wall clock minus UTC, so scripts can show other zones),
 * `data-vwap` (null where unknown), `data-sessions` one letter per row (p pre, r regular, o post),
 * `data-compare` `[[UTC seconds or trading date, close]...]` and `data-markers`.
 */
function _chartAttributes(data: ChartPanelData): Record<string, string> {
  const rows: string[] = [];
  const vwap: string[] = [];
  const offsets: [number, number][] = [];
  let sessions = "";
  const cache = new Map<string, number>();
  const daily = data.timeframe === "1d";
  for (const chunk of data.bars) {
    for (let i = 0; i < chunk.length; i++) {
      const offset = _offsetSeconds(cache, chunk.tradingDate[i]);
      if (offsets.length === 0 || offsets[offsets.length - 1][1] !== offset) {
        offsets.push([rows.length, offset]);
      }
      rows.push(
        `[${chunk.ts[i] / 1000 + offset},${chunk.open[i]},${chunk.high[i]},${chunk.low[i]},${
          chunk.close[i]
        },${chunk.volume[i]}]`,
      );
      vwap.push(Number.isNaN(chunk.vwap[i]) ? "null" : String(chunk.vwap[i]));
      sessions += _SESSION_CODES[chunk.session[i]] ?? "r";
    }
  }
  const compare: string[] = [];
  for (const chunk of data.compare?.bars ?? []) {
    for (let i = 0; i < chunk.length; i++) {
      const time = daily ? Date.parse(chunk.tradingDate[i]) / 1000 : chunk.ts[i] / 1000;
      compare.push(`[${time},${chunk.close[i]}]`);
    }
  }
  const markers = (data.markers ?? []).map((m) => ({
    t: daily ? Date.parse(m.date) / 1000 : m.ts / 1000,
    kind: m.kind,
    rule: m.rule,
    detail: m.detail,
    href: m.href,
  }));
  return {
    bars: `[${rows.join(",")}]`,
    offsets: JSON.stringify(offsets),
    vwap: `[${vwap.join(",")}]`,
    sessions,
    compare: `[${compare.join(",")}]`,
    markers: JSON.stringify(markers),
  };
}

const _ZONE_TEXT: Record<TimeZoneSetting, string> = {
  exchange: "New York time",
  utc: "UTC",
  local: "your time zone",
};

/**
 * The chart panel: timeframe tabs, range buttons and date form (all reload only this panel through
 * htmx), overlay toggles and a compare field, the legend and candlestick chart with volume,
 * markers for findings, the coverage calendar and the latest bars.
 */
export function chartPanel(data: ChartPanelData): Html {
  const tz = data.tz ?? "exchange";
  const keep: Record<string, string> = data.compare ? { compare: data.compare.symbol } : {};
  const panel = (params: Record<string, string>) =>
    href("/partials/chart", { symbol: data.symbol, ...params, ...keep });
  const pageUrl = (params: Record<string, string>) =>
    href(`/symbols/${encodeURIComponent(data.symbol)}`, { ...params, ...keep });
  const intraday = data.timeframe !== "1d";
  // The newest 25 bars, newest first.
  const flat: { chunk: BarColumns; i: number }[] = [];
  for (let c = data.bars.length - 1; c >= 0 && flat.length < 25; c--) {
    const chunk = data.bars[c];
    for (let i = chunk.length - 1; i >= 0 && flat.length < 25; i--) flat.push({ chunk, i });
  }
  const latest = flat.map(({ chunk, i }) =>
    html`
      <tr>
        <td>${intraday ? timeTag(chunk.ts[i], tz) : chunk.tradingDate[i]}</td>
        <td class="num">${chunk.open[i]}</td>
        <td class="num">${chunk.high[i]}</td>
        <td class="num">${chunk.low[i]}</td>
        <td class="num">${chunk.close[i]}</td>
        <td class="num">${formatCount(chunk.volume[i])}</td>
        <td class="num">${Number.isNaN(chunk.vwap[i]) ? "" : Number(chunk.vwap[i].toFixed(4))}</td>
        <td>${chunk.session[i]}</td>
      </tr>
    `
  );
  const csv = href("/api/bars", {
    symbol: data.symbol,
    timeframe: data.timeframe,
    start: data.start,
    end: data.end,
    format: "csv",
    limit: 1_000_000,
  });
  const rangeParams: Record<string, string> = data.range === undefined ? {} : { range: data.range };
  const attributes = data.barCount === 0 ? undefined : _chartAttributes(data);
  const compareCount = (data.compare?.bars ?? []).reduce((n, chunk) => n + chunk.length, 0);
  const markers = data.markers ?? [];
  const body = html`
    <section id="chart-panel" data-symbol="${data.symbol}" data-timeframe="${data.timeframe}"
      data-start="${data.start}" data-end="${data.end}" data-range="${data.range ?? ""}">
    ${data.stylesheet ? html`<link rel="stylesheet" href="${data.stylesheet}">` : ""}
    <div class="controls">
    <nav class="tabs" aria-label="timeframe">${data.timeframes.map((tf) =>
      html`
        <a href="${pageUrl({ timeframe: tf, ...rangeParams })}" class="${tf === data.timeframe
          ? "active"
          : ""}" hx-get="${panel({ timeframe: tf, ...rangeParams })}" hx-target="#chart-panel"
          hx-swap="outerHTML" hx-push-url="${pageUrl({ timeframe: tf, ...rangeParams })}">${tf}</a>
      `
    )}</nav>
    <nav class="tabs ranges" aria-label="range">${CHART_RANGES.map((range) =>
      html`
        <a href="${pageUrl({ timeframe: data.timeframe, range })}" class="${range === data.range
          ? "active"
          : ""}" data-range="${range}" hx-get="${panel({
            timeframe: data.timeframe,
            range,
          })}"
          hx-target="#chart-panel" hx-swap="outerHTML" hx-push-url="${pageUrl({
            timeframe: data.timeframe,
            range,
          })}">${range}</a>
      `
    )}</nav>
    <form class="inline" hx-get="/partials/chart" hx-target="#chart-panel" hx-swap="outerHTML" hx-trigger="change, submit" hx-push-url="true">
    <input type="hidden" name="symbol" value="${data.symbol}">
    <input type="hidden" name="timeframe" value="${data.timeframe}">
    <label>from<input type="date" name="start" value="${data.start}"></label>
    <label>to<input type="date" name="end" value="${data.end}"></label>
    <label class="compare">compare<input type="text" name="compare" value="${data.compare?.symbol ??
      ""}" placeholder="symbol" size="7" autocomplete="off" spellcheck="false"></label>
    <button type="submit" class="secondary">Show</button>
    </form>
    </div>
    ${attributes === undefined
      ? empty(
        html`No ${data.timeframe} bars of ${data.symbol} from ${data.start} to ${data.end}.`,
      )
      : html`
        <div class="chart-tools">
          <span class="overlays" role="group" aria-label="overlays">
            ${intraday
              ? html`<label class="check"><input type="checkbox" data-overlay="vwap" checked> VWAP</label>`
              : ""}
            <label class="check"><input type="checkbox" data-overlay="ma" checked> MA ${MOVING_AVERAGE_BARS}</label>
            ${intraday
              ? html`<label class="check"><input type="checkbox" data-overlay="sessions" checked> pre/post</label>`
              : ""}
            <label class="check"><input type="checkbox" data-overlay="markers" checked> findings</label>
          </span>
        </div>
        ${data.compare && compareCount === 0
          ? html`
            <p
              class="small muted compare-note">No ${data.timeframe} bars of ${data.compare
                .symbol} from ${data.start} to ${data.end} to compare with.</p>
          `
          : ""}
        <div class="chart-legend" aria-live="off">${_legend(data)}</div>
        <div class="chart" role="img" aria-label="${data.symbol} ${data
          .timeframe} candlestick chart"
          data-intraday="${intraday ? "1" : "0"}" data-bars="${attributes.bars}"
          data-offsets="${attributes.offsets}" data-vwap="${attributes.vwap}"
          data-sessions="${attributes.sessions}" data-compare="${attributes.compare}"
          data-compare-symbol="${data.compare?.symbol ?? ""}" data-markers="${attributes
            .markers}" data-ma="${MOVING_AVERAGE_BARS}"
          data-symbol="${data.symbol}"></div>
        <p
          class="small muted chart-note">${formatCount(data.barCount)} ${data
            .timeframe} bars, ${data
            .start} to ${data.end}, ${intraday
            ? html`<span class="chart-zone">${_ZONE_TEXT[tz]}</span>`
            : "by trading date"}${data.truncated
            ? " (the most recent ones; pick a shorter range or a longer timeframe for all)"
            : ""}.${intraday ? " Shaded: pre- and post-market." : ""}</p>
        ${_findingsList(markers, tz, intraday)}
      `}
    <h2>Coverage${data.calendarByMinutes
      ? html`
        <span class="small muted">(days judged by their 1m bars)</span>
      `
      : ""}</h2>
    ${coverageView(data.calendar, data.summary)}
    ${backfillAction(data)}
    <h2>Latest bars <a class="small" href="${csv}" download>download CSV</a></h2>
    ${latest.length === 0 ? empty("No bars in this range.") : html`
      <div class="table-wrap">
        <table>
          ${tableHead([
            intraday ? "time" : "date",
            ...["open", "high", "low", "close", "volume", "vwap"].map((num) => ({ num })),
            "session",
          ])}
          <tbody>${latest}</tbody>
        </table>
      </div>
    `}
    </section>
  `;
  // The htmx partial is this section alone, without the whitespace of the template.
  return new Html(body.value.trim());
}

/** The legend as the server shows it: the last bar (the script follows the crosshair). */
function _legend(data: ChartPanelData): Html {
  const chunk = data.bars[data.bars.length - 1];
  const i = chunk.length - 1;
  const previous = i > 0 ? chunk.close[i - 1] : chunk.open[i];
  const change = chunk.close[i] - previous;
  const pct = previous === 0 ? 0 : (change / previous) * 100;
  const item = (name: string, value: string, cls = "") =>
    html`<span class="item ${cls}" data-field="${name}"><b>${
      name === "time" ? "" : name.toUpperCase().slice(0, 1)
    }</b>${value}</span>`;
  const price = (n: number) => n.toFixed(n >= 1 ? 2 : 4);
  return html`
    <span
      class="item symbol">${data.symbol} · ${data.timeframe}</span>${item(
        "time",
        data.timeframe === "1d"
          ? chunk.tradingDate[i]
          : formatTime(chunk.ts[i], data.tz ?? "exchange"),
      )}${item("open", price(chunk.open[i]))}${item("high", price(chunk.high[i]))}${item(
        "low",
        price(chunk.low[i]),
      )}${item("close", price(chunk.close[i]))}${item(
        "volume",
        formatCount(chunk.volume[i]),
      )}${item(
        "change",
        `${change >= 0 ? "+" : ""}${price(change)} (${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%)`,
        change >= 0 ? "up" : "down",
      )}
  `;
}

/** The findings of the range as links, newest first, below the chart. */
function _findingsList(markers: readonly ChartMarker[], tz: TimeZoneSetting, intraday: boolean) {
  if (markers.length === 0) return html``;
  const counts = new Map<string, number>();
  for (const m of markers) counts.set(m.kind, (counts.get(m.kind) ?? 0) + 1);
  const summary = [...counts].map(([kind, n]) => `${formatCount(n)} ${kind}`).join(", ");
  return html`
    <details class="chart-findings">
      <summary>Findings in this range: ${summary}</summary>
      <ul>${[...markers].reverse().slice(0, 100).map((m) =>
        html`
          <li
            class="finding-${m.kind}"><a href="${m.href}">${intraday
              ? timeTag(m.ts, tz)
              : m.date}</a> <span class="badge ${m.kind}">${m.kind}</span> <code>${m
              .rule}</code> <span
                    class="muted">${m.detail}</span></li>
        `
      )}</ul>
    </details>
  `;
}

/**
 * The "Backfill missing days" button of a chart panel's calendar, when it shows missing or
 * partial days: a backfill of the symbol and timeframe over the calendar's dates up to today.
 */
export function backfillAction(
  data: Pick<ChartPanelData, "symbol" | "timeframe" | "calendar" | "summary">,
): Html {
  const gaps = data.summary.missing + data.summary.partial;
  const days = data.calendar.filter((day) => day.status !== "future");
  if (gaps === 0 || days.length === 0) return html``;
  const start = days[0].date;
  const end = days[days.length - 1].date;
  return html`
    <form class="inline" hx-post="/partials/backfill" hx-target="#backfill-result" hx-swap="innerHTML">
      <input type="hidden" name="symbols" value="${data.symbol}">
      <input type="hidden" name="timeframe" value="${data.timeframe}">
      <input type="hidden" name="start" value="${start}">
      <input type="hidden" name="end" value="${end}">
      <button type="submit">Backfill missing days</button>
      <span
        class="small muted">${formatCount(data.summary.missing)} missing and ${formatCount(
          data.summary.partial,
        )} partial day(s) from ${start} to ${end}, as <code>marketpipe backfill</code>.</span>
    </form>
    <div id="backfill-result"></div>
  `;
}

/** The coverage calendar as month grids with a legend. */
export function coverageView(days: readonly CoverageDay[], summary: CoverageSummary): Html {
  if (days.length === 0) return empty("No dates in range.");
  const months = Map.groupBy(days, (day) => day.date.slice(0, 7));
  const shown = [...months].slice(-12);
  const legend: [string, string, number][] = [
    ["full", "data", summary.full],
    ["partial", "partial", summary.partial],
    ["missing", "gap", summary.missing + summary.empty],
    ["holiday", "holiday", summary.holiday],
  ];
  return html`<div class="legend">${
    legend.map(([cls, label, count]) =>
      html`<span><span class="day ${cls}"></span>${label} ${formatCount(count)}</span>`
    )
  }${
    months.size > shown.length
      ? html`<span class="muted">(last ${shown.length} of ${months.size} months shown)</span>`
      : ""
  }</div>
<div class="calendar">${
    shown.map(([month, list]) => {
      const lead = (new Date(`${month}-01T00:00:00Z`).getUTCDay() + 6) % 7;
      const firstDay = Number(list[0].date.slice(8, 10));
      const blanks = lead + firstDay - 1;
      return html`
        <div class="month">
          <h3>${month}</h3>
          <div class="days">${["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"].map((d) =>
            html`<div class="day blank small">${d}</div>`
          )}${Array.from({ length: blanks }, () => html`<div class="day blank"></div>`)}${list.map((
            day,
          ) =>
            html`<div class="day ${day.status}" title="${_dayTitle(day)}" data-date="${day.date}">${
              Number(day.date.slice(8, 10))
            }</div>`
          )}</div>
        </div>
      `;
    })
  }</div>`;
}

function _dayTitle(day: CoverageDay): string {
  switch (day.status) {
    case "full":
    case "partial":
      return `${day.date}: ${day.regular} of ${day.expected} regular-session bars, ${day.bars} in all${
        day.base
          ? `; 1m beneath: ${day.base.regular} of ${day.base.expected} (${day.base.status})`
          : ""
      } (${day.status})`;
    case "empty":
      return `${day.date}: ingested, but the provider had no bars`;
    case "missing":
      return `${day.date}: no bars stored`;
    case "holiday":
      return `${day.date}: exchange closed${day.holiday ? ` (${day.holiday})` : ""}`;
    case "weekend":
      return `${day.date}: weekend`;
    case "future":
      return `${day.date}: in the future`;
  }
}
