import assert from "node:assert/strict";
import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import type { Bar, Timeframe } from "../core/types.ts";
import { generateFakeDay } from "../providers/fake.ts";
import { aggregatePartitions, type AggregationStore } from "./aggregate.ts";
import { withDataDir } from "../tests/_data_dir.ts";
import { FILE_COLUMNS, writeBars } from "./partitions.ts";
import { commitFiles, listFiles, listPartitionFiles } from "./manifest.ts";
import { readBarRows } from "./reports_bars.ts";

const INTRADAY: readonly Timeframe[] = ["5m", "15m", "30m", "1h", "4h"];

/** A data directory with a migrated MetaStore and an in-memory DuckDB, all closed afterwards. */
async function withStore(fn: (store: AggregationStore) => Promise<void>): Promise<void> {
  await withDataDir({ prefix: "marketpipe-aggregate-", threads: 2 }, fn);
}

async function stored(
  store: AggregationStore,
  timeframe: Timeframe,
  symbol: string,
): Promise<Bar[]> {
  const connection = await store.duckdb.connect();
  try {
    const files = await listPartitionFiles(store.dataDir, "bars", timeframe, symbol);
    return (await readBarRows(connection, files)).map((row) => row.bar);
  } finally {
    connection.closeSync();
  }
}

async function columnsOf(duckdb: DuckDBInstance, file: string): Promise<string[]> {
  const connection = await duckdb.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet('${file}', hive_partitioning = false))`,
    );
    return (reader.getRowsJS() as string[][]).map((row) => row[0]);
  } finally {
    connection.closeSync();
  }
}

async function ingestIds(duckdb: DuckDBInstance, file: string): Promise<string[]> {
  const connection = await duckdb.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT ingest_id FROM read_parquet('${file}') ORDER BY ts`,
    );
    return (reader.getRowsJS() as string[][]).map((row) => row[0]);
  } finally {
    connection.closeSync();
  }
}

// ---------------------------------------------------------------------------------------------
// An independent roll-up in plain TypeScript: New York wall-clock minutes from Intl, session
// hours written out per test day, buckets counted from 09:30 and clamped to the session start.

const _wall = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/New_York",
  hourCycle: "h23",
  hour: "numeric",
  minute: "numeric",
});

/** Minutes after New York midnight of the instant `ts`. */
function nyMinutes(ts: number): number {
  const parts = Object.fromEntries(_wall.formatToParts(ts).map((p) => [p.type, p.value]));
  return Number(parts.hour) * 60 + Number(parts.minute);
}

/** Close of the regular session in minutes after midnight: 13:00 on the early-close test days. */
function closeMinute(date: string): number {
  return date === "2024-11-29" || date === "2024-07-03" ? 13 * 60 : 16 * 60;
}

function expectedRollup(bars: readonly Bar[], timeframe: Timeframe): Bar[] {
  const length = { "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 0, "1m": 1 }[
    timeframe
  ];
  const groups = new Map<string, Bar[]>();
  for (const bar of bars) {
    const m = nyMinutes(bar.ts);
    let start: number;
    if (timeframe === "1d") {
      if (bar.session !== "regular") continue;
      start = 0;
    } else {
      start = 570 + Math.floor((m - 570) / length) * length;
      const segment = bar.session === "pre"
        ? 240
        : bar.session === "regular"
        ? 570
        : closeMinute(bar.tradingDate);
      if (start < segment) start = segment;
    }
    const ts = bar.ts - (m - start) * 60_000;
    const key = `${bar.symbol}|${ts}|${timeframe === "1d" ? "" : bar.session}`;
    let group = groups.get(key);
    if (!group) groups.set(key, group = []);
    group.push({ ...bar, ts });
  }
  const out: Bar[] = [];
  for (const group of groups.values()) {
    const first = group[0];
    const last = group[group.length - 1];
    let pv = 0;
    let vv = 0;
    let trades: number | null = null;
    for (const b of group) {
      if (b.vwap !== null) {
        pv += b.vwap * b.volume;
        vv += b.volume;
      }
      if (b.tradeCount !== null) trades = (trades ?? 0) + b.tradeCount;
    }
    const high = Math.max(...group.map((b) => b.high));
    const low = Math.min(...group.map((b) => b.low));
    out.push({
      ...first,
      timeframe,
      open: first.open,
      high,
      low,
      close: last.close,
      volume: group.reduce((n, b) => n + b.volume, 0),
      vwap: vv > 0 ? pv / vv : null,
      tradeCount: trades,
      session: timeframe === "1d" ? "regular" : first.session,
    });
  }
  return out.sort((a, b) => a.ts - b.ts);
}

