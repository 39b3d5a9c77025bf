import assert from "node:assert/strict";
import { RecordBatchReader, type Table, tableFromIPC } from "apache-arrow";
import type { BarColumns } from "../storage/mod.ts";
import { arrowEncoder, BARS_ARROW_SCHEMA, type BarsEncoder, formatFromAccept } from "./bars.ts";

/** Two bars; the second has no vwap or trade count and starts 1 µs after a whole millisecond. */
function chunk(): BarColumns {
  return {
    length: 2,
    ts: Float64Array.of(1709631000000, 1709631060000),
    tsMicros: BigInt64Array.of(1709631000000000n, 1709631060000001n),
    open: Float64Array.of(10, 11),
    high: Float64Array.of(12, 13),
    low: Float64Array.of(9, 10),
    close: Float64Array.of(11, 12),
    volume: Float64Array.of(1000, 2000),
    vwap: Float64Array.of(10.5, NaN),
    tradeCount: Float64Array.of(42, NaN),
    tradingDate: ["2024-03-05", "2024-03-05"],
    session: ["regular", "regular"],
    lineage: {
      provider: ["alpaca", "alpaca"],
      feed: ["sip", "sip"],
      adjustment: ["raw", "raw"],
      ingestId: ["20240305T210000Z-abc", "20240305T210000Z-abc"],
      ingestedAt: BigInt64Array.of(1709672400123000n, 1709672400123000n),
      schemaVersion: Int32Array.of(1, 1),
    },
  };
}

function encode(encoder: BarsEncoder, chunks: BarColumns[]): Uint8Array {
  const parts = [encoder.head(), ...chunks.map((c) => encoder.chunk(c)), encoder.tail()];
  const out = new Uint8Array(parts.reduce((n, part) => n + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function checkBars(table: Table): void {
  assert.deepEqual(
    table.schema.fields.map((f) => `${f.name}: ${f.type}`),
    BARS_ARROW_SCHEMA.fields.map((f) => `${f.name}: ${f.type}`),
  );
  assert.equal(table.numRows, 4);
  assert.deepEqual(
    [...table.getChild("ts")!.toArray() as BigInt64Array],
    [1709631000000000n, 1709631060000001n, 1709631000000000n, 1709631060000001n],
  );
  assert.deepEqual(table.getChild("vwap")!.toJSON().slice(0, 2), [10.5, null]);
  assert.deepEqual(table.getChild("trade_count")!.toJSON().slice(0, 2), [42n, null]);
  // Date32 holds days since 1970: 2024-03-05 is day 19787.
  assert.equal(table.getChild("trading_date")!.data[0].values[0], 19787);
  const row = table.get(0)!.toJSON();
  assert.equal(row.symbol, "AAPL");
  assert.equal(row.timeframe, "1m");
  assert.equal(row.ingest_id, "20240305T210000Z-abc");
  assert.equal(row.schema_version, 1);
  assert.equal(table.getChild("ingested_at")!.data[0].values[0], 1709672400123000n);
}

Deno.test("arrowEncoder() writes the IPC file: ARROW1 at both ends, a batch per chunk", () => {
  const encoder = arrowEncoder("AAPL", "1m", { file: true });
  assert.equal(encoder.contentType, "application/vnd.apache.arrow.file");
  const bytes = encode(encoder, [chunk(), chunk()]);
  const text = new TextDecoder();
  assert.equal(text.decode(bytes.subarray(0, 6)), "ARROW1");
  assert.equal(text.decode(bytes.subarray(bytes.byteLength - 6)), "ARROW1");
  const reader = RecordBatchReader.from(bytes);
  assert.equal(reader.isFile(), true);
  const table = tableFromIPC(bytes);
  assert.equal(table.batches.length, 2);
  checkBars(table);
});

Deno.test("arrowEncoder() writes the IPC stream: a continuation marker first, EOS last", () => {
  const encoder = arrowEncoder("AAPL", "1m");
  assert.equal(encoder.contentType, "application/vnd.apache.arrow.stream");
  const bytes = encode(encoder, [chunk(), chunk()]);
  assert.deepEqual([...bytes.subarray(0, 4)], [0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual([...bytes.subarray(bytes.byteLength - 8)], [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  assert.equal(RecordBatchReader.from(bytes).isStream(), true);
  checkBars(tableFromIPC(bytes));
});

Deno.test("arrowEncoder() of a page without bars is a valid body with the full schema", () => {
  for (const file of [false, true]) {
    const table = tableFromIPC(encode(arrowEncoder("AAPL", "1d", { file }), []));
    assert.equal(table.numRows, 0);
    assert.equal(table.schema.fields.length, BARS_ARROW_SCHEMA.fields.length);
  }
});

Deno.test("arrowEncoder() refuses a chunk read without its lineage columns", () => {
  const { lineage: _, ...bare } = chunk();
  assert.throws(() => arrowEncoder("AAPL", "1m").chunk(bare), /without its lineage/);
});

Deno.test("formatFromAccept() tells the Arrow file from the Arrow stream", () => {
  assert.equal(formatFromAccept("application/vnd.apache.arrow.file"), "arrow-file");
  assert.equal(formatFromAccept("application/vnd.apache.arrow.stream"), "arrow");
  assert.equal(
    formatFromAccept(
      "application/vnd.apache.arrow.stream;q=0.5, application/vnd.apache.arrow.file",
    ),
    "arrow-file",
  );
});
