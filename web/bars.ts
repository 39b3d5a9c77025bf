/**
 * Bars over HTTP: JSON, CSV, Arrow IPC (stream and file) and Parquet bodies for one page of a
 * keyset-paginated read. Pages up to {@link BUFFERED_PAGE_ROWS} are read whole first (one query,
 * and the next cursor is known before the first byte); larger pages ask DuckDB for the page end
 * first and then stream chunk by chunk, so memory stays bounded however long the range.
 *
 * @module
 */
import {
  AsyncByteQueue,
  type Data,
  DateDay,
  Field,
  Float64,
  Int32,
  Int64,
  makeData,
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  TimestampMicrosecond,
  Utf8,
} from "apache-arrow";
import { HttpError } from "./errors.ts";
import { encodeCursor } from "./params.ts";
import {
  type BarColumns,
  type BarLineageColumns,
  barsPageEnd,
  type BarsRequest,
  exportBarsParquet,
  type QueryEngine,
  readBars,
} from "../storage/mod.ts";

/** Formats of `GET /api/bars`: `arrow` is the Arrow IPC stream, `arrow-file` the IPC file. */
export const BAR_FORMATS = ["json", "csv", "arrow", "arrow-file", "parquet"] as const;

/** One of {@link BAR_FORMATS}. */
export type BarFormat = typeof BAR_FORMATS[number];

/** Media types of the formats; `Accept` picks a format by these. */
export const BAR_MEDIA_TYPES: Readonly<Record<BarFormat, string>> = {
  json: "application/json",
  csv: "text/csv",
  arrow: "application/vnd.apache.arrow.stream",
  "arrow-file": "application/vnd.apache.arrow.file",
  parquet: "application/vnd.apache.parquet",
};

/** Pages with at most this many rows are read whole before the response starts. */
export const BUFFERED_PAGE_ROWS = 50_000;

/**
 * Columns of the CSV bodies, in order (JSON rows have the same keys minus symbol); Arrow bodies
 * have every stored column ({@link BARS_ARROW_SCHEMA}).
 */
export const BAR_FIELDS = [
  "symbol",
  "ts",
  "open",
  "high",
  "low",
  "close",
  "volume",
  "vwap",
  "trade_count",
  "trading_date",
  "session",
] as const;

/**
 * The format an `Accept` header asks for (JSON for a wildcard), or undefined without one; a 406
 * `HttpError` when it accepts none of ours.
 */
export function formatFromAccept(accept: string | undefined): BarFormat | undefined {
  if (!accept) return undefined;
  const wanted = accept.split(",").map((part) => {
    const [type, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return { type: type.trim(), q: q === undefined ? 1 : Number(q.slice(2)) };
  }).filter((entry) => entry.q > 0).sort((a, b) => b.q - a.q);
  for (const { type } of wanted) {
    const format = BAR_FORMATS.find((format) => BAR_MEDIA_TYPES[format] === type);
    if (format !== undefined) return format;
    if (type === "application/x-parquet") return "parquet";
    if (type === "*/*" || type === "application/*") return "json";
    if (type === "text/*") return "csv";
  }
  throw new HttpError(
    406,
    "not_acceptable",
    `Cannot serve Accept ${JSON.stringify(accept)}: expected ${
      Object.values(BAR_MEDIA_TYPES).join(", ")
    } (or the format parameter)`,
  );
}

/** A page about to be sent: its body and the cursor of the page after it. */
export interface BarsPage {
  body: ReadableStream<Uint8Array>;
  contentType: string;
  /** The `ts` of the page's last bar in epoch microseconds when more bars follow. */
  nextCursor: bigint | undefined;
  /** Rows in the page when known before sending (buffered pages). */
  rows?: number;
}

/** Options of {@link barsPage}. */
export interface BarsPageOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once the body has been sent or abandoned (release the heavy-request slot here). */
  onDone?: () => void;
  /** Pages up to this many rows are read whole first. Default {@link BUFFERED_PAGE_ROWS}. */
  bufferRows?: number;
}

/**
 * Reads one page of bars and returns its body as a stream. `request.limit` is the page size; the
 * next cursor is the `ts` of the page's last bar when more follow.
 */