// Days around the DST switch (2024-03-10), an early close after a holiday (Thanksgiving
// 2024-11-28, then 13:00 on the 29th) and another early close before a holiday (July 3 and 4).
const DAYS = ["2024-03-08", "2024-03-11", "2024-07-03", "2024-07-05", "2024-11-27", "2024-11-29"];

function testBars(symbol: string): Bar[] {
  const bars = DAYS.flatMap((date) => generateFakeDay(symbol, date, { seed: 11, gapRate: 0.05 }));
  // Edge cases of the vwap: bars without one, and a traded bar next to one without volume.
  for (let i = 0; i < bars.length; i += 97) bars[i] = { ...bars[i], vwap: null };
  for (let i = 13; i < bars.length; i += 211) {
    const b = bars[i];
    bars[i] = { ...b, volume: 0, open: b.close, high: b.close, low: b.close, tradeCount: null };
  }
  // A provider vwap outside its own bar's range, with most of the bucket's volume: the mean
  // leaves the bucket's range and must be stored as it is, not clamped.
  for (let i = 50; i < bars.length; i += 401) {
    const b = bars[i];
    bars[i] = { ...b, volume: 1e9, vwap: b.high * 1.5 };
  }
  return bars;
}

Deno.test("aggregatePartitions() matches a plain TypeScript roll-up for every timeframe across DST, early closes and holidays", async () => {
  await withStore(async (store) => {
    const bars = [...testBars("AAPL"), ...testBars("BRK.B")];
    await writeBars(store, bars, { jobId: "job-1" });
    const summary = await aggregatePartitions(store);
    // One year x 2 symbols x 6 frames: a target partition is (timeframe, symbol, year).
    assert.equal(summary.rebuilt, 12);
    for (const symbol of ["AAPL", "BRK.B"]) {
      const minutes = bars.filter((b) => b.symbol === symbol);
      for (const timeframe of [...INTRADAY, "1d"] satisfies Timeframe[]) {
        // One file per target, in its year folder, named by its first and last trading date,
        // with exactly the file columns of layout 2 (symbol and timeframe come from the path).
        const files = await listPartitionFiles(store.dataDir, "bars", timeframe, symbol);
        assert.equal(files.length, 1, `${symbol} ${timeframe}`);
        assert.match(
          files[0].slice(store.dataDir.length + 1),
          new RegExp(
            `^bars/timeframe=${timeframe}/symbol=${
              RegExp.escape(symbol)
            }/year=2024/2024-03-08_2024-11-29-[0-9a-f]{8}\\.parquet$`,
          ),
        );
        assert.deepEqual(await columnsOf(store.duckdb, files[0]), FILE_COLUMNS);
        const expected = expectedRollup(minutes, timeframe);
        const actual = await stored(store, timeframe, symbol);
        assert.equal(actual.length, expected.length, `${symbol} ${timeframe}`);
        assert.ok(
          actual.some((a) => a.vwap !== null && a.vwap > a.high),
          `${symbol} ${timeframe}: a bucket whose mean vwap is above its high keeps it`,
        );
        for (let i = 0; i < expected.length; i++) {
          const e = expected[i];
          const a = actual[i];
          const where = `${symbol} ${timeframe} ${new Date(e.ts).toISOString()}`;
          assert.deepEqual(
            [
              a.ts,
              a.open,
              a.high,
              a.low,
              a.close,
              a.volume,
              a.tradeCount,
              a.session,
              a.tradingDate,
            ],
            [
              e.ts,
              e.open,
              e.high,
              e.low,
              e.close,
              e.volume,
              e.tradeCount,
              e.session,
              e.tradingDate,
            ],
            where,
          );
          if (e.vwap === null) assert.equal(a.vwap, null, where);
          else assert.ok(Math.abs(a.vwap! - e.vwap) <= 1e-9 * e.vwap, `${where} vwap`);
          assert.equal(a.timeframe, timeframe);
          assert.equal(a.provider, "fake");
        }
      }
    }
    // Spot checks a user would make: the first summer hour bucket is 09:30 New York = 13:30 UTC,
    // the winter one 14:30 UTC; the early-close day has four regular hours, the last one 12:30-13:00.
    const hours = await stored(store, "1h", "AAPL");
    const regular = (date: string) =>
      hours.filter((b) => b.tradingDate === date && b.session === "regular")
        .map((b) => new Date(b.ts).toISOString().slice(11, 16));
    assert.deepEqual(regular("2024-03-08"), [
      "14:30",
      "15:30",
      "16:30",
      "17:30",
      "18:30",
      "19:30",
      "20:30",
    ]);
    assert.deepEqual(regular("2024-03-11").slice(0, 2), ["13:30", "14:30"]);
    assert.deepEqual(regular("2024-11-29"), ["14:30", "15:30", "16:30", "17:30"]);
    assert.ok(!hours.some((b) => b.tradingDate === "2024-11-28" || b.tradingDate === "2024-07-04"));
    const daily = await stored(store, "1d", "AAPL");
    assert.deepEqual(daily.map((b) => b.tradingDate), DAYS);
    assert.equal(new Date(daily[1].ts).toISOString(), "2024-03-11T04:00:00.000Z");
  });
});

