/**
 * The quarantine: bars rejected by error-level validation rules, stored apart from `bars/` as
 * Parquet with the bar columns plus `rule` and `detail`, partitioned like the bars and written
 * atomically under the same partition locks.
 *
 * @module
 */
import type { DuckDBAppender, DuckDBConnection } from "@duckdb/node-api";
import type { RejectedBar } from "../core/jobs.ts";
import type { Timeframe } from "../core/types.ts";
import { readFilesSql, sqlString } from "./duckdb.ts";
import {
  FILE_COLUMNS,
  type PartitionKey,
  type PartitionWriter,
  replacePartition,
  SCHEMA_VERSION,
} from "./partitions.ts";
import { partitionDir, QUARANTINE_DIR } from "./layout.ts";
import { listPartitionFiles } from "./manifest.ts";
import { readBarsFrom } from "./reports_bars.ts";

/** Where rejected bars of a timeframe, symbol and trading date live, relative to the data dir. */
export function quarantineDir(timeframe: Timeframe, symbol: string, tradingDate: string): string {
  return partitionDir(timeframe, symbol, tradingDate, QUARANTINE_DIR);
}

/** Counts from {@link writeQuarantine}. */
export interface QuarantineWriteResult {
  /** Rejected bars stored (a bar quarantined again replaces its earlier rejection). */
  bars: number;
  partitions: number;
}

/**
 * Store rejected bars under `<data>/quarantine/`, merged into their partitions: the key
 * (symbol, timeframe, ts) appears once per partition, the latest rejection winning, and every row
 * records the job, the rule and the detail.
 */
