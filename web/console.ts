/**
 * The SQL console: its page (editor, schema browser, history, shareable link), the partial that
 * runs a query and renders its result (a table with aligned numbers, a chart of a time column,
 * DuckDB's error verbatim) and the schema of the query engine as HTML and JSON.
 *
 * @module
 */
import type { Hono } from "hono";
import { formatCount, formatDuration } from "../core/format.ts";
import { TIMEFRAMES } from "../core/types.ts";
import {
  type QueryEngine,
  QueryRejectedError,
  type QueryResult,
  QuerySqlError,
  QueryTimeoutError,
  REFERENCE_TABLES,
  runQuery,
} from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import { href, type Html, html } from "./html.ts";
import { checkKnownParams } from "./params.ts";
import { heavy, queryInput, responders, timeZoneOf } from "./services.ts";
import { type LayoutContext, timeTag, type TimeZoneSetting } from "./views.ts";

/** One column of a table or view the console can query. */
export interface SchemaColumn {
  name: string;
  /** DuckDB's type, e.g. `TIMESTAMP WITH TIME ZONE`. */
  type: string;
}

/** A table or view the console can query, with its columns in order. */
export interface SchemaTable {
  name: string;
  kind: "view" | "table";
  columns: SchemaColumn[];
}

/**
 * The statement the console opens with: stored bars per symbol and timeframe, the timeframes in
 * their real order (1m 5m ... 1d), not alphabetically.
 */
export const DEFAULT_CONSOLE_QUERY =
  `SELECT symbol, timeframe, count(*) AS bars, min(ts) AS first, max(ts) AS last
FROM bars
GROUP BY symbol, timeframe
ORDER BY symbol, list_position([${TIMEFRAMES.map((tf) => `'${tf}'`).join(", ")}], timeframe)`;

/** Registers the SQL console page, its partials and `GET /api/schema`. */
export function registerConsole(app: Hono, ctx: WebContext, layout: LayoutContext): void {
  const { deps } = ctx;
  const { render, fragment } = responders(layout);
  const schema = () => heavy(ctx, () => deps.data.withEngine((engine) => readSchema(engine)));

  app.get("/query", (c) => {
    checkKnownParams(c.req.query(), ["sql", "tz"]);
    const sql = c.req.query("sql") ?? DEFAULT_CONSOLE_QUERY;
    const views = [...deps.data.timeframes().map((tf) => `bars_${tf}`), "bars"].join(", ");
    const maxSeconds = Math.ceil(ctx.limits.queryTimeoutMs / 1000);
    // Only this page needs its styles (a stylesheet link is allowed in the body).
    const body = html`
      <link rel="stylesheet" href="${layout.asset("console.css")}">
      <h1>Query</h1>
      <p
        class="muted small">Read-only SQL over the stored bars (DuckDB): SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN. Views: ${views}. Join the reference tables with <code>ON symbols.ticker = bars.symbol</code>. Ctrl-Enter (Cmd-Enter) runs the query.</p>
      <div class="console">
        <div class="console-main">
          <form method="post" action="/api/query?format=csv" class="console-form">
            <textarea name="sql" spellcheck="false" aria-label="SQL">${sql}</textarea>
            <div class="controls">
              <label>row limit<input type="number" name="limit" value="1000" min="1" max="${ctx
                .limits.maxQueryRows}"></label>
              <label>timeout (s)<input type="number" name="timeout" value="${Math.min(
                30,
                maxSeconds,
              )}" min="1" max="${maxSeconds}"></label>
              <button type="button" data-run title="Ctrl-Enter (Cmd-Enter)" hx-post="/partials/query"
                hx-include="closest form"
                hx-target="#query-result" hx-swap="innerHTML">Run</button>
              <button type="submit" class="secondary">Download CSV</button>
              <a class="button secondary" data-share href="${href("/query", { sql })}"
                title="Copy a link that opens this query">Copy link</a>
              <span class="small muted" data-share-status role="status"></span>
            </div>
          </form>
          <div id="query-result"></div>
        </div>
        <aside class="console-side">
          <section class="schema" aria-label="Schema">
            <h2>Schema</h2>
            <div id="schema-browser" hx-get="/partials/schema" hx-trigger="load"
              hx-swap="innerHTML">
              <p class="small muted">Loading the tables…</p>
            </div>
          </section>
          <section class="history" aria-label="Query history">
            <h2>History</h2>
            <ol id="query-history" class="query-history"></ol>
            <p class="small muted" data-history-empty>Queries you run are kept here (last 50, in
              this browser).</p>
          </section>
        </aside>
      </div>
    `;
    return render(c, "Query", "query", body);
  });

  app.post("/partials/query", async (c) => {
    checkKnownParams(c.req.query(), []);
    const { sql, limit, timeoutMs } = await queryInput(ctx, c);
    const started = performance.now();
    let result;
    try {
      result = await heavy(
        ctx,
        () => deps.data.withEngine((engine) => runQuery(engine, sql, { limit, timeoutMs })),
      );
    } catch (error) {
      // DuckDB's message carries a caret under the offending character: keep its lines as they are.
      const timeout = error instanceof QueryTimeoutError;
      if (timeout || error instanceof QuerySqlError || error instanceof QueryRejectedError) {
        return fragment(c, queryErrorView(error.message), timeout ? 504 : 400);
      }
      throw error;
    }
    return fragment(
      c,
      queryResultView(result, performance.now() - started, { tz: timeZoneOf(c) }),
    );
  });

  app.get("/partials/schema", async (c) => {
    checkKnownParams(c.req.query(), []);
    return fragment(c, schemaView(await schema()));
  });

  app.get("/api/schema", async (c) => {
    checkKnownParams(c.req.query(), []);
    return c.json({ tables: await schema() });
  });
}

