/**
 * The SQL console with `app.request()`: the schema as JSON and HTML, `?sql=` prefilling the box,
 * the default query's timeframe order, DuckDB's caret line kept, numbers aligned and formatted,
 * instants in the page's time zone and the chart data of a time column.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONSOLE_QUERY, formatNumber, type SchemaTable } from "../web/console.ts";
import { filledDataDir, jsonOf, testServer } from "./web_fixture.ts";

/** The text of an HTML fragment with the template's entities decoded. */
function unescapeHtml(text: string): string {
  return text.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&#39;", "'").replaceAll("&amp;", "&");
}

Deno.test("formatNumber() adds thousands separators and keeps the fraction and big integers", () => {
  assert.equal(formatNumber(42), "42");
  assert.equal(formatNumber(1234567), "1,234,567");
  assert.equal(formatNumber(-1234.5678), "-1,234.5678");
  assert.equal(formatNumber(0.125), "0.125");
  assert.equal(formatNumber("12345678901234567890"), "12,345,678,901,234,567,890");
  assert.equal(formatNumber(1e21), "1e+21");
  assert.equal(formatNumber("NaN"), "NaN");
});

Deno.test("SQL console routes", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const run = async (
    sql: string,
    status = 200,
    headers: Record<string, string> = {},
  ) => {
    const response = await app.request("/partials/query", {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "HX-Request": "true",
        ...headers,
      },
      body: new URLSearchParams({ sql, limit: "1000", timeout: "5" }).toString(),
    });
    const text = await response.text();
    assert.equal(response.status, status, text.slice(0, 500));
    return text;
  };
  try {
    await t.step("GET /api/schema lists the bar views, then the reference tables", async () => {
      const { tables } = await jsonOf<{ tables: SchemaTable[] }>(await app.request("/api/schema"));
      assert.deepEqual(tables.map((table) => [table.name, table.kind]), [
        ["bars_1m", "view"],
        ["bars_1d", "view"],
        ["bars", "view"],
        ["symbols", "table"],
        ["symbols_history", "table"],
        ["universes", "table"],
        ["universe_members", "table"],
      ]);
      const minute = tables[0].columns;
      assert.deepEqual(minute.find((column) => column.name === "ts"), {
        name: "ts",
        type: "TIMESTAMP WITH TIME ZONE",
      });
      assert.deepEqual(
        ["symbol", "open", "high", "low", "close", "volume"].map((name) =>
          minute.find((column) => column.name === name)?.type
        ),
        ["VARCHAR", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE"],
      );
      assert.ok(tables[2].columns.some((column) => column.name === "timeframe"));
      const bad = await app.request("/api/schema?x=1");
      assert.equal(bad.status, 400);
    });

    await t.step("GET /partials/schema renders the columns and types of bars_1m", async () => {
      const response = await app.request("/partials/schema", { headers: { "HX-Request": "true" } });
      const text = await response.text();
      assert.equal(response.status, 200);
      const minute = /<li data-table="bars_1m">([\s\S]*?)<\/details>/.exec(text)?.[1];
      assert.ok(minute, "bars_1m entry");
      assert.match(
        minute,
        /data-insert="ts"[^>]*>ts<\/button>\s*<span class="small muted">TIMESTAMP WITH TIME ZONE</,
      );
      assert.match(
        minute,
        /data-insert="trade_count"[^>]*>trade_count<\/button>\s*<span class="small muted">BIGINT</,
      );
      assert.match(text, /<li data-table="symbols">/);
    });

    await t.step("GET /query?sql= fills the box and the share link", async () => {
      const sql = "SELECT '<b>' AS tag, 1 & 2 AS bits";
      const response = await app.request(`/query?${new URLSearchParams({ sql })}`);
      const text = await response.text();
      assert.equal(response.status, 200);
      const box = /<textarea name="sql"[^>]*>([\s\S]*?)<\/textarea>/.exec(text)?.[1];
      assert.equal(box, "SELECT &#39;&lt;b&gt;&#39; AS tag, 1 &amp; 2 AS bits");
      const share = /<a class="button secondary" data-share href="([^"]*)"/.exec(text)?.[1];
      assert.equal(unescapeHtml(share!), `/query?${new URLSearchParams({ sql })}`);
      assert.match(text, /hx-get="\/partials\/schema" hx-trigger="load"/);
      assert.match(text, /<link rel="stylesheet" href="\/assets\/console\.css\?v=[0-9a-f]+">/);
      const css = await app.request(/href="(\/assets\/console\.css[^"]*)"/.exec(text)![1]);
      assert.equal(css.status, 200);
      assert.match(await css.text(), /pre\.sql-error/);
      assert.equal((await app.request("/query?sq=1")).status, 400);
      const badZone = await app.request("/query?tz=mars");
      assert.equal(badZone.status, 400);
      assert.match(await badZone.text(), /Invalid tz &quot;mars&quot;/);
    });

    await t.step("the default query orders timeframes 1m before 1d", async () => {
      const text = await (await app.request("/query")).text();
      const box = unescapeHtml(/<textarea name="sql"[^>]*>([\s\S]*?)<\/textarea>/.exec(text)![1]);
      assert.equal(box, DEFAULT_CONSOLE_QUERY);
      const result = await jsonOf<{ rows: unknown[][] }>(
        await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ sql: box }),
        }),
      );
      // Alphabetically 1d would come before 1m.
      assert.deepEqual(result.rows.map((row) => `${row[0]} ${row[1]}`), [
        "AAPL 1m",
        "AAPL 1d",
        "MSFT 1m",
      ]);
      const partial = await run(box);
      assert.deepEqual(
        [...partial.matchAll(/<tr><td>(\w+)<\/td><td>(\w+)<\/td>/g)].map((m) => `${m[1]} ${m[2]}`),
        ["AAPL 1m", "AAPL 1d", "MSFT 1m"],
      );
    });

    await t.step("an SQL error keeps DuckDB's caret line as it is", async () => {
      const text = await run("SELECT nope FROM bars", 400);
      const pre = /<pre class="sql-error" role="alert">([\s\S]*?)<\/pre>/.exec(text)?.[1];
      assert.ok(pre, text);
      const lines = unescapeHtml(pre).split("\n");
      const at = lines.indexOf("LINE 1: SELECT nope FROM bars");
      assert.ok(at > 0, pre);
      // The caret stands under the "n" of "nope": column 15 of the line above.
      assert.equal(lines[at + 1], `${" ".repeat("LINE 1: SELECT ".length)}^`);
      const parse = unescapeHtml(await run("SELEC 1", 400));
      assert.match(parse, /LINE 1: SELEC 1\n {8}\^/);
      const rejected = await run("DROP VIEW bars", 400);
      assert.match(rejected, /<pre class="sql-error" role="alert">Only read-only statements/);
    });

    await t.step("numbers are right-aligned with thousands separators", async () => {
      const text = await run(
        "SELECT 1234567 AS n, 1234.5 AS x, 'abc' AS s, 12345678901234567890::HUGEINT AS big, NULL::INTEGER AS none",
      );
      assert.match(text, /<th title="INTEGER"\s+class="num">n</);
      assert.match(text, /<th title="VARCHAR"\s+class="">s</);
      assert.match(
        text,
        /<tr><td class="num">1,234,567<\/td><td class="num">1,234.5<\/td><td>abc<\/td><td class="num">12,345,678,901,234,567,890<\/td><td class="num"><span class="muted">NULL<\/span><\/td><\/tr>/,
      );
    });

    await t.step("instants follow the time zone setting", async () => {
      const sql = "SELECT TIMESTAMPTZ '2024-03-04 14:30:00+00' AS t, DATE '2024-03-04' AS d";
      const exchange = await run(sql);
      assert.match(
        exchange,
        /<td><time datetime="2024-03-04T14:30:00.000Z" data-ts="1709562600000">2024-03-04 09:30 ET<\/time><\/td><td>2024-03-04<\/td>/,
      );
      assert.match(await run(sql, 200, { "MP-TZ": "utc" }), />2024-03-04 14:30 UTC<\/time>/);
      assert.match(await run(sql, 200, { Cookie: "mp_tz=utc" }), />2024-03-04 14:30 UTC<\/time>/);
    });

    await t.step(
      "a result with a time column carries chart data, one line per symbol",
      async () => {
        const text = await run(
          "SELECT symbol, ts, close FROM bars_1m WHERE ts < '2024-03-04 15:00:00+00' ORDER BY ALL",
        );
        const data = JSON.parse(unescapeHtml(/data-chart="([^"]*)"/.exec(text)![1])) as {
          time: string;
          value: string;
          zoned: boolean;
          series: { name: string; points: [number, number][] }[];
        };
        assert.equal(data.time, "ts");
        assert.equal(data.value, "close");
        assert.equal(data.zoned, true);
        assert.deepEqual(data.series.map((series) => series.name), ["AAPL", "MSFT"]);
        const first = data.series[0].points[0];
        assert.ok(first[0] >= Date.parse("2024-03-04T09:00:00Z"), `first point ${first}`);
        assert.ok(first[1] > 0);
        assert.match(text, /close by ts, one line per symbol/);
        const noTime = await run("SELECT 1 AS n");
        assert.doesNotMatch(noTime, /data-chart/);
        const noNumber = await run("SELECT now() AS t, 'x' AS s");
        assert.doesNotMatch(noNumber, /data-chart/);
      },
    );
  } finally {
    await server.close();
  }
});