Deno.test("aggregatePartitions() rebuilds only the partitions whose 1m data changed", async () => {
  await withStore(async (store) => {
    // Two years of 1m bars: 2023 (one day) and 2024.
    const bars = [
      ...generateFakeDay("AAPL", "2023-06-01", { seed: 11, gapRate: 0 }),
      ...testBars("AAPL"),
    ];
    await writeBars(store, bars, { jobId: "job-1" });
    const first = await aggregatePartitions(store);
    assert.equal(first.rebuilt, 12);
    const files = await listPartitionFiles(store.dataDir, "bars", "5m", "AAPL");
    assert.equal(files.length, 2);
    const before = await Promise.all(files.map((f) => Deno.stat(f)));

    const again = await aggregatePartitions(store);
    assert.deepEqual([again.rebuilt, again.upToDate], [0, 12]);
    const unchanged = await Promise.all(files.map((f) => Deno.stat(f)));
    assert.deepEqual(unchanged.map((s) => s.mtime), before.map((s) => s.mtime));
    assert.deepEqual(await listPartitionFiles(store.dataDir, "bars", "5m", "AAPL"), files);

    // New 1m bars in March 2024: the 2024 partitions of every frame are rebuilt, 2023's are not.
    const extra = generateFakeDay("AAPL", "2024-03-12", { seed: 11, gapRate: 0 });
    await writeBars(store, extra, { jobId: "job-2" });
    const third = await aggregatePartitions(store);
    assert.deepEqual([third.rebuilt, third.upToDate], [6, 6]);
    const after = await listPartitionFiles(store.dataDir, "bars", "5m", "AAPL");
    assert.equal(after.length, 2, "the new file replaced the old one of 2024");
    assert.equal(after[0], files[0], "2023 is untouched");
    assert.equal((await Deno.stat(files[0])).mtime?.getTime(), before[0].mtime?.getTime());
    assert.notEqual(after[1], files[1]);
    assert.deepEqual(third.timeframes.map((t) => [t.timeframe, t.rebuilt]), [
      ["5m", 1],
      ["15m", 1],
      ["30m", 1],
      ["1h", 1],
      ["4h", 1],
      ["1d", 1],
    ]);
    const daily = await stored(store, "1d", "AAPL");
    assert.ok(daily.some((b) => b.tradingDate === "2024-03-12"));
    const all = [...bars, ...extra];
    assert.deepEqual(
      (await stored(store, "5m", "AAPL")).map((b) => [b.ts, b.volume]),
      expectedRollup(all, "5m").map((b) => [b.ts, b.volume]),
    );

    // A target removed by hand is rebuilt; --force rebuilds everything in scope.
    await Deno.remove(after[1]);
    assert.equal((await aggregatePartitions(store)).rebuilt, 1);
    assert.deepEqual(
      (await stored(store, "5m", "AAPL")).map((b) => [b.ts, b.volume]),
      expectedRollup(all, "5m").map((b) => [b.ts, b.volume]),
    );
    const forced = await aggregatePartitions(store, {
      force: true,
      timeframes: ["1h"],
      start: "2024-07-01",
      end: "2024-07-31",
    });
    assert.deepEqual([forced.rebuilt, forced.upToDate], [1, 0]);
  });
});