/**
 * The tables and views user SQL can read, with their columns, as the engine itself describes them
 * (`duckdb_columns()`): the bar views by timeframe, `bars`, the reference tables, then any other.
 */
export async function readSchema(engine: QueryEngine): Promise<SchemaTable[]> {
  const result = await runQuery(
    engine,
    `SELECT c.table_name, v.view_name IS NOT NULL AS is_view, c.column_name, c.data_type
     FROM duckdb_columns() c
     LEFT JOIN duckdb_views() v ON v.database_name = c.database_name
       AND v.schema_name = c.schema_name AND v.view_name = c.table_name
     WHERE NOT c.internal AND c.schema_name = 'main'
     ORDER BY c.table_name, c.column_index`,
    { limit: Infinity },
  );
  const tables = new Map<string, SchemaTable>();
  for (const [table, isView, column, type] of result.rows) {
    const name = String(table);
    const entry: SchemaTable = tables.get(name) ??
      { name, kind: isView === true ? "view" : "table", columns: [] };
    tables.set(name, entry);
    entry.columns.push({ name: String(column), type: String(type) });
  }
  return [...tables.values()].sort((a, b) =>
    _schemaRank(a.name) - _schemaRank(b.name) || a.name.localeCompare(b.name)
  );
}

/** Bar views first in timeframe order, then `bars`, the reference tables, anything else. */
function _schemaRank(name: string): number {
  const timeframe = (TIMEFRAMES as readonly string[]).indexOf(name.replace(/^bars_/, ""));
  if (name.startsWith("bars_") && timeframe >= 0) return timeframe;
  if (name === "bars") return TIMEFRAMES.length;
  const reference = (REFERENCE_TABLES as readonly string[]).indexOf(name);
  return reference >= 0 ? TIMEFRAMES.length + 1 + reference : 100;
}

/** The schema browser: one collapsible entry per table or view, its columns and types inside. */
export function schemaView(tables: readonly SchemaTable[]): Html {
  if (tables.length === 0) {
    return html`<p class="small muted">No tables yet: ingest some bars first.</p>`;
  }
  return html`<ul class="schema-list">${
    tables.map((table, index) =>
      html`
        <li data-table="${table.name}">
          <details${index === 0
            ? html`
              open
            `
            : ""}>
            <summary><button type="button" class="link" data-insert="${table.name}"
                  title="Insert into the query">${table
                    .name}</button> <span class="small muted">${table.kind} · ${table.columns
                    .length} columns</span></summary>
            <ul class="schema-columns">${table.columns.map((column) =>
              html`<li><button type="button" class="link" data-insert="${column.name}"
            title="Insert into the query">${column.name}</button> <span class="small muted">${column.type}</span></li>`
            )}</ul>
            </details>
            </li>
      `
    )
  }</ul>`;
}

/** A query that DuckDB or the guard refused: the message as it is, caret line aligned. */
export function queryErrorView(message: string): Html {
  return html`<pre class="sql-error" role="alert">${message}</pre>`;
}

/** Options for {@link queryResultView}. */
export interface QueryResultViewOptions {
  /** Zone of the timestamps shown (default `exchange`). */
  tz?: TimeZoneSetting;
}

/**
 * Results of the SQL console: a summary line, a line chart when the result has a time column and
 * a numeric one, and the table, numbers right-aligned with thousands separators and instants in
 * the page's time zone.
 */