export async function barsPage(
  engine: QueryEngine,
  request: BarsRequest,
  format: BarFormat,
  options: BarsPageOptions = {},
): Promise<BarsPage> {
  const readOptions = {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    lineage: format === "arrow" || format === "arrow-file",
  };
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    options.onDone?.();
  };
  try {
    if (format === "parquet") {
      const nextCursor = await barsPageEnd(engine, request, readOptions);
      const exported = await exportBarsParquet(engine, request, readOptions);
      return {
        body: _onEnd(exported.stream, finish),
        contentType: BAR_MEDIA_TYPES.parquet,
        nextCursor,
        rows: exported.rows,
      };
    }
    if (request.limit <= (options.bufferRows ?? BUFFERED_PAGE_ROWS)) {
      const chunks: BarColumns[] = [];
      let rows = 0;
      await readBars(engine, { ...request, limit: request.limit + 1 }, (chunk) => {
        chunks.push(chunk);
        rows += chunk.length;
      }, readOptions);
      let nextCursor: bigint | undefined;
      if (rows > request.limit) {
        const last = chunks.at(-1)!;
        if (last.length === 1) chunks.pop();
        else chunks[chunks.length - 1] = _sliceColumns(last, last.length - 1);
        rows--;
        const end = chunks.at(-1)!;
        nextCursor = end.tsMicros[end.length - 1];
      }
      const encoder = _encoder(format, request, nextCursor);
      const body = _streamFrom(async (write) => {
        await write(encoder.head());
        for (const chunk of chunks) await write(encoder.chunk(chunk));
        await write(encoder.tail());
      }, finish);
      return { body, contentType: encoder.contentType, nextCursor, rows };
    }
    const nextCursor = await barsPageEnd(engine, request, readOptions);
    const encoder = _encoder(format, request, nextCursor);
    const body = _streamFrom(async (write) => {
      await write(encoder.head());
      await readBars(engine, request, async (chunk) => {
        await write(encoder.chunk(chunk));
      }, readOptions);
      await write(encoder.tail());
    }, finish);
    return { body, contentType: encoder.contentType, nextCursor };
  } catch (error) {
    finish();
    throw error;
  }
}

/** Serializes chunks of bars to bytes; `head` and `tail` frame the body. */
export interface BarsEncoder {
  contentType: string;
  head(): Uint8Array;
  chunk(columns: BarColumns): Uint8Array;
  tail(): Uint8Array;
}

const _TEXT = new TextEncoder();
const _EMPTY = new Uint8Array(0);

function _encoder(
  format: BarFormat,
  request: BarsRequest,
  nextCursor: bigint | undefined,
): BarsEncoder {
  if (format === "csv") return csvEncoder(request.symbol);
  if (format === "arrow" || format === "arrow-file") {
    return arrowEncoder(request.symbol, request.timeframe, { file: format === "arrow-file" });
  }
  return jsonEncoder(request.symbol, request.timeframe, nextCursor);
}

/**
 * JSON: `{"symbol", "timeframe", "next_cursor", "bars": [{ts, open, ...}]}` with ISO-8601 UTC
 * times and `null` for unknown vwap and trade_count.
 */
export function jsonEncoder(
  symbol: string,
  timeframe: string,
  nextCursor: bigint | undefined,
): BarsEncoder {
  let first = true;
  return {
    contentType: "application/json; charset=utf-8",
    head: () =>
      _TEXT.encode(
        `{"symbol":${JSON.stringify(symbol)},"timeframe":${
          JSON.stringify(timeframe)
        },"next_cursor":${
          nextCursor === undefined ? "null" : JSON.stringify(encodeCursor(nextCursor))
        },"bars":[`,
      ),
    chunk(c) {
      let out = "";
      for (let i = 0; i < c.length; i++) {
        out += `${first ? "" : ","}{"ts":"${new Date(c.ts[i]).toISOString()}","open":${
          _num(c.open[i])
        },"high":${_num(c.high[i])},"low":${_num(c.low[i])},"close":${_num(c.close[i])},"volume":${
          _num(c.volume[i])
        },"vwap":${_num(c.vwap[i])},"trade_count":${_num(c.tradeCount[i])},"trading_date":${
          JSON.stringify(c.tradingDate[i])
        },"session":${JSON.stringify(c.session[i])}}`;
        first = false;
      }
      return _TEXT.encode(out);
    },
    tail: () => _TEXT.encode("]}\n"),
  };
}

