/**
 * The SQL console page and the partial that runs a query and renders its result.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { formatCount, formatDuration } from "../core/format.ts";
import { type QueryResult, REFERENCE_TABLES, runQuery } from "../storage/mod.ts";
import type { WebContext } from "./context.ts";
import { type Html, html } from "./html.ts";
import { checkKnownParams } from "./params.ts";
import { heavy, queryInput } from "./services.ts";
import { type LayoutContext, page, type Section } from "./views.ts";

/** Registers the SQL console page and its result partial. */
export function registerConsole(app: Hono, ctx: WebContext, layout: LayoutContext): void {
  const { deps } = ctx;
  const render = (c: Context, title: string, section: Section, body: Html, status = 200) =>
    c.html(page(layout, { title, section, body }).value, status as 200);
  const fragment = (c: Context, body: Html, status = 200) => c.html(body.value, status as 200);

  app.get("/query", (c) => {
    checkKnownParams(c.req.query(), []);
    const views = [...deps.data.timeframes().map((tf) => `bars_${tf}`), "bars"];
    const maxSeconds = Math.ceil(ctx.limits.queryTimeoutMs / 1000);
    const body = html`
      <h1>Query</h1>
      <p
        class="muted small">Read-only SQL over the stored bars (DuckDB): SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN. Views: ${views
          .join(", ")}. Reference tables: ${REFERENCE_TABLES.join(
            ", ",
          )} (join with <code>ON symbols.ticker = bars.symbol</code>).</p>
      <form method="post" action="/api/query?format=csv">
        <textarea name="sql" spellcheck="false"
          aria-label="SQL">SELECT symbol, timeframe, count(*) AS bars, min(ts) AS first, max(ts) AS last
      FROM bars GROUP BY ALL ORDER BY ALL</textarea>
        <div class="controls">
          <label>row limit<input type="number" name="limit" value="1000" min="1" max="${ctx.limits
            .maxQueryRows}"></label>
          <label>timeout (s)<input type="number" name="timeout" value="${Math.min(
            30,
            maxSeconds,
          )}" min="1" max="${maxSeconds}"></label>
          <button type="button" data-run title="Ctrl-Enter (Cmd-Enter)" hx-post="/partials/query"
            hx-include="closest form"
            hx-target="#query-result" hx-swap="innerHTML">Run</button>
          <button type="submit" class="secondary">Download CSV</button>
        </div>
      </form>
      <div id="query-result"></div>
    `;
    return render(c, "Query", "query", body);
  });

  app.post("/partials/query", async (c) => {
    checkKnownParams(c.req.query(), []);
    const { sql, limit, timeoutMs } = await queryInput(ctx, c);
    const started = performance.now();
    const result = await heavy(
      ctx,
      () => deps.data.withEngine((engine) => runQuery(engine, sql, { limit, timeoutMs })),
    );
    return fragment(c, queryResultView(result, performance.now() - started));
  });
}

/** Results of the SQL console. */
export function queryResultView(result: QueryResult, elapsedMs: number): Html {
  return html`<p class="small muted">${formatCount(result.rowCount)} row(s)${
    result.truncated ? " shown, more available: raise the row limit" : ""
  } in ${formatDuration(elapsedMs)}.</p>
${
    result.columns.length === 0 ? "" : html`
      <div class="table-wrap">
        <table>
          <thead>
            <tr>${result.columns.map((column) =>
              html`<th title="${column.type}">${column.name}<div class="small muted">${column.type}</div></th>`
            )}</tr>
          </thead>
          <tbody>${result.rows.map((row) =>
            html`<tr>${
              row.map((value) =>
                html`<td>${
                  value === null
                    ? html`<span class="muted">NULL</span>`
                    : typeof value === "object"
                    ? JSON.stringify(value)
                    : String(value)
                }</td>`
              )
            }</tr>`
          )}</tbody>
        </table>
      </div>
    `
  }`;
}