export async function writeQuarantine(
  writer: PartitionWriter,
  rejected: readonly RejectedBar[],
  options: { jobId: string; signal?: AbortSignal },
): Promise<QuarantineWriteResult> {
  const groups = new Map<string, { key: PartitionKey; byTs: Map<number, RejectedBar> }>();
  for (const item of rejected) {
    const { bar } = item;
    const id = quarantineDir(bar.timeframe, bar.symbol, bar.tradingDate);
    let group = groups.get(id);
    if (!group) {
      const key: PartitionKey = {
        tree: "quarantine",
        timeframe: bar.timeframe,
        symbol: bar.symbol,
        year: Number(bar.tradingDate.slice(0, 4)),
      };
      groups.set(id, group = { key, byTs: new Map() });
    }
    group.byTs.set(bar.ts, item);
  }
  const ingestedAt = new Date((writer.now ?? Date.now)()).toISOString();
  let bars = 0;
  for (const { key, byTs } of groups.values()) {
    const items = [...byTs.values()];
    // Rejections are few: each write merges the whole partition into one file.
    await replacePartition(writer, key, async ({ connection, temp, live, pathOf }) => {
      await _load(connection, items);
      const fresh = `SELECT timezone('UTC', epoch_ms(CAST(ts AS BIGINT))) AS ts,
          open, high, low, close, volume, vwap, CAST(trade_count AS BIGINT) AS trade_count,
          CAST(trading_date AS DATE) AS trading_date, session, provider, feed,
          adjustment, ${sqlString(options.jobId)} AS ingest_id,
          CAST(${sqlString(ingestedAt)} AS TIMESTAMPTZ) AS ingested_at,
          ${SCHEMA_VERSION} AS schema_version, rule, detail
        FROM q_incoming`;
      const body = live.length > 0
        ? `WITH fresh AS (${fresh}) SELECT * FROM fresh UNION ALL BY NAME
           SELECT * FROM read_parquet([${
          live.map((file) => sqlString(pathOf(file))).join(", ")
        }], hive_partitioning = false) AS old
           WHERE old.ts NOT IN (SELECT ts FROM fresh)`
        : fresh;
      await connection.run(
        `COPY (SELECT ${[...FILE_COLUMNS, "rule", "detail"].join(", ")} FROM (${body}) ORDER BY ts)
          TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      return { value: undefined, replaces: live, wrote: true };
    }, { signal: options.signal, jobId: options.jobId });
    bars += items.length;
  }
  return { bars, partitions: groups.size };
}

/** Rejected bars are few: a row appender is plenty. */
async function _load(connection: DuckDBConnection, items: readonly RejectedBar[]): Promise<void> {
  await connection.run(
    `CREATE TEMP TABLE q_incoming (symbol VARCHAR, ts DOUBLE, open DOUBLE, high DOUBLE,
      low DOUBLE, close DOUBLE, volume DOUBLE, vwap DOUBLE, trade_count DOUBLE,
      timeframe VARCHAR, trading_date VARCHAR, session VARCHAR, provider VARCHAR, feed VARCHAR,
      adjustment VARCHAR, rule VARCHAR, detail VARCHAR)`,
  );
  const appender = await connection.createAppender("q_incoming");
  try {
    for (const { bar, rule, detail } of items) {
      appender.appendVarchar(bar.symbol);
      appender.appendDouble(bar.ts);
      const ohlcv = [bar.open, bar.high, bar.low, bar.close, bar.volume];
      for (const value of [...ohlcv, bar.vwap, bar.tradeCount]) _appendNumber(appender, value);
      const texts = [bar.timeframe, bar.tradingDate, bar.session, bar.provider, bar.feed];
      for (const text of [...texts, bar.adjustment, rule, detail]) appender.appendVarchar(text);
      appender.endRow();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

function _appendNumber(appender: DuckDBAppender, value: number | null): void {
  // Rejected bars may hold NaN or a missing value; both are stored as NULL, never dropped.
  if (value === null || value === undefined || Number.isNaN(value)) appender.appendNull();
  else appender.appendDouble(value);
}

/** A quarantined bar as read back. */
export interface QuarantinedBar extends RejectedBar {
  /** The job that rejected it. */
  jobId: string;
}

/** Options of {@link readQuarantine}. */
export interface ReadQuarantineOptions {
  start?: string;
  end?: string;
  /** Only bars rejected by this job. */
  jobId?: string;
}

/**
 * Quarantined bars of `symbol` and `timeframe`, in ts order. A rejection is left out once a newer
 * ingest stored bars over it: a bar with the same key, or (another job) bars of the same trading
 * date, since a day is always fetched whole and a defect may have moved the key (an off-grid ts).
 * The defect was fixed at the source, so the stale row no longer describes the data.
 */
export async function readQuarantine(
  connection: DuckDBConnection,
  dataDir: string,
  timeframe: Timeframe,
  symbol: string,
  options: ReadQuarantineOptions = {},
): Promise<QuarantinedBar[]> {
  const files = await listPartitionFiles(dataDir, "quarantine", timeframe, symbol, options);
  if (files.length === 0) return [];
  const barFiles = await listPartitionFiles(dataDir, "bars", timeframe, symbol, options);
  const quarantined = readFilesSql(files);
  const stored = readFilesSql(barFiles);
  const from = barFiles.length === 0 ? quarantined : `(SELECT q.* FROM ${quarantined} AS q
      ANTI JOIN ${stored} AS b ON b.ts = q.ts AND b.ingested_at > q.ingested_at
      ANTI JOIN (SELECT trading_date, ingest_id, max(ingested_at) AS ingested_at FROM ${stored}
          GROUP BY trading_date, ingest_id) AS d
        ON d.trading_date = q.trading_date AND d.ingest_id <> q.ingest_id
          AND d.ingested_at > q.ingested_at) AS live`;
  const rows = await readBarsFrom(connection, from, {
    start: options.start,
    end: options.end,
    where: options.jobId === undefined ? undefined : `ingest_id = ${sqlString(options.jobId)}`,
    extra: ["rule", "detail", "ingest_id"],
  });
  return rows.map(({ bar, extra }) => ({
    bar,
    rule: extra[0] ?? "",
    detail: extra[1] ?? "",
    jobId: extra[2] ?? "",
  }));
}
