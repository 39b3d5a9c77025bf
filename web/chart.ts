/**
 * The symbol page: its chart panel (candles, coverage calendar, latest bars) and the htmx
 * partial that swaps it when the timeframe or range changes.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { formatCount } from "../core/format.ts";
import { addDays, exchangeDate } from "../core/calendar.ts";
import type { Timeframe } from "../core/types.ts";
import { type BarColumns, readBars } from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import { type CoverageDay, type CoverageSummary, summarizeCoverage } from "./coverage.ts";
import { badRequest } from "./errors.ts";
import { href, type Html, html } from "./html.ts";
import { checkRange, parseSymbol } from "./params.ts";
import { type ParsedQuery, parseQuery } from "./queries.ts";
import { heavy, masterRows, noBarsError, referenceStore, storedCoverage } from "./services.ts";
import {
  empty,
  type LayoutContext,
  masterPanel,
  masterSummary,
  nyOffsetMs,
  page,
  type Section,
  shortTime,
} from "./views.ts";

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
  const render = (c: Context, title: string, section: Section, body: Html, status = 200) =>
    c.html(page(layout, { title, section, body }).value, status as 200);
  const fragment = (c: Context, body: Html, status = 200) => c.html(body.value, status as 200);

  app.get("/symbols/:symbol", async (c) => {
    const query = parseQuery(c.req.query(), "GET /symbols/{symbol}");
    const symbol = parseSymbol(c.req.param("symbol"));
    const panel = await chartData(ctx, symbol, query);
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
<div class="cards">${
      series.map((s) =>
        html`
          <div class="card">
            <div class="label">${s.timeframe}</div>
            <div class="value">${formatCount(s.rows)}</div>
            <div class="small muted">${shortTime(s.firstTs)} to ${shortTime(s.lastTs)}</div>
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
    const { symbol, ...query } = parseQuery(c.req.query(), "GET /partials/chart");
    return fragment(c, chartPanel(await chartData(ctx, symbol, query)));
  });
}

async function chartData(
  ctx: WebContext,
  symbol: string,
  query: ParsedQuery<"GET /symbols/{symbol}">,
): Promise<ChartPanelData> {
  const { timeframe: requested, start: startParam, end: endParam } = query;
  checkRange(startParam, endParam);
  const series = (await heavy(ctx, () => ctx.deps.data.series())).filter((s) =>
    s.symbol === symbol
  );
  if (series.length === 0) throw await noBarsError(ctx, symbol);
  const timeframes = series.map((s) => s.timeframe);
  const timeframe = requested ?? timeframes[0];
  const stored = series.find((s) => s.timeframe === timeframe) ?? series[0];
  const firstDay = exchangeDate(stored.firstTs);
  const end = endParam ?? exchangeDate(stored.lastTs);
  const start = startParam ??
    (() => {
      const from = addDays(end, 1 - DEFAULT_WINDOW_DAYS[timeframe]);
      return from < firstDay ? (firstDay <= end ? firstDay : end) : from;
    })();
  if (start > end) throw badRequest(`Invalid range: start ${start} is after end ${end}`);
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
  const truncated = count > max;
  const bars = _oldestFirst(chunks, Math.min(count, max));
  // The calendar spans whole months of the range, at most the last 12, and none before the
  // first stored bar (days never asked for are not gaps).
  const monthStart = `${end.slice(0, 7)}-01`;
  let calendarStart = `${(start < firstDay ? firstDay : start).slice(0, 7)}-01`;
  const earliest = addDays(monthStart, -335).slice(0, 7) + "-01";
  if (calendarStart < earliest) calendarStart = earliest;
  if (calendarStart > monthStart) calendarStart = monthStart;
  const calendarEnd = addDays(addDays(monthStart, 32).slice(0, 7) + "-01", -1);
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
    bars: bars.length === 0 ? [] : [bars[0]],
    barCount: bars.length === 0 ? 0 : bars[0].length,
    truncated,
    calendar,
    summary: summarizeCoverage(calendar),
  };
}

/** Chunks read newest first, as one chunk oldest first, keeping the newest `keep` rows. */
function _oldestFirst(chunks: readonly BarColumns[], keep: number): BarColumns[] {
  if (keep === 0) return [];
  const out: BarColumns = {
    length: keep,
    ts: new Float64Array(keep),
    tsMicros: new BigInt64Array(keep),
    open: new Float64Array(keep),
    high: new Float64Array(keep),
    low: new Float64Array(keep),
    close: new Float64Array(keep),
    volume: new Float64Array(keep),
    vwap: new Float64Array(keep),
    tradeCount: new Float64Array(keep),
    tradingDate: new Array<string>(keep),
    session: new Array<string>(keep),
  };
  let target = keep - 1;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length && target >= 0; i++, target--) {
      out.ts[target] = chunk.ts[i];
      out.tsMicros[target] = chunk.tsMicros[i];
      out.open[target] = chunk.open[i];
      out.high[target] = chunk.high[i];
      out.low[target] = chunk.low[i];
      out.close[target] = chunk.close[i];
      out.volume[target] = chunk.volume[i];
      out.vwap[target] = chunk.vwap[i];
      out.tradeCount[target] = chunk.tradeCount[i];
      out.tradingDate[target] = chunk.tradingDate[i];
      out.session[target] = chunk.session[i];
    }
  }
  return [out];
}

