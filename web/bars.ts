/**
 * Bars over HTTP: JSON, CSV, Arrow IPC and Parquet bodies for one page of a keyset-paginated
 * read. Pages up to {@link BUFFERED_PAGE_ROWS} are read whole first (one query, and the next
 * cursor is known before the first byte); larger pages ask DuckDB for the page end first and
 * then stream chunk by chunk, so memory stays bounded however long the range.
 *
 * @module
 */
import {
  AsyncByteQueue,
  DateDay,
  Field,
  Float64,
  Int64,
  makeData,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from "apache-arrow";
import { HttpError } from "./errors.ts";
import {
  type BarColumns,
  barsPageEnd,
  type BarsRequest,
  exportBarsParquet,
  type QueryEngine,
  readBars,
} from "../storage/mod.ts";

/** Formats of `GET /api/bars`. */
export const BAR_FORMATS = ["json", "csv", "arrow", "parquet"] as const;

/** One of {@link BAR_FORMATS}. */
export type BarFormat = typeof BAR_FORMATS[number];

/** Media types of the formats; `Accept` picks a format by these. */
export const BAR_MEDIA_TYPES: Readonly<Record<BarFormat, string>> = {
  json: "application/json",
  csv: "text/csv",
  arrow: "application/vnd.apache.arrow.stream",
  parquet: "application/vnd.apache.parquet",
};

/** Pages with at most this many rows are read whole before the response starts. */
export const BUFFERED_PAGE_ROWS = 50_000;

/** Columns of the CSV and Arrow bodies, in order (JSON rows have the same keys minus symbol). */
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
    for (const format of BAR_FORMATS) {
      if (BAR_MEDIA_TYPES[format] === type) return format;
    }
    if (type === "application/x-parquet") return "parquet";
    if (type === "application/vnd.apache.arrow.file") return "arrow";
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
  nextCursor: number | undefined;
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
  const readOptions = { timeoutMs: options.timeoutMs, signal: options.signal };
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
      let nextCursor: number | undefined;
      if (rows > request.limit) {
        const last = chunks.at(-1)!;
        if (last.length === 1) chunks.pop();
        else chunks[chunks.length - 1] = _sliceColumns(last, last.length - 1);
        rows--;
        const end = chunks.at(-1)!;
        nextCursor = end.ts[end.length - 1];
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
  nextCursor: number | undefined,
): BarsEncoder {
  if (format === "csv") return csvEncoder(request.symbol);
  if (format === "arrow") return arrowEncoder(request.symbol);
  return jsonEncoder(request.symbol, request.timeframe, nextCursor);
}

/**
 * JSON: `{"symbol", "timeframe", "next_cursor", "bars": [{ts, open, ...}]}` with ISO-8601 UTC
 * times and `null` for unknown vwap and trade_count.
 */
export function jsonEncoder(
  symbol: string,
  timeframe: string,
  nextCursor: number | undefined,
): BarsEncoder {
  let first = true;
  return {
    contentType: "application/json; charset=utf-8",
    head: () =>
      _TEXT.encode(
        `{"symbol":${JSON.stringify(symbol)},"timeframe":${
          JSON.stringify(timeframe)
        },"next_cursor":${
          nextCursor === undefined ? "null" : JSON.stringify(_cursorText(nextCursor))
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

/** The Arrow schema of a bars body. */
export const BARS_ARROW_SCHEMA: Schema = new Schema([
  new Field("symbol", new Utf8(), false),
  new Field("ts", new TimestampMillisecond("UTC"), false),
  new Field("open", new Float64(), false),
  new Field("high", new Float64(), false),
  new Field("low", new Float64(), false),
  new Field("close", new Float64(), false),
  new Field("volume", new Float64(), false),
  new Field("vwap", new Float64(), true),
  new Field("trade_count", new Int64(), true),
  new Field("trading_date", new DateDay(), false),
  new Field("session", new Utf8(), false),
]);

/** Arrow IPC stream format: the schema, one record batch per chunk, the end marker. */
export function arrowEncoder(symbol: string): BarsEncoder {
  const sink = new _CollectingQueue();
  const writer = new RecordBatchStreamWriter();
  writer.reset(sink);
  let started = false;
  return {
    contentType: BAR_MEDIA_TYPES.arrow,
    head: () => _EMPTY,
    chunk(c) {
      started = true;
      writer.write(_recordBatch(symbol, c));
      return sink.take();
    },
    tail() {
      if (!started) writer.write(_recordBatch(symbol, _emptyColumns()));
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

function _recordBatch(symbol: string, c: BarColumns): RecordBatch {
  const n = c.length;
  const ts = new BigInt64Array(n);
  const tradeCount = new BigInt64Array(n);
  const tradeValid = new Uint8Array((n + 7) >> 3);
  const vwapValid = new Uint8Array((n + 7) >> 3);
  const days = new Int32Array(n);
  let tradeNulls = 0;
  let vwapNulls = 0;
  for (let i = 0; i < n; i++) {
    ts[i] = BigInt(c.ts[i]);
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
  const children = [
    vectorFromArray(new Array<string>(n).fill(symbol), new Utf8()).data[0],
    makeData({ type: new TimestampMillisecond("UTC"), length: n, data: ts }),
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
    makeData({ type: new DateDay(), length: n, data: days }),
    vectorFromArray(c.session, new Utf8()).data[0],
  ];
  const data = makeData({
    type: new Struct(BARS_ARROW_SCHEMA.fields),
    length: n,
    nullCount: 0,
    children,
  });
  return new RecordBatch(BARS_ARROW_SCHEMA, data);
}

function _emptyColumns(): BarColumns {
  const none = new Float64Array(0);
  return {
    length: 0,
    ts: none,
    open: none,
    high: none,
    low: none,
    close: none,
    volume: none,
    vwap: none,
    tradeCount: none,
    tradingDate: [],
    session: [],
  };
}

function _sliceColumns(c: BarColumns, length: number): BarColumns {
  return {
    length,
    ts: c.ts.subarray(0, length),
    open: c.open.subarray(0, length),
    high: c.high.subarray(0, length),
    low: c.low.subarray(0, length),
    close: c.close.subarray(0, length),
    volume: c.volume.subarray(0, length),
    vwap: c.vwap.subarray(0, length),
    tradeCount: c.tradeCount.subarray(0, length),
    tradingDate: c.tradingDate.slice(0, length),
    session: c.session.slice(0, length),
  };
}

function _num(value: number): string {
  return Number.isFinite(value) ? String(value) : "null";
}

function _csvNum(value: number): string {
  return Number.isFinite(value) ? String(value) : "";
}

/** The cursor text of a bar instant (same encoding as `encodeCursor` in params.ts). */
function _cursorText(ts: number): string {
  return btoa(`t:${ts}`).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
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