/** CSV with a header line; empty fields for unknown vwap and trade_count. */
export function csvEncoder(symbol: string): BarsEncoder {
  const quoted = /[",\r\n]/.test(symbol) ? `"${symbol.replaceAll('"', '""')}"` : symbol;
  return {
    contentType: "text/csv; charset=utf-8",
    head: () => _TEXT.encode(BAR_FIELDS.join(",") + "\n"),
    chunk(c) {
      let out = "";
      for (let i = 0; i < c.length; i++) {
        out += `${quoted},${new Date(c.ts[i]).toISOString()},${c.open[i]},${c.high[i]},${
          c.low[i]
        },${c.close[i]},${c.volume[i]},${_csvNum(c.vwap[i])},${_csvNum(c.tradeCount[i])},${
          c.tradingDate[i]
        },${c.session[i]}\n`;
      }
      return _TEXT.encode(out);
    },
    tail: () => _EMPTY,
  };
}

/**
 * The Arrow schema of a bars body: every column of the stored files, in their order, with the
 * files' types (times are UTC microseconds, `trading_date` a day number). Strings are plain
 * `Utf8`, not dictionaries: each chunk is its own record batch, and the IPC file format allows
 * no dictionary that changes between batches.
 */
export const BARS_ARROW_SCHEMA: Schema = new Schema([
  new Field("symbol", new Utf8(), false),
  new Field("ts", new TimestampMicrosecond("UTC"), false),
  new Field("open", new Float64(), false),
  new Field("high", new Float64(), false),
  new Field("low", new Float64(), false),
  new Field("close", new Float64(), false),
  new Field("volume", new Float64(), false),
  new Field("vwap", new Float64(), true),
  new Field("trade_count", new Int64(), true),
  new Field("timeframe", new Utf8(), false),
  new Field("trading_date", new DateDay(), false),
  new Field("session", new Utf8(), false),
  new Field("provider", new Utf8(), false),
  new Field("feed", new Utf8(), false),
  new Field("adjustment", new Utf8(), false),
  new Field("ingest_id", new Utf8(), false),
  new Field("ingested_at", new TimestampMicrosecond("UTC"), false),
  new Field("schema_version", new Int32(), false),
]);

/** Options of {@link arrowEncoder}. */
export interface ArrowEncoderOptions {
  /** The IPC file format (footer, `ARROW1` at both ends) instead of the stream. Default false. */
  file?: boolean;
}

/**
 * Arrow IPC, the stream format (schema, one record batch per chunk, end marker) or the file
 * format (the same batches between the magic and a footer, which is written last, so the body
 * still streams). Chunks must carry `lineage` (read with `{ lineage: true }`).
 */
export function arrowEncoder(
  symbol: string,
  timeframe: string,
  options: ArrowEncoderOptions = {},
): BarsEncoder {
  const sink = new _CollectingQueue();
  const writer = options.file ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
  writer.reset(sink);
  let started = false;
  return {
    contentType: options.file ? BAR_MEDIA_TYPES["arrow-file"] : BAR_MEDIA_TYPES.arrow,
    head: () => _EMPTY,
    chunk(c) {
      started = true;
      writer.write(_recordBatch(symbol, timeframe, c));
      return sink.take();
    },
    tail() {
      if (!started) writer.write(_recordBatch(symbol, timeframe, _emptyColumns()));
      writer.finish();
      return sink.take();
    },
  };
}

/** A writer sink that hands out what was written since the last `take()`. */
class _CollectingQueue extends AsyncByteQueue {
  #parts: Uint8Array[] = [];

  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.#parts.push(value);
  }

  take(): Uint8Array {
    const size = this.#parts.reduce((n, part) => n + part.byteLength, 0);
    const out = new Uint8Array(size);
    let offset = 0;
    for (const part of this.#parts) {
      out.set(part, offset);
      offset += part.byteLength;
    }
    this.#parts = [];
    return out;
  }
}

function _recordBatch(symbol: string, timeframe: string, c: BarColumns): RecordBatch {
  const lineage = c.lineage;
  if (lineage === undefined) {
    throw new TypeError("Cannot encode bars as Arrow: the chunk was read without its lineage");
  }
  const n = c.length;
  const tradeCount = new BigInt64Array(n);
  const tradeValid = new Uint8Array((n + 7) >> 3);
  const vwapValid = new Uint8Array((n + 7) >> 3);
  const days = new Int32Array(n);
  let tradeNulls = 0;
  let vwapNulls = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(c.tradeCount[i])) tradeNulls++;
    else {
      tradeCount[i] = BigInt(c.tradeCount[i]);
      tradeValid[i >> 3] |= 1 << (i & 7);
    }
    if (Number.isNaN(c.vwap[i])) vwapNulls++;
    else vwapValid[i >> 3] |= 1 << (i & 7);
    days[i] = Date.parse(c.tradingDate[i]) / 86_400_000;
  }
  const float = (data: Float64Array, nullBitmap?: Uint8Array, nullCount = 0) =>
    makeData({ type: new Float64(), length: n, data, nullBitmap, nullCount });
  const micros = (data: BigInt64Array) =>
    makeData({ type: new TimestampMicrosecond("UTC"), length: n, data });
  const children = [
    _utf8(new Array<string>(n).fill(symbol)),
    micros(c.tsMicros),
    float(c.open),
    float(c.high),
    float(c.low),
    float(c.close),
    float(c.volume),
    float(c.vwap, vwapNulls ? vwapValid : undefined, vwapNulls),
    makeData({
      type: new Int64(),
      length: n,
      data: tradeCount,
      nullBitmap: tradeNulls ? tradeValid : undefined,
      nullCount: tradeNulls,
    }),
    _utf8(new Array<string>(n).fill(timeframe)),
    makeData({ type: new DateDay(), length: n, data: days }),
    _utf8(c.session),
    _utf8(lineage.provider),
    _utf8(lineage.feed),
    _utf8(lineage.adjustment),
    _utf8(lineage.ingestId),
    micros(lineage.ingestedAt),
    makeData({ type: new Int32(), length: n, data: lineage.schemaVersion }),
  ];
  const data = makeData({
    type: new Struct(BARS_ARROW_SCHEMA.fields),
    length: n,
    nullCount: 0,
    children,
  });
  return new RecordBatch(BARS_ARROW_SCHEMA, data);
}

