/**
 * Arrow IPC files from DuckDB results, for `export --format arrow`: each chunk becomes a record
 * batch written as it comes, so memory stays bounded. Imported only by Arrow exports (the Arrow
 * library is large).
 *
 * @module
 */
import type { DuckDBResult, DuckDBVector } from "@duckdb/node-api";
import {
  AsyncByteQueue,
  type DataType,
  DateDay,
  Field,
  Float64,
  Int32,
  Int64,
  makeData,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  TimestampMicrosecond,
  Utf8,
} from "apache-arrow";

/** Arrow types of the bar columns' DuckDB types; times are UTC microseconds. */
function _arrowType(type: string): DataType {
  switch (type) {
    case "VARCHAR":
      return new Utf8();
    case "TIMESTAMPTZ":
      return new TimestampMicrosecond("UTC");
    case "DOUBLE":
      return new Float64();
    case "BIGINT":
      return new Int64();
    case "DATE":
      return new DateDay();
    case "INTEGER":
      return new Int32();
  }
  throw new TypeError(`Cannot export a ${type} column as Arrow`);
}

/**
 * Writes a streaming DuckDB result into a new Arrow IPC file at `path`, one record batch per
 * chunk, and returns the rows written; `onRows` gets the running count. Columns are bar columns
 * as `BAR_COLUMNS` types them, with times read as epoch microseconds and dates as epoch
 * days (the Arrow types' own units).
 */
export async function writeArrowFile(
  result: DuckDBResult,
  columns: readonly { name: string; type: string }[],
  path: string,
  onRows: (rows: number) => void = () => {},
): Promise<number> {
  const schema = new Schema(
    columns.map((column) => new Field(column.name, _arrowType(column.type), true)),
  );
  const sink = new _CollectingQueue();
  const writer = new RecordBatchFileWriter();
  writer.reset(sink, schema);
  using file = await Deno.open(path, { write: true, createNew: true });
  const encoders = columns.map((column) => _arrowColumn(column.type));
  let rows = 0;
  while (true) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    const n = chunk.rowCount;
    const children = encoders.map((encode, i) => encode(chunk.getColumnVector(i), n));
    writer.write(
      new RecordBatch(
        schema,
        makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }),
      ),
    );
    await _writeAll(file, sink.take());
    rows += n;
    onRows(rows);
  }
  writer.finish();
  await _writeAll(file, sink.take());
  return rows;
}

type _ColumnEncoder = (vector: DuckDBVector, n: number) => ReturnType<typeof makeData>;

function _arrowColumn(type: string): _ColumnEncoder {
  const arrowType = _arrowType(type);
  const validity = (vector: DuckDBVector, n: number) => {
    const bitmap = new Uint8Array((n + 7) >> 3);
    let nulls = 0;
    for (let i = 0; i < n; i++) {
      if (vector.getItem(i) === null) nulls++;
      else bitmap[i >> 3] |= 1 << (i & 7);
    }
    return { nullBitmap: nulls > 0 ? bitmap : undefined, nullCount: nulls };
  };
  if (type === "VARCHAR") {
    // Bar strings repeat (symbol, session, provider ...): encode each distinct one once.
    const encoded = new Map<string, Uint8Array>();
    const encoder = new TextEncoder();
    return (vector, n) => {
      const valueOffsets = new Int32Array(n + 1);
      const parts: Uint8Array[] = [];
      let size = 0;
      for (let i = 0; i < n; i++) {
        const value = vector.getItem(i) as string | null;
        if (value !== null) {
          let bytes = encoded.get(value);
          if (bytes === undefined) encoded.set(value, bytes = encoder.encode(value));
          parts.push(bytes);
          size += bytes.byteLength;
        }
        valueOffsets[i + 1] = size;
      }
      const data = new Uint8Array(size);
      let offset = 0;
      for (const part of parts) {
        data.set(part, offset);
        offset += part.byteLength;
      }
      return makeData({
        type: arrowType as Utf8,
        length: n,
        valueOffsets,
        data,
        ...validity(vector, n),
      });
    };
  }
  return (vector, n) => {
    // The Arrow type's own buffer: BigInt64Array for times and BIGINT, Int32Array for DATE.
    const data: BigInt64Array | Float64Array | Int32Array = new arrowType.ArrayType(n);
    for (let i = 0; i < n; i++) {
      const value = vector.getItem(i);
      if (value !== null) (data as unknown as (number | bigint)[])[i] = value as number | bigint;
    }
    // deno-lint-ignore no-explicit-any
    return makeData({ type: arrowType as any, length: n, data, ...validity(vector, n) });
  };
}

/** A writer sink that hands out what was written since the last `take()`. */
class _CollectingQueue extends AsyncByteQueue {
  #parts: Uint8Array[] = [];

  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.#parts.push(value);
  }

  take(): Uint8Array[] {
    const parts = this.#parts;
    this.#parts = [];
    return parts;
  }
}

async function _writeAll(file: Deno.FsFile, parts: Uint8Array[]): Promise<void> {
  for (const part of parts) {
    for (let offset = 0; offset < part.byteLength;) {
      offset += await file.write(part.subarray(offset));
    }
  }
}