/** Everything the chart panel of a symbol page shows. */
export interface ChartPanelData {
  symbol: string;
  timeframe: Timeframe;
  timeframes: readonly Timeframe[];
  start: string;
  end: string;
  /** Chart rows, oldest first. */
  bars: BarColumns[];
  barCount: number;
  truncated: boolean;
  calendar: CoverageDay[];
  summary: CoverageSummary;
}

/**
 * The chart panel: timeframe tabs and range form (both reload only this panel through htmx),
 * the candlestick chart, the coverage calendar and the latest bars.
 */
export function chartPanel(data: ChartPanelData): Html {
  const panel = (params: Record<string, string>) =>
    href("/partials/chart", { symbol: data.symbol, ...params });
  const pageUrl = (params: Record<string, string>) =>
    href(`/symbols/${encodeURIComponent(data.symbol)}`, { ...params });
  const intraday = data.timeframe !== "1d";
  const rows: string[] = [];
  const latest: Html[] = [];
  for (const chunk of data.bars) {
    let offsetDate = "";
    let offset = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk.tradingDate[i] !== offsetDate) {
        offsetDate = chunk.tradingDate[i];
        offset = nyOffsetMs(offsetDate);
      }
      // Wall-clock New York seconds, so the chart's axis reads in exchange time.
      rows.push(
        `[${(chunk.ts[i] + offset) / 1000},${chunk.open[i]},${chunk.high[i]},${chunk.low[i]},${
          chunk.close[i]
        },${chunk.volume[i]}]`,
      );
    }
  }
  const flat: { ts: number; chunk: BarColumns; index: number }[] = [];
  for (let c = data.bars.length - 1; c >= 0 && flat.length < 25; c--) {
    const chunk = data.bars[c];
    for (let i = chunk.length - 1; i >= 0 && flat.length < 25; i--) {
      flat.push({ ts: chunk.ts[i], chunk, index: i });
    }
  }
  for (const { ts, chunk, index: i } of flat) {
    const et = new Date(ts + nyOffsetMs(chunk.tradingDate[i])).toISOString();
    latest.push(
      html`
        <tr>
          <td>${intraday ? `${et.slice(0, 10)} ${et.slice(11, 16)}` : chunk.tradingDate[i]}</td>
          <td class="num">${chunk.open[i]}</td>
          <td class="num">${chunk.high[i]}</td>
          <td class="num">${chunk.low[i]}</td>
          <td class="num">${chunk.close[i]}</td>
          <td class="num">${formatCount(chunk.volume[i])}</td>
          <td class="num">${Number.isNaN(chunk.vwap[i])
            ? ""
            : Number(chunk.vwap[i].toFixed(4))}</td>
          <td>${chunk.session[i]}</td>
        </tr>
      `,
    );
  }
  const csv = href("/api/bars", {
    symbol: data.symbol,
    timeframe: data.timeframe,
    start: data.start,
    end: data.end,
    format: "csv",
    limit: 1_000_000,
  });
  return html`<section id="chart-panel" data-symbol="${data.symbol}" data-timeframe="${data.timeframe}">
<div class="controls">
<nav class="tabs" aria-label="timeframe">${
    data.timeframes.map((tf) =>
      html`
        <a href="${pageUrl({ timeframe: tf })}" class="${tf === data.timeframe
          ? "active"
          : ""}" hx-get="${panel({ timeframe: tf })}" hx-target="#chart-panel"
          hx-swap="outerHTML" hx-push-url="${pageUrl({ timeframe: tf })}">${tf}</a>
      `
    )
  }</nav>
<form class="inline" hx-get="/partials/chart" hx-target="#chart-panel" hx-swap="outerHTML" hx-trigger="change, submit" hx-push-url="true">
<input type="hidden" name="symbol" value="${data.symbol}">
<input type="hidden" name="timeframe" value="${data.timeframe}">
<label>from<input type="date" name="start" value="${data.start}"></label>
<label>to<input type="date" name="end" value="${data.end}"></label>
<button type="submit" class="secondary">Show</button>
</form>
</div>
${
    data.barCount === 0
      ? empty(
        html`No ${data.timeframe} bars of ${data.symbol} from ${data.start} to ${data.end}.`,
      )
      : html`
        <div class="chart" role="img" aria-label="${data.symbol} ${data
          .timeframe} candlestick chart"
          data-intraday="${intraday ? "1" : "0"}" data-bars="${"[" + rows.join(",") + "]"}"></div>
        <p
          class="small muted">${formatCount(data.barCount)} ${data.timeframe} bars, ${data
            .start} to ${data.end}, New York time${data.truncated
            ? " (the most recent ones; pick a shorter range or a longer timeframe for all)"
            : ""}.</p>
      `
  }
<h2>Coverage</h2>
${coverageView(data.calendar, data.summary)}
${backfillAction(data)}
<h2>Latest bars <a class="small" href="${csv}" download>download CSV</a></h2>
${
    latest.length === 0 ? empty("No bars in this range.") : html`
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>${intraday ? "time (ET)" : "date"}</th>
              <th class="num">open</th>
              <th class="num">high</th>
              <th class="num">low</th>
              <th class="num">close</th>
              <th class="num">volume</th>
              <th class="num">vwap</th>
              <th>session</th>
            </tr>
          </thead>
          <tbody>${latest}</tbody>
        </table>
      </div>
    `
  }
</section>`;
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
  const months = new Map<string, CoverageDay[]>();
  for (const day of days) {
    const key = day.date.slice(0, 7);
    let list = months.get(key);
    if (!list) months.set(key, list = []);
    list.push(day);
  }
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
      return `${day.date}: ${day.regular} of ${day.expected} regular-session bars, ${day.bars} in all (${day.status})`;
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