/** `Utf8` data of non-null strings; each distinct value (most repeat) is encoded once. */
function _utf8(values: readonly string[]): Data<Utf8> {
  const n = values.length;
  const valueOffsets = new Int32Array(n + 1);
  const parts = new Array<Uint8Array>(n);
  const encoded = new Map<string, Uint8Array>();
  let size = 0;
  for (let i = 0; i < n; i++) {
    let bytes = encoded.get(values[i]);
    if (bytes === undefined) {
      bytes = _TEXT.encode(values[i]);
      encoded.set(values[i], bytes);
    }
    parts[i] = bytes;
    size += bytes.byteLength;
    valueOffsets[i + 1] = size;
  }
  const data = new Uint8Array(size);
  for (let i = 0; i < n; i++) data.set(parts[i], valueOffsets[i]);
  return makeData({ type: new Utf8(), length: n, valueOffsets, data });
}

function _emptyColumns(): BarColumns {
  const none = new Float64Array(0);
  return {
    length: 0,
    ts: none,
    tsMicros: new BigInt64Array(0),
    open: none,
    high: none,
    low: none,
    close: none,
    volume: none,
    vwap: none,
    tradeCount: none,
    tradingDate: [],
    session: [],
    lineage: {
      provider: [],
      feed: [],
      adjustment: [],
      ingestId: [],
      ingestedAt: new BigInt64Array(0),
      schemaVersion: new Int32Array(0),
    },
  };
}

function _sliceColumns(c: BarColumns, length: number): BarColumns {
  const lineage: BarLineageColumns | undefined = c.lineage && {
    provider: c.lineage.provider.slice(0, length),
    feed: c.lineage.feed.slice(0, length),
    adjustment: c.lineage.adjustment.slice(0, length),
    ingestId: c.lineage.ingestId.slice(0, length),
    ingestedAt: c.lineage.ingestedAt.subarray(0, length),
    schemaVersion: c.lineage.schemaVersion.subarray(0, length),
  };
  return {
    length,
    ts: c.ts.subarray(0, length),
    tsMicros: c.tsMicros.subarray(0, length),
    open: c.open.subarray(0, length),
    high: c.high.subarray(0, length),
    low: c.low.subarray(0, length),
    close: c.close.subarray(0, length),
    volume: c.volume.subarray(0, length),
    vwap: c.vwap.subarray(0, length),
    tradeCount: c.tradeCount.subarray(0, length),
    tradingDate: c.tradingDate.slice(0, length),
    session: c.session.slice(0, length),
    ...(lineage ? { lineage } : {}),
  };
}

function _num(value: number): string {
  return Number.isFinite(value) ? String(value) : "null";
}

function _csvNum(value: number): string {
  return Number.isFinite(value) ? String(value) : "";
}

/**
 * A byte stream fed by `produce`; `write` resolves when the consumer wants more, and rejects when
 * the consumer went away (which stops `produce`). `onDone` runs once either way.
 */
function _streamFrom(
  produce: (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>,
  onDone: () => void,
): ReadableStream<Uint8Array> {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>(
    undefined,
    undefined,
    { highWaterMark: 4 },
  );
  const writer = writable.getWriter();
  const write = async (bytes: Uint8Array) => {
    if (bytes.length > 0) await writer.write(bytes);
  };
  produce(write).then(
    () => writer.close(),
    (error) => writer.abort(error),
  ).catch(() => {
    // The consumer cancelled: nothing is left to tell.
  }).finally(onDone);
  return readable;
}

/** Passes a stream through and calls `onEnd` once it ends, fails or is cancelled. */
function _onEnd(
  stream: ReadableStream<Uint8Array>,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          onEnd();
        } else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
        onEnd();
      }
    },
    async cancel(reason) {
      try {
        await reader.cancel(reason);
      } finally {
        onEnd();
      }
    },
  });
}