Deno.test("aggregatePartitions() keeps a provider's own bars for their days and fills the rest", async () => {
  await withStore(async (store) => {
    const bars = testBars("SPY");
    await writeBars(store, bars, { jobId: "job-1" });
    const providerDaily = expectedRollup(bars, "1d")
      .filter((b) => b.tradingDate === "2024-03-08")
      .map((b) => ({ ...b, close: 1234.5, provider: "alpaca" }));
    await writeBars(store, providerDaily, { jobId: "job-provider" });
    const summary = await aggregatePartitions(store, { timeframes: ["1d"] });
    assert.deepEqual(summary.timeframes[0].providerBars, 1);
    const daily = await stored(store, "1d", "SPY");
    assert.equal(daily.length, DAYS.length);
    const march8 = daily.find((b) => b.tradingDate === "2024-03-08")!;
    assert.equal(march8.close, 1234.5);
    assert.equal(march8.provider, "alpaca");
    // The provider's file and ours are one file now.
    const daily1d = await listPartitionFiles(store.dataDir, "bars", "1d", "SPY");
    assert.equal(daily1d.length, 1);
    const file = daily1d[0];
    const ids = await ingestIds(store.duckdb, file);
    assert.equal(ids[0], "job-provider");
    assert.ok(ids.slice(1).every((id) => id.startsWith("agg-")));

    // The provider delivers another day later: the next run sees the file changed and gives
    // that day to the provider too.
    const later = expectedRollup(bars, "1d").filter((b) => b.tradingDate === "2024-11-29")
      .map((b) => ({ ...b, close: 99, provider: "alpaca" }));
    await writeBars(store, later, { jobId: "job-provider-2" });
    const second = await aggregatePartitions(store, { timeframes: ["1d"] });
    assert.deepEqual([second.rebuilt, second.timeframes[0].providerBars], [1, 2]);
    const after = await stored(store, "1d", "SPY");
    assert.equal(after.length, DAYS.length);
    assert.equal(after.find((b) => b.tradingDate === "2024-11-29")!.close, 99);
  });
});

Deno.test("aggregatePartitions() builds extended daily bars on request and keeps that choice", async () => {
  await withStore(async (store) => {
    const bars = testBars("AAPL");
    await writeBars(store, bars, { jobId: "job-1" });
    await aggregatePartitions(store, { timeframes: ["1d"], session: "extended" });
    const volumeOf = async (date: string) =>
      (await stored(store, "1d", "AAPL")).find((b) => b.tradingDate === date)!.volume;
    const all = bars.filter((b) => b.tradingDate === "2024-03-08");
    assert.equal(await volumeOf("2024-03-08"), all.reduce((n, b) => n + b.volume, 0));
    // A later run without --session keeps extended; --session regular switches back.
    assert.equal((await aggregatePartitions(store, { timeframes: ["1d"] })).rebuilt, 0);
    await aggregatePartitions(store, { timeframes: ["1d"], session: "regular" });
    assert.equal(
      await volumeOf("2024-03-08"),
      all.filter((b) => b.session === "regular").reduce((n, b) => n + b.volume, 0),
    );
  });
});

Deno.test("aggregatePartitions() rejects a timeframe it cannot build", async () => {
  await withStore(async (store) => {
    await assert.rejects(aggregatePartitions(store, { timeframes: ["1m"] }), {
      name: "RangeError",
      message: 'Cannot aggregate to timeframe "1m": expected one of 5m, 15m, 30m, 1h, 4h, 1d',
    });
  });
});

Deno.test("aggregatePartitions() labels each bucket with the source of its last 1m bar", async () => {
  await withStore(async (store) => {
    const fakeDay = generateFakeDay("AAPL", "2024-03-08", { seed: 1, gapRate: 0 });
    const otherDay = generateFakeDay("AAPL", "2024-03-11", { seed: 1, gapRate: 0 })
      .map((b) => ({ ...b, provider: "alpaca", feed: "iex" }));
    await writeBars(store, [...fakeDay, ...otherDay], { jobId: "job-1" });
    await aggregatePartitions(store, { timeframes: ["1h", "1d"] });
    const daily = await stored(store, "1d", "AAPL");
    assert.deepEqual(daily.map((b) => [b.tradingDate, b.provider, b.feed]), [
      ["2024-03-08", "fake", "sip"],
      ["2024-03-11", "alpaca", "iex"],
    ]);
    const hours = await stored(store, "1h", "AAPL");
    assert.ok(hours.filter((b) => b.tradingDate === "2024-03-11").every((b) => b.feed === "iex"));
    assert.ok(hours.filter((b) => b.tradingDate === "2024-03-08").every((b) => b.feed === "sip"));
  });
});