export function queryResultView(
  result: QueryResult,
  elapsedMs: number,
  options: QueryResultViewOptions = {},
): Html {
  const tz = options.tz ?? "exchange";
  const kinds = result.columns.map((column) => _columnKind(column.type));
  return html`<p class="small muted">${formatCount(result.rowCount)} row(s)${
    result.truncated ? " shown, more available: raise the row limit" : ""
  } in ${formatDuration(elapsedMs)}.</p>
${_chartView(result, kinds)}
${
    result.columns.length === 0 ? "" : html`
      <div class="table-wrap">
        <table class="query-table">
          <thead>
            <tr>${result.columns.map((column, index) =>
              html`
                <th title="${column.type}"
                  class="${kinds[index] === "number" ? "num" : ""}">${column
                    .name}<div class="small muted">${column.type}</div></th>
              `
            )}</tr>
          </thead>
          <tbody>${result.rows.map((row) =>
            html`<tr>${row.map((value, index) => _cell(value, kinds[index], tz))}</tr>`
          )}</tbody>
        </table>
      </div>
    `
  }`;
}

type _Kind = "number" | "instant" | "timestamp" | "date" | "other";

function _columnKind(type: string): _Kind {
  if (
    /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|BIGNUM|VARINT)\b/
      .test(type)
  ) return "number";
  if (type === "TIMESTAMP WITH TIME ZONE") return "instant";
  if (/^TIMESTAMP(_S|_MS|_NS)?$/.test(type)) return "timestamp";
  if (type === "DATE") return "date";
  return "other";
}

function _cell(value: unknown, kind: _Kind, tz: TimeZoneSetting): Html {
  if (value === null || value === undefined) {
    return html`<td class="${kind === "number" ? "num" : ""}"><span class="muted">NULL</span></td>`;
  }
  if (kind === "number") return html`<td class="num">${formatNumber(value)}</td>`;
  if (kind === "instant" && typeof value === "string") {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return html`<td>${timeTag(ms, tz)}</td>`;
  }
  return html`<td>${typeof value === "object" ? JSON.stringify(value) : String(value)}</td>`;
}

/**
 * A numeric result value with thousands separators: `1,234,567`, `-1,234.5678` (the fraction as
 * DuckDB gave it); integers beyond 2^53 arrive as strings and keep every digit.
 */
export function formatNumber(value: unknown): string {
  const text = String(value);
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (match === null) return text; // NaN, inf, 1e+21: as they are
  return `${match[1]}${match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",")}${match[3] ?? ""}`;
}

/** Most lines one chart draws: one per value of the first text column. */
const _MAX_SERIES = 8;

/**
 * The chart of a result: the first numeric column against the first time column, one line per
 * value of the first text column (a symbol) when there is one. Drawn by web/static/console.js.
 */
function _chartView(result: QueryResult, kinds: readonly _Kind[]): Html | string {
  const time = kinds.findIndex((kind) =>
    kind === "instant" || kind === "timestamp" || kind === "date"
  );
  const value = kinds.findIndex((kind) => kind === "number");
  if (time < 0 || value < 0 || result.rows.length === 0) return "";
  const group = kinds.findIndex((kind, index) =>
    kind === "other" && result.columns[index].type === "VARCHAR"
  );
  const series = new Map<string, [number, number][]>();
  for (const row of result.rows) {
    const ms = typeof row[time] === "string" ? Date.parse(_asUtc(row[time] as string)) : NaN;
    const y = Number(row[value]);
    if (!Number.isFinite(ms) || !Number.isFinite(y)) continue;
    const name = group < 0 ? result.columns[value].name : String(row[group] ?? "NULL");
    let points = series.get(name);
    if (points === undefined) {
      if (series.size >= _MAX_SERIES) continue;
      points = [];
      series.set(name, points);
    }
    points.push([ms, y]);
  }
  if (series.size === 0) return "";
  const data = {
    time: result.columns[time].name,
    value: result.columns[value].name,
    // Instants follow the page's time zone; naive timestamps and dates are drawn as written.
    zoned: kinds[time] === "instant",
    intraday: kinds[time] !== "date",
    series: [...series].map(([name, points]) => ({ name, points })),
  };
  return html`<figure class="query-chart-box">
    <div class="query-chart-hover small" aria-live="polite"></div>
    <div class="query-chart" data-chart="${JSON.stringify(data)}" role="img"
      aria-label="${data.value} by ${data.time}"></div>
    <figcaption class="small muted">${data.value} by ${data.time}${
    group < 0
      ? ""
      : html`, one line per ${result.columns[group].name}${
        series.size === _MAX_SERIES ? ` (first ${_MAX_SERIES})` : ""
      }`
  }</figcaption>${
    data.series.length < 2 ? "" : html`
      <ul class="query-chart-legend small">${data.series.map(({ name }, index) =>
        html`<li><span class="swatch swatch-${index}"></span>${name}</li>`
      )}</ul>
    `
  }
  </figure>`;
}

/** A naive TIMESTAMP or DATE as text (`2024-01-02 09:30:00`, `2024-01-02`) read as UTC. */
function _asUtc(text: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return `${text}T00:00:00Z`;
  if (/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) {
    return `${text.replace(" ", "T")}Z`;
  }
  return text;
}
