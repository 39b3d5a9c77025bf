import type { CommandSpec } from "./args.ts";

/** The `marketpipe` command table: flags, help text, examples and lazily loaded handlers. */
export const COMMANDS: CommandSpec[] = [
  {
    name: "ingest",
    summary: "Fetch bars from a provider into the data directory (resumable)",
    args: "",
    description: [
      "Plans one task per symbol and month (year for 1d) of trading days, records the job, and runs",
      "the tasks on a worker pool. A task counts as done only once its bars are durably written, so",
      "a killed run repeated with the same command does only what is left. Days already stored from",
      "the same provider/feed are skipped unless --force. Dates are New York trading dates,",
      "--start and --end both inclusive.",
    ].join("\n"),
    options: [
      { name: "provider", short: "p", type: "string", placeholder: "NAME", description: "Data provider (see `marketpipe providers`)", default: "fake" },
      { name: "symbols", short: "s", type: "string", placeholder: "LIST", description: "Comma-separated symbols, e.g. AAPL,MSFT,BRK.B" },
      { name: "symbols-file", type: "string", placeholder: "FILE", description: "File with symbols, one or more per line, # comments" },
      { name: "start", type: "string", placeholder: "DATE", description: "First trading date, YYYY-MM-DD (inclusive)" },
      { name: "end", type: "string", placeholder: "DATE", description: "Last trading date, YYYY-MM-DD (inclusive; default: --start)" },
      { name: "timeframe", short: "t", type: "string", placeholder: "TF", description: "Bar timeframe: 1m 5m 15m 30m 1h 4h 1d", default: "1m" },
      { name: "workers", short: "w", type: "string", placeholder: "N", description: "Concurrent tasks, 1-64", default: "4" },
      { name: "batch-size", type: "string", placeholder: "N", description: "Bars per provider request for providers that page (provider default)" },
      { name: "feed", type: "string", placeholder: "FEED", description: "Provider feed, e.g. iex or sip (provider default)" },
      { name: "adjustment", type: "string", placeholder: "ADJ", description: "Price adjustment: raw, split, dividend, all (provider default)" },
      { name: "force", type: "boolean", description: "Fetch again days that are already stored", default: false },
      { name: "resume", type: "string", placeholder: "JOB_ID", description: "Resume an interrupted or partial job by id", configurable: false },
      { name: "fake-seed", type: "string", placeholder: "N", description: "Seed of the fake provider's generator", default: "0" },
      { name: "fake-gap-rate", type: "string", placeholder: "R", description: "Share of minutes the fake provider leaves out, 0-0.99", default: "0.01" },
      { name: "output", type: "string", placeholder: "DIR", description: "Alias of --data-dir (kept from the original)", configurable: false },
    ],
    examples: [
      "marketpipe ingest --provider fake --symbols AAPL,MSFT,SPY --start 2024-03-04 --end 2024-03-15",
      "marketpipe ingest --symbols-file universe.txt --start 2024-01-02 --end 2024-06-28 --workers 8",
      "marketpipe ingest --resume 20241125-191500-ab12",
    ],
    run: () => import("./ingest.ts").then((m) => m.runIngest),
  },
  {
    name: "query",
    summary: "Run read-only SQL over the stored bars (DuckDB)",
    args: "SQL",
    description: [
      "Views: bars_1m, bars_5m, bars_15m, bars_30m, bars_1h, bars_4h, bars_1d (one per timeframe",
      "with data) and bars (all timeframes). Only SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE and",
      "EXPLAIN run; files outside the data directory cannot be read. Columns: symbol, ts (bar start,",
      "UTC), open, high, low, close, volume, vwap, trade_count, timeframe, trading_date, session,",
      "provider, feed, adjustment, ingest_id, ingested_at, schema_version.",
    ].join("\n"),
    options: [
      { name: "format", short: "f", type: "string", placeholder: "FMT", description: "Output: table, csv, json or parquet", default: "table" },
      { name: "output", short: "o", type: "string", placeholder: "FILE", description: "Write the result to FILE (required for parquet)", configurable: false },
      { name: "limit", short: "l", type: "string", placeholder: "N", description: "Maximum rows to return (parquet output is not limited)", default: "10000" },
      { name: "timeout", type: "string", placeholder: "SECONDS", description: "Cancel the query after this many seconds", default: "300" },
    ],
    examples: [
      `marketpipe query "SELECT symbol, count(*) FROM bars_1m GROUP BY symbol"`,
      `marketpipe query "SELECT * FROM bars_1m WHERE symbol = 'AAPL' ORDER BY ts DESC LIMIT 5"`,
      `marketpipe query "SELECT * FROM bars_1m" --format parquet --output bars.parquet`,
    ],
    run: () => import("./query.ts").then((m) => m.runQueryCommand),
  },
  {
    name: "jobs",
    summary: "List, inspect and clean up ingest jobs",
    subcommands: [
      {
        name: "list",
        summary: "List jobs, newest first",
        options: [
          { name: "status", type: "string", placeholder: "S", description: "Only jobs with this status: pending running succeeded partial failed cancelled" },
          { name: "limit", short: "l", type: "string", placeholder: "N", description: "Maximum jobs to show", default: "20" },
        ],
        examples: ["marketpipe jobs list", "marketpipe jobs list --status partial --json"],
        run: () => import("./jobs.ts").then((m) => m.runJobsList),
      },
      {
        name: "show",
        summary: "Show a job with its tasks, counts, errors and durations",
        args: "JOB_ID",
        examples: ["marketpipe jobs show 20241125-191500-ab12"],
        run: () => import("./jobs.ts").then((m) => m.runJobsShow),
      },
      {
        name: "cleanup",
        summary: "Delete finished jobs older than a duration (bars are kept)",
        options: [
          { name: "older-than", type: "string", placeholder: "AGE", description: "Age like 30d, 12h", default: "30d" },
          { name: "dry-run", type: "boolean", description: "Only list what would be deleted", default: false, configurable: false },
        ],
        examples: ["marketpipe jobs cleanup --older-than 30d", "marketpipe jobs cleanup --older-than 7d --dry-run"],
        run: () => import("./jobs.ts").then((m) => m.runJobsCleanup),
      },
    ],
  },
  {
    name: "providers",
    summary: "List data providers, their env vars (set or not), timeframes and feeds",
    examples: ["marketpipe providers", "marketpipe providers --json"],
    run: () => import("./providers.ts").then((m) => m.runProviders),
  },
  {
    name: "migrate",
    summary: "Apply pending metadata migrations (write commands do this automatically)",
    options: [
      { name: "status", type: "boolean", description: "Only show applied and pending migrations", default: false, configurable: false },
    ],
    examples: ["marketpipe migrate", "marketpipe migrate --status"],
    run: () => import("./migrate.ts").then((m) => m.runMigrate),
  },
  {
    name: "demo",
    summary: "Ingest a fake universe and show where the data is and how to query it",
    options: [
      { name: "symbols", short: "s", type: "string", placeholder: "LIST", description: "Symbols to generate", default: "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,SPY,QQQ,BRK.B" },
      { name: "start", type: "string", placeholder: "DATE", description: "First trading date", default: "2024-03-01" },
      { name: "end", type: "string", placeholder: "DATE", description: "Last trading date", default: "2024-03-28" },
    ],
    examples: ["marketpipe demo", "marketpipe demo --data-dir /tmp/mp-demo"],
    run: () => import("./demo.ts").then((m) => m.runDemo),
  },
];