Deno.test("aggregatePartitions() reads the 1m files again when an ingest replaced one meanwhile", async () => {
  await withStore(async (store) => {
    const bars = generateFakeDay("AAPL", "2024-03-08", { seed: 3, gapRate: 0 });
    await writeBars(store, bars, { jobId: "job-1" });
    await aggregatePartitions(store, { timeframes: ["5m"] });
    // The 5m target is up to date, so it is reported while the run is still planning; there a
    // writer replaces the 1m file the 1h target was planned from (new name, same rows).
    let replaced = false;
    const summary = await aggregatePartitions(store, {
      timeframes: ["5m", "1h"],
      onProgress: () => {
        if (replaced) return;
        replaced = true;
        const [old] = listFiles(store.meta.db, { tree: "bars", timeframe: "1m", symbol: "AAPL" });
        const path = old.path.replace(/-[0-9a-f]{8}\.parquet$/, "-0badcafe.parquet");
        Deno.copyFileSync(join(store.dataDir, old.path), join(store.dataDir, path));
        commitFiles(store.meta.db, [{ ...old, path }], [old.path]);
        Deno.removeSync(join(store.dataDir, old.path));
      },
    });
    assert.ok(replaced);
    assert.deepEqual([summary.rebuilt, summary.upToDate], [1, 1]);
    assert.deepEqual(
      (await stored(store, "1h", "AAPL")).map((b) => [b.ts, b.volume]),
      expectedRollup(bars, "1h").map((b) => [b.ts, b.volume]),
    );
    // The 1h target recorded the files it read; the 5m one was built from the replaced file.
    const next = await aggregatePartitions(store, { timeframes: ["5m", "1h"] });
    assert.deepEqual(next.timeframes.map((t) => [t.timeframe, t.rebuilt, t.upToDate]), [
      ["5m", 1, 0],
      ["1h", 0, 1],
    ]);
  });
});

Deno.test("aggregatePartitions() names a 1m file it cannot read and writes nothing", async () => {
  await withStore(async (store) => {
    await writeBars(store, generateFakeDay("AAPL", "2024-03-08", { seed: 3 }), { jobId: "job-1" });
    const [file] = await listPartitionFiles(store.dataDir, "bars", "1m", "AAPL");
    await Deno.truncate(file, Math.floor((await Deno.stat(file)).size / 2));
    await assert.rejects(aggregatePartitions(store, { timeframes: ["5m"] }), (error: Error) => {
      assert.equal(error.name, "CorruptFileError");
      assert.match(
        error.message,
        new RegExp(`^Cannot aggregate ${RegExp.escape(file)}: cannot read the stored file`),
      );
      return true;
    });
    assert.deepEqual(await listPartitionFiles(store.dataDir, "bars", "5m", "AAPL"), []);
  });
});

Deno.test("aggregatePartitions() after a killed run ends with the values of a run never killed", async () => {
  const bars = [...testBars("AAPL"), ...testBars("BRK.B")];
  const frames: Timeframe[] = [...INTRADAY, "1d"];
  const snapshot = async (store: AggregationStore) => {
    const out: Record<string, Bar[]> = {};
    for (const timeframe of frames) {
      for (const symbol of ["AAPL", "BRK.B"]) {
        out[`${timeframe} ${symbol}`] = await stored(store, timeframe, symbol);
      }
    }
    return out;
  };
  let clean: Record<string, Bar[]> = {};
  await withStore(async (store) => {
    await writeBars(store, bars, { jobId: "job-1" });
    await aggregatePartitions(store);
    clean = await snapshot(store);
  });
  // What a killed run leaves: the targets it committed, each with its state row except the ones
  // killed between the commit and the state row. The rerun rebuilds the rest (the 1d target
  // alone, say), and every value must be a clean run's, to the last bit of every vwap.
  const cases: { committed: Timeframe[]; withoutState: Timeframe[] }[] = [
    { committed: [...INTRADAY], withoutState: [] },
    { committed: [...INTRADAY, "1d"], withoutState: ["1d"] },
    { committed: ["5m", "15m", "1h", "4h"], withoutState: [] },
    { committed: ["5m", "15m"], withoutState: ["15m"] },
  ];
  for (const { committed, withoutState } of cases) {
    await withStore(async (store) => {
      await writeBars(store, bars, { jobId: "job-1" });
      await aggregatePartitions(store, { timeframes: committed });
      for (const timeframe of withoutState) {
        store.meta.db.prepare("DELETE FROM aggregation_state WHERE timeframe = ?").run(timeframe);
      }
      const rerun = await aggregatePartitions(store);
      const rebuilt = frames.filter((tf) => !committed.includes(tf) || withoutState.includes(tf));
      assert.equal(rerun.rebuilt, rebuilt.length * 2);
      const after = await snapshot(store);
      for (const key of Object.keys(clean)) {
        assert.deepEqual(
          after[key],
          clean[key],
          `${key} after committing ${committed.join(",")} (without state: ${withoutState})`,
        );
      }
    });
  }
});
