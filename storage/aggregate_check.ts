/**
 * What `validate --cross-check` needs from storage: a provider's own bars of a higher timeframe
 * and our aggregation of the stored 1m bars for the same symbol and dates, computed on the fly
 * with the same SQL as `marketpipe aggregate` (nothing is written).
 *
 * @module
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { Bar, Timeframe } from "../core/types.ts";
import {
  AGGREGATE_ID_PREFIX,
  barsFromLevelSql,
  createSessionsTable,
  type DailySession,
  levelSql,
  minuteLevelSql,
} from "./aggregate.ts";
import { readFilesSql, sqlIdent, sqlString } from "./duckdb.ts";
import { listPartitionFiles } from "./manifest.ts";
import { readBarRows, readBarsFrom } from "./reports_bars.ts";

/** The two sides of a cross-check of one symbol. */
export interface CrossCheckBars {
  /** The provider's bars of the timeframe (rows not written by aggregation). */
  provided: Bar[];
  /** Our aggregation of the stored 1m bars, same timeframe and dates. */
  derived: Bar[];
  /** Trading dates with stored 1m bars. */
  minuteDays: Set<string>;
}

/** Read both sides of a cross-check of `symbol`'s `timeframe` bars over [start, end]. */
export async function readCrossCheckBars(
  connection: DuckDBConnection,
  dataDir: string,
  options: {
    symbol: string;
    timeframe: Timeframe;
    start: string;
    end: string;
    session?: DailySession;
  },
): Promise<CrossCheckBars> {
  const { symbol, timeframe, start, end } = options;
  const range = { start, end };
  const nativeFiles = await listPartitionFiles(dataDir, "bars", timeframe, symbol, range);
  const provided = (await readBarRows(connection, nativeFiles, {
    ...range,
    where: `NOT starts_with(ingest_id, ${sqlString(AGGREGATE_ID_PREFIX)})`,
  })).map((row) => row.bar);
  const minuteFiles = await listPartitionFiles(dataDir, "bars", "1m", symbol, range);
  if (minuteFiles.length === 0) return { provided, derived: [], minuteDays: new Set() };
  const from = `(SELECT * FROM ${readFilesSql(minuteFiles)} WHERE trading_date BETWEEN DATE ${
    sqlString(start)
  } AND DATE ${sqlString(end)})`;
  const days = await connection.runAndReadAll(
    `SELECT DISTINCT CAST(trading_date AS VARCHAR) FROM ${from}`,
  );
  const minuteDays = new Set((days.getRowsJS() as string[][]).map((row) => row[0]));
  const prefix = `mp_check_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sessions = `${prefix}_sessions`;
  const level = `${prefix}_level`;
  const years: number[] = [];
  for (let y = Number(start.slice(0, 4)); y <= Number(end.slice(0, 4)); y++) years.push(y);
  await createSessionsTable(connection, sessions, years);
  try {
    await connection.run(
      `CREATE TABLE ${sqlIdent(level)} AS ${
        levelSql(`(${minuteLevelSql(from, { withSource: true })})`, {
          timeframe,
          sessionsTable: sessions,
          session: options.session,
          withSource: true,
        })
      }`,
    );
    const derived = (await readBarsFrom(
      connection,
      `(${
        barsFromLevelSql(level, {
          timeframe,
          ingestId: `${AGGREGATE_ID_PREFIX}check`,
          ingestedAt: new Date(0).toISOString(),
        })
      })`,
    )).map((row) => row.bar);
    return { provided, derived, minuteDays };
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${sqlIdent(level)}`);
    await connection.run(`DROP TABLE IF EXISTS ${sqlIdent(sessions)}`);
  }
}
