/**
 * The limit of the ingest benchmark, run in a fresh process by `ingest_bench.ts`: native DuckDB
 * generates `--rows` bars in SQL, with the columns and types of our partition files and
 * plausible pseudo-random values, and writes them with ONE `COPY ... TO` a single zstd Parquet
 * file, which is then fsynced (as our writer does). Prints one JSON line with its own timings.
 *
 * ```sh
 * deno run -A bench/limit_write.ts --out /tmp/limit.parquet --rows 1900000 \
 *   --symbols-file symbols.txt --days 2024-03-01,2024-03-04
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { isValidDate, isValidSymbol } from "../core/mod.ts";
import { openDuckDB, SCHEMA_VERSION, sqlString } from "../storage/mod.ts";

/** Minutes of a full extended-hours session, 04:00-20:00 New York time. */
const MINUTES_PER_DAY = 960;

/** What the limit writer reports on stdout. */
export interface LimitWriteResult {
  rows: number;
  /** DuckDB start-up and connect. */
  openMs: number;
  /** The COPY statement: generation, encoding, compression and writing. */
  copyMs: number;
  fsyncMs: number;
  /** From the first line of this script to the end of the fsync. */
  totalMs: number;
  duckdbVersion: string;
}

/**
 * The SELECT generating `rows` bars: symbols in order, each with its share of the rows, one bar
 * a minute from 04:00 New York time on each day. Values come from `hash(i, k)`, not `random()`,
 * so an expression referenced twice (high from open and close) always sees the same value.
 */
export function limitSelect(
  rows: number,
  symbols: readonly string[],
  days: readonly string[],
): string {
  const perSymbol = Math.ceil(rows / symbols.length);
  // Six 10-bit uniforms cut from one 64-bit hash per row.
  const u = (k: number) => `(((h >> ${10 * k}) & 1023) / 1024.0)`;
  return `
    WITH d AS (
      SELECT list(epoch(timezone('America/New_York', x::TIMESTAMP + INTERVAL 4 HOUR)) ORDER BY x)
               AS starts,
             list(x ORDER BY x) AS dates
      FROM unnest([${days.map((day) => `DATE ${sqlString(day)}`).join(", ")}]) AS t(x)
    ),
    s AS (
      SELECT list(x ORDER BY n) AS syms, list(20.0 + hash(x) % 480 ORDER BY n) AS bases
      FROM unnest([${symbols.map(sqlString).join(", ")}]) WITH ORDINALITY AS t(x, n)
    ),
    g AS (
      SELECT i, i // ${perSymbol} AS si,
             least((i % ${perSymbol}) // ${MINUTES_PER_DAY}, ${days.length - 1}) AS di,
             (i % ${perSymbol}) % ${MINUTES_PER_DAY} AS m
      FROM range(${rows}) AS r(i)
    ),
    p AS (
      SELECT hash(i) AS h, m, syms[si + 1] AS symbol, to_timestamp(starts[di + 1] + m * 60) AS ts,
             dates[di + 1] AS trading_date, bases[si + 1] AS base
      FROM g, d, s
    ),
    q AS (
      SELECT *, round(base * (0.99 + 0.02 * ${u(0)}), 2) AS open,
             round(base * (0.99 + 0.02 * ${u(1)}), 2) AS close
      FROM p
    ),
    r AS (
      SELECT *, round(greatest(open, close) * (1 + 0.001 * ${u(2)}), 2) AS high,
             round(least(open, close) * (1 - 0.001 * ${u(3)}), 2) AS low,
             round(100 + 20000 * ${u(4)}) AS volume
      FROM q
    )
    SELECT symbol, ts, open, high, low, close, volume,
           round(low + (high - low) * ${u(5)}, 4) AS vwap,
           CAST(volume / 90 AS BIGINT) + 1 AS trade_count,
           '1m' AS timeframe, trading_date,
           CASE WHEN m < 330 THEN 'pre' WHEN m < 720 THEN 'regular' ELSE 'post' END AS session,
           'fake' AS provider, 'sip' AS feed, 'raw' AS adjustment,
           ${sqlString(crypto.randomUUID())} AS ingest_id, now() AS ingested_at,
           CAST(${SCHEMA_VERSION} AS INTEGER) AS schema_version
    FROM r`;
}

async function main(args: string[]): Promise<number> {
  const started = performance.now();
  const { values } = parseArgs({
    args,
    options: {
      out: { type: "string" },
      rows: { type: "string" },
      "symbols-file": { type: "string" },
      days: { type: "string" },
    },
    strict: true,
  });
  if (!values.out || !values.rows || !values["symbols-file"] || !values.days) {
    throw new TypeError("Missing --out, --rows, --symbols-file or --days");
  }
  const rows = Number(values.rows);
  if (!Number.isSafeInteger(rows) || rows < 1) {
    throw new RangeError(`Invalid --rows "${values.rows}": expected a positive integer`);
  }
  const symbols = (await Deno.readTextFile(values["symbols-file"])).split(/\s+/).filter(Boolean);
  const days = values.days.split(",");
  const bad = symbols.find((s) => !isValidSymbol(s)) ?? days.find((d) => !isValidDate(d));
  if (bad !== undefined || symbols.length === 0 || days.length === 0) {
    throw new RangeError(`Invalid symbol or day "${bad}" for the limit writer`);
  }

  const instance = await openDuckDB();
  const connection = await instance.connect();
  try {
    const version = String((await connection.runAndReadAll("SELECT version()")).getRows()[0][0]);
    const opened = performance.now();
    const copied = await connection.run(
      `COPY (${limitSelect(rows, symbols, days)}) TO ${sqlString(values.out)} ` +
        "(FORMAT parquet, COMPRESSION zstd)",
    );
    const copyEnd = performance.now();
    {
      using file = await Deno.open(values.out, { read: true, write: true });
      await file.sync();
    }
    const end = performance.now();
    const result: LimitWriteResult = {
      rows: Number(copied.rowsChanged),
      openMs: opened - started,
      copyMs: copyEnd - opened,
      fsyncMs: end - copyEnd,
      totalMs: end - started,
      duckdbVersion: version,
    };
    console.log(JSON.stringify(result));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
