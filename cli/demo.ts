import { resolve } from "node:path";
import { buildIngestRequest } from "../providers/ingest_request.ts";
import { fetchReference } from "../providers/mod.ts";
import { formatTable, openQueryEngine, runQuery, storageStats } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { dataDirArgs, formatBytes, formatCount, shellCommand } from "./format.ts";
import { exitCodeOf, runPreparedIngest } from "./ingest.ts";
import { dataDirOf, positionals, todayOf } from "./options.ts";
import { unappliedSnapshots } from "./symbols.ts";
import { withReferenceWriter } from "./universe.ts";

/** The universe the demo creates from its symbols. */
const _DEMO_UNIVERSE = "demo";

/** `marketpipe demo`: ingest a fake universe, then show where it is and how to query it. */
export async function runDemo(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  // The same request builder as `marketpipe ingest`: the fake provider and its defaults.
  const built = await buildIngestRequest({
    symbols: invocation.string("symbols") ?? "AAPL",
    start: invocation.string("start") ?? "2024-03-01",
    end: invocation.string("end") ?? "2024-03-28",
  });
  const symbols = built.request.symbols;
  const summary = await runPreparedIngest({ ...built, dataDir }, { ...context, json: false });
  const code = exitCodeOf(summary, context);
  if (code !== EXIT.ok) return code;
  // The fake symbol master (as `symbols update --source fake`) and a universe of the symbols,
  // so the dashboard and `query` show reference data too.
  const snapshots = await fetchReference("fake", { asOf: todayOf(context), env: context.env });
  await withReferenceWriter(dataDir, (reference) => {
    reference.applySnapshots(unappliedSnapshots(reference, snapshots));
    if (reference.getUniverse(_DEMO_UNIVERSE) === undefined) {
      reference.createUniverse(_DEMO_UNIVERSE, {
        symbols,
        description: "The symbols of marketpipe demo",
        asOf: built.request.start,
      });
    }
  });
  const stats = await storageStats(dataDir);
  const engine = await openQueryEngine(dataDir);
  let table: string;
  try {
    table = formatTable(
      await runQuery(
        engine,
        "SELECT symbol, count(*) AS bars, min(trading_date) AS first_day, max(trading_date) AS last_day, round(min(low), 2) AS low, round(max(high), 2) AS high FROM bars_1m GROUP BY symbol ORDER BY symbol",
        { signal: context.signal },
      ),
    );
  } finally {
    engine.close();
  }
  const dirArgs = dataDirArgs(dataDir);
  // A Python string literal (JSON's escapes are Python's too) for the one-liners below.
  const barsDir = JSON.stringify(`${resolve(dataDir)}/bars`);
  const lines = [
    "",
    `Data directory: ${resolve(dataDir)}`,
    `  ${formatCount(stats.files)} Parquet file(s), ${
      formatBytes(stats.bytes)
    } under bars/ (hive partitions timeframe=/symbol=/year=)`,
    `  metadata (jobs, coverage): ${resolve(dataDir, "marketpipe.db")}`,
    "",
    table,
    "",
    "Try (from a checkout, run `deno task marketpipe` where it says `marketpipe`):",
    `  ${
      shellCommand([
        "marketpipe",
        "query",
        `SELECT * FROM bars_1m WHERE symbol = '${symbols[0]}' ORDER BY ts LIMIT 5`,
        ...dirArgs,
      ])
    }`,
    `  ${
      shellCommand([
        "marketpipe",
        "query",
        `SELECT trading_date, count(*) FROM bars_1m WHERE symbol = '${
          symbols[0]
        }' AND session = 'regular' GROUP BY 1 ORDER BY 1`,
        ...dirArgs,
      ])
    }`,
    `  ${shellCommand(["marketpipe", "jobs", "list", ...dirArgs])}`,
    `  ${
      shellCommand(["marketpipe", "universe", "show", _DEMO_UNIVERSE, ...dirArgs])
    }   # the demo universe with the fake symbol master's listing dates`,
    "From Python (pip install pyarrow pandas polars; the README shows DuckDB and dask too):",
    `  ${
      shellCommand([
        "python3",
        "-c",
        `import pandas as pd; print(pd.read_parquet(${barsDir}).groupby(["timeframe", "symbol"], observed=True).size())`,
      ])
    }`,
    `  ${
      shellCommand([
        "python3",
        "-c",
        `import polars as pl; print(pl.scan_parquet(${barsDir}, hive_partitioning=True).group_by("timeframe", "symbol").len().sort("timeframe", "symbol").collect())`,
      ])
    }`,
  ];
  if (context.json) {
    context.out(
      JSON.stringify({
        dataDir: resolve(dataDir),
        files: stats.files,
        bytes: stats.bytes,
        job: summary.job?.id ?? null,
        universe: _DEMO_UNIVERSE,
      }),
    );
  } else {
    for (const line of lines) context.out(line);
  }
  return EXIT.ok;
}
