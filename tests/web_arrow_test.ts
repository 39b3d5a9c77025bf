/**
 * Arrow bodies of `GET /api/bars` with `app.request()`: the IPC file and stream formats, every
 * stored column with the files' types, values equal to SQL over the same bars, keyset paging, and
 * bar times that are not whole milliseconds.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DataType, RecordBatchReader, type Table, tableFromIPC } from "apache-arrow";
import { listTree } from "./_cli.ts";
import { openDuckDB, openQueryEngine, type QueryResult, runQuery } from "../storage/mod.ts";
import { barsPage } from "../web/mod.ts";
import { fakeIngest, filledDataDir, testServer, waitUntil } from "./web_fixture.ts";

const FILE = "application/vnd.apache.arrow.file";
const STREAM = "application/vnd.apache.arrow.stream";

/** Every column of the stored files, in their order, with the Arrow type of the body. */
const COLUMNS = [
  ["symbol", "Utf8"],
  ["ts", "Timestamp<MICROSECOND, UTC>"],
  ["open", "Float64"],
  ["high", "Float64"],
  ["low", "Float64"],
  ["close", "Float64"],
  ["volume", "Float64"],
  ["vwap", "Float64"],
  ["trade_count", "Int64"],
  ["timeframe", "Utf8"],
  ["trading_date", "Date32<DAY>"],
  ["session", "Utf8"],
  ["provider", "Utf8"],
  ["feed", "Utf8"],
  ["adjustment", "Utf8"],
  ["ingest_id", "Utf8"],
  ["ingested_at", "Timestamp<MICROSECOND, UTC>"],
  ["schema_version", "Int32"],
];

/** The same columns by SQL, as JSON-safe values: times in epoch µs, dates in days since 1970. */
function barsSql(timeframe: string, where: string): string {
  return `SELECT symbol, epoch_us(ts) AS ts, open, high, low, close, volume, vwap, trade_count,
      timeframe, (trading_date - DATE '1970-01-01')::INTEGER AS trading_date, session, provider,
      feed, adjustment, ingest_id, epoch_us(ingested_at) AS ingested_at, schema_version
    FROM bars_${timeframe} WHERE ${where} ORDER BY ts`;
}

/** Rows of an Arrow table in the shape of {@link barsSql}'s rows, times exact to the µs. */
function arrowRows(table: Table): unknown[][] {
  const columns = table.schema.fields.map((field) => {
    const vector = table.getChild(field.name)!;
    if (DataType.isTimestamp(field.type)) {
      return Array.from(vector.toArray() as BigInt64Array, Number);
    }
    return Array.from({ length: table.numRows }, (_, row) => {
      const value = vector.get(row);
      if (value === null) return null;
      if (DataType.isDate(field.type)) return value / 86_400_000;
      return typeof value === "bigint" ? Number(value) : value;
    });
  });
  return Array.from({ length: table.numRows }, (_, row) => columns.map((column) => column[row]));
}

function checkSchema(table: Table): void {
  assert.deepEqual(
    table.schema.fields.map((field) => [field.name, String(field.type)]),
    COLUMNS,
  );
}

function checkFileBytes(bytes: Uint8Array): void {
  const text = new TextDecoder();
  assert.equal(text.decode(bytes.subarray(0, 6)), "ARROW1");
  assert.equal(text.decode(bytes.subarray(bytes.byteLength - 6)), "ARROW1");
  assert.equal(RecordBatchReader.from(bytes).isFile(), true);
}

async function sql(dir: string, query: string): Promise<QueryResult> {
  const engine = await openQueryEngine(dir);
  try {
    return await runQuery(engine, query, { limit: 1_000_000 });
  } finally {
    engine.close();
  }
}

Deno.test("GET /api/bars as Arrow", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir);
  const get = (path: string, accept?: string) =>
    server.app.request(path, accept ? { headers: { Accept: accept } } : undefined);
  const day = "symbol=AAPL&timeframe=1m&start=2024-03-05&end=2024-03-05";
  const expected = await sql(dir, barsSql("1m", "symbol = 'AAPL' AND trading_date = '2024-03-05'"));
  try {
    await t.step("Accept: the file type gets the IPC file with every stored column", async () => {
      const response = await get(`/api/bars?${day}`, FILE);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), FILE);
      assert.match(
        response.headers.get("content-disposition")!,
        /AAPL_1m_2024-03-05_2024-03-05\.arrow"/,
      );
      const bytes = new Uint8Array(await response.arrayBuffer());
      checkFileBytes(bytes);
      const table = tableFromIPC(bytes);
      checkSchema(table);
      assert.ok(expected.rowCount > 900);
      assert.deepEqual(table.schema.fields.map((f) => f.name), expected.columns.map((c) => c.name));
      assert.deepEqual(arrowRows(table), expected.rows);
    });

    await t.step(
      "Accept: the stream type and format=arrow get the IPC stream, same rows",
      async () => {
        for (
          const response of [
            await get(`/api/bars?${day}`, STREAM),
            await get(`/api/bars?${day}&format=arrow`),
          ]
        ) {
          assert.equal(response.status, 200);
          assert.equal(response.headers.get("content-type"), STREAM);
          assert.match(response.headers.get("content-disposition")!, /\.arrows"/);
          const bytes = new Uint8Array(await response.arrayBuffer());
          assert.equal(RecordBatchReader.from(bytes).isStream(), true);
          const table = tableFromIPC(bytes);
          checkSchema(table);
          assert.deepEqual(arrowRows(table), expected.rows);
        }
      },
    );

    await t.step("format=arrow-file is the file whatever Accept says", async () => {
      const response = await get(`/api/bars?${day}&format=arrow-file`, "application/json");
      assert.equal(response.headers.get("content-type"), FILE);
      const bytes = new Uint8Array(await response.arrayBuffer());
      checkFileBytes(bytes);
      assert.deepEqual(arrowRows(tableFromIPC(bytes)), expected.rows);
    });

    await t.step("daily bars carry their trading dates and the same columns", async () => {
      const response = await get("/api/bars?symbol=AAPL&timeframe=1d", FILE);
      const table = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
      checkSchema(table);
      assert.equal(table.numRows, 61);
      assert.deepEqual(arrowRows(table), (await sql(dir, barsSql("1d", "symbol = 'AAPL'"))).rows);
    });

    await t.step("Arrow file pages follow X-Next-Cursor: no bar lost or repeated", async () => {
      const rows: unknown[][] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response: Response = await get(
          `/api/bars?${day}&limit=300${cursor ? `&cursor=${cursor}` : ""}`,
          FILE,
        );
        assert.equal(response.status, 200);
        cursor = response.headers.get("x-next-cursor");
        const bytes = new Uint8Array(await response.arrayBuffer());
        checkFileBytes(bytes);
        const page = arrowRows(tableFromIPC(bytes));
        assert.ok(page.length <= 300);
        rows.push(...page);
        pages++;
      } while (cursor);
      assert.equal(pages, Math.ceil(expected.rowCount / 300));
      assert.deepEqual(rows, expected.rows);
    });

    await t.step("/api/openapi.json documents both Arrow types and their columns", async () => {
      const doc = await (await get("/api/openapi.json")).json();
      const content = doc.paths["/api/bars"].get.responses["200"].content;
      for (const type of [FILE, STREAM]) {
        assert.match(content[type].schema.description, /ingest_id Utf8.*ingested_at Timestamp/);
      }
      assert.ok(
        doc.paths["/api/bars"].get.parameters.some((
          p: { name: string; schema: { enum?: string[] } },
        ) => p.name === "format" && p.schema.enum?.includes("arrow-file")),
      );
    });

    await t.step("a page without bars is a valid file with every column", async () => {
      const bytes = new Uint8Array(await (await get("/api/bars?symbol=NVDA", FILE)).arrayBuffer());
      checkFileBytes(bytes);
      const table = tableFromIPC(bytes);
      assert.equal(table.numRows, 0);
      checkSchema(table);
    });

    await t.step(
      "barsPage() streams large Arrow pages with the same table as buffered ones",
      async () => {
        const engine = await openQueryEngine(dir);
        try {
          const request = { symbol: "MSFT", timeframe: "1m" as const, limit: 2500 };
          const read = async (bufferRows: number) => {
            let done = 0;
            const page = await barsPage(engine, request, "arrow-file", {
              bufferRows,
              onDone: () => done++,
            });
            const bytes = new Uint8Array(await new Response(page.body).arrayBuffer());
            await waitUntil(() => done === 1, 2000, "onDone");
            checkFileBytes(bytes);
            return { cursor: page.nextCursor, rows: arrowRows(tableFromIPC(bytes)) };
          };
          const buffered = await read(100_000);
          const streamed = await read(100);
          assert.equal(buffered.rows.length, 2500);
          assert.deepEqual(streamed, buffered);
          assert.equal(buffered.cursor, BigInt(buffered.rows.at(-1)![1] as number));
        } finally {
          engine.close();
        }
      },
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GET /api/bars pages bars that start between milliseconds exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-arrow-us-" });
  await fakeIngest(dir, { symbols: ["AAPL"], start: "2024-03-05", end: "2024-03-05" });
  // Shift every stored bar by 1 to 999 µs, as a file from another writer might have them.
  const files = (await listTree(join(dir, "bars"))).filter((path) => path.endsWith(".parquet"));
  assert.equal(files.length, 1);
  const file = join(dir, "bars", files[0]);
  const duck = await openDuckDB();
  try {
    const connection = await duck.connect();
    await connection.run(
      `COPY (SELECT * REPLACE (
          ts + to_microseconds((row_number() OVER (ORDER BY ts)) * 7 % 999 + 1) AS ts)
        FROM read_parquet('${file}') ORDER BY ts) TO '${file}.tmp' (FORMAT parquet)`,
    );
    connection.closeSync();
  } finally {
    duck.closeSync();
  }
  await Deno.rename(`${file}.tmp`, file);
  const expected = (await sql(dir, "SELECT epoch_us(ts) FROM bars_1m ORDER BY ts")).rows
    .map((row) => row[0] as number);
  assert.ok(expected.length > 900);
  assert.ok(expected.every((micros) => micros % 1000 !== 0));
  const server = await testServer(dir);
  try {
    for (const accept of [FILE, STREAM, "application/json"]) {
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const response: Response = await server.app.request(
          `/api/bars?symbol=AAPL&limit=250${cursor ? `&cursor=${cursor}` : ""}`,
          { headers: { Accept: accept } },
        );
        assert.equal(response.status, 200);
        cursor = response.headers.get("x-next-cursor");
        if (accept === "application/json") {
          const body = await response.json() as { bars: { ts: string }[] };
          seen.push(...body.bars.map((bar) => Date.parse(bar.ts)));
        } else {
          const table = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
          seen.push(...Array.from(table.getChild("ts")!.toArray() as BigInt64Array, Number));
        }
      } while (cursor);
      // JSON times are ISO-8601 with milliseconds; Arrow carries the stored microseconds.
      assert.deepEqual(
        seen,
        accept === "application/json" ? expected.map((us) => Math.floor(us / 1000)) : expected,
        accept,
      );
    }
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
