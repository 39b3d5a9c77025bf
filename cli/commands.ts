import { JOB_STATUSES } from "../core/jobs.ts";
import { TIMEFRAMES } from "../core/types.ts";
import type { OptionSpec } from "../core/config.ts";
import type { CommandSpec } from "./args.ts";
import { SCHEDULE_COMMANDS } from "./commands_schedule.ts";
import {
  chosenSymbolsSpecs,
  dryRunSpec,
  END_OPTION,
  perRunSpec,
  QUERY_ENGINE_OPTIONS,
  SELECTION_RANGE_OPTIONS,
  sessionSpec,
  START_OPTION,
  switchSpec,
  SYMBOLS_FILE_OPTION,
  SYMBOLS_OPTION,
  symbolSelectionSpecs,
  timeframeSpec,
  TZ_OPTION,
  UNIVERSE_AS_OF_OPTION,
  UNIVERSE_OPTION,
  VALIDATION_OPTION,
} from "./options.ts";

/** `--yes`: no confirmation asked (`prune`, `delete`, `universe delete`). */
const YES_OPTION: OptionSpec = {
  name: "yes",
  short: "y",
  type: "boolean",
  description: "Do not ask for confirmation (needed when stdin is not a terminal)",
  default: false,
  configurable: false,
};

/** `--timeframe TF` without a default: only this timeframe, else `all` of them. */
function onlyTimeframeSpec(all: string): OptionSpec {
  return {
    ...timeframeSpec("Only this timeframe"),
    description: `Only this timeframe (${TIMEFRAMES.join(" ")}; default: ${all})`,
    default: undefined,
  };
}

/** The options `prune` and `delete` share: which bars go, and the confirmation. */
const REMOVE_OPTIONS: OptionSpec[] = [
  ...chosenSymbolsSpecs("Only these symbols (default: all)"),
  { ...onlyTimeframeSpec("all"), configurable: false },
  { ...perRunSpec("provider", "NAME", "Only bars from this provider (default: any)"), short: "p" },
  YES_OPTION,
];

/** Concurrent tasks of an ingest job (`ingest`, `update`, `backfill`, `gaps --fill`). */
const WORKERS_OPTION: OptionSpec = {
  name: "workers",
  short: "w",
  type: "string",
  placeholder: "N",
  description: "Concurrent tasks, 1-64",
  default: "4",
};

/** What an ingest job does after and while writing: roll-up and compaction. */
const STORE_WRITE_OPTIONS: OptionSpec[] = [
  {
    name: "aggregate",
    type: "boolean",
    description: "Afterwards roll the touched 1m partitions up to 5m ... 1d (marketpipe aggregate)",
    default: false,
  },
  {
    name: "compact-threshold",
    type: "string",
    placeholder: "N",
    description: "Compact a partition once it holds N files (0: never; see marketpipe compact)",
    default: "16",
  },
  {
    name: "compact",
    type: "boolean",
    description: "Compact partitions that reach the threshold (--no-compact: never)",
    default: true,
  },
];

/** What `gaps` and `backfill` count as a partial day. */
const MIN_COVERAGE_OPTION: OptionSpec = {
  name: "min-coverage",
  type: "string",
  placeholder: "R",
  description: "Smallest share of a regular session's bars that is not a gap, 0-1 or 90%",
  default: "0.9",
};

/** How `update`, `backfill` and `gaps --fill` run their ingest jobs, as `ingest` does. */
const JOB_RUN_OPTIONS: OptionSpec[] = [WORKERS_OPTION, ...STORE_WRITE_OPTIONS, VALIDATION_OPTION];

/** `--as-of DATE` of the `symbols` and `universe` subcommands; give the `description`. */
function asOfSpec(description: string): OptionSpec {
  return perRunSpec("as-of", "DATE", description);
}

/** `symbols` and `universe`: the symbol master and named universes. */
const REFERENCE_COMMANDS: CommandSpec[] = [
  {
    name: "symbols",
    summary: "Load and read the symbol master: what each ticker is, and how that changed",
    description: [
      "The symbol master keeps each instrument's ticker, name, exchange (MIC), asset class,",
      "status, listing and delisting dates and identifiers (FIGI, CUSIP, CIK) with full history:",
      "a change closes the old row (valid_to) and opens a new one, nothing is overwritten. A",
      "ticker change (FB -> META) is one instrument with two tickers over time. Ingest, update,",
      "backfill and gaps judge a known symbol only from its listing to its delisting date.",
    ].join("\n"),
    subcommands: [
      {
        name: "update",
        summary: "Fetch reference data from a source and merge it into the master",
        description: [
          "Sources: alpaca (GET /v2/assets, APCA_API_KEY_ID/APCA_API_SECRET_KEY), polygon",
          "(/v3/reference/tickers, active and inactive, POLYGON_API_KEY), nasdaq (the Nasdaq",
          "Trader symbol directory nasdaqlisted.txt/otherlisted.txt from --file or --url; test",
          "issues skipped) and fake (deterministic, with a listing, a delisting and FB -> META).",
          "Prints inserted, changed, delisted, unchanged and skipped counts; the same input again",
          "changes nothing. A malformed file or payload is refused naming the line or field, and",
          "nothing is written. Snapshots of a source apply oldest first (providers/REFERENCE.md).",
        ].join("\n"),
        options: [
          perRunSpec("source", "S", "alpaca, polygon, nasdaq or fake"),
          {
            name: "file",
            type: "string",
            placeholder: "FILE",
            description: "nasdaq: a symbol directory file (nasdaqlisted.txt, otherlisted.txt)",
            multiple: true,
            configurable: false,
          },
          {
            name: "url",
            type: "string",
            placeholder: "URL",
            description: "nasdaq: a symbol directory file to download",
            multiple: true,
            configurable: false,
          },
          asOfSpec("The date the data describes, YYYY-MM-DD (default: today in New York)"),
          perRunSpec(
            "rate-limit",
            "N",
            "alpaca, polygon, nasdaq --url: requests per minute (default: the source's; polygon 5 for free keys)",
          ),
          dryRunSpec("Only count what would change; write nothing"),
        ],
        examples: [
          "marketpipe symbols update --source fake",
          "marketpipe symbols update --source nasdaq --file nasdaqlisted.txt --file otherlisted.txt",
          "marketpipe symbols update --source nasdaq --url https://www.nasdaqtrader.com/dynamic/SymDir/nasdaqlisted.txt",
          "marketpipe symbols update --source polygon --as-of 2024-03-01 --dry-run",
        ],
        run: () => import("./symbols.ts").then((m) => m.runSymbolsUpdate),
        check: () => import("./symbols.ts").then((m) => m.symbolsUpdateOptions),
      },
      {
        name: "list",
        summary: "List the master's symbols (current, or as of a date)",
        options: [
          perRunSpec(
            "filter",
            "EXPR",
            "Only rows matching, e.g. \"exchange in ('XNAS','XNYS') and asset_class = 'etf'\"",
          ),
          asOfSpec("The rows valid on this date, YYYY-MM-DD (default: the current ones)"),
          perRunSpec("source", "S", "Only rows of this source"),
        ],
        examples: [
          "marketpipe symbols list",
          "marketpipe symbols list --filter \"asset_class = 'etf' and status = 'active'\" --json",
          "marketpipe symbols list --as-of 2022-06-01 --source fake",
        ],
        run: () => import("./symbols.ts").then((m) => m.runSymbolsList),
      },
      {
        name: "show",
        summary: "Show one symbol's current master record",
        args: "TICKER",
        examples: ["marketpipe symbols show AAPL", "marketpipe symbols show META --json"],
        run: () => import("./symbols.ts").then((m) => m.runSymbolsShow),
      },
      {
        name: "history",
        summary: "Show every row of the instrument(s) that ever had a ticker (FB for META too)",
        args: "TICKER",
        examples: ["marketpipe symbols history META", "marketpipe symbols history META --json"],
        run: () => import("./symbols.ts").then((m) => m.runSymbolsHistory),
      },
    ],
  },
  {
    name: "universe",
    summary: "Define named universes of symbols, with membership history",
    description: [
      "A universe is a list (members added and removed as of dates) or a filter over the symbol",
      "master (evaluated point in time over its history). `--universe NAME` on ingest, update,",
      "backfill, validate, gaps, aggregate and export selects its members at any time in the",
      "command's range (today without one), or with --as-of on one date: backtests free of",
      "survivorship bias. Filter fields: ticker name exchange asset_class status list_date",
      "delist_date figi cusip cik source; = != < <= > >= in (...) like is null, and or not.",
    ].join("\n"),
    subcommands: [
      {
        name: "create",
        summary: "Create a universe from symbols or a filter",
        args: "NAME",
        options: [
          ...chosenSymbolsSpecs("Comma-separated member symbols", "File with the member symbols"),
          perRunSpec(
            "filter",
            "EXPR",
            "Members are the master's symbols matching, e.g. \"status = 'active'\"",
          ),
          perRunSpec("description", "TEXT", "What the universe is for"),
          asOfSpec("Members from this date, YYYY-MM-DD (list; default: today in New York)"),
        ],
        examples: [
          "marketpipe universe create tech --symbols AAPL,MSFT,NVDA --as-of 2022-01-03",
          "marketpipe universe create etfs --filter \"exchange in ('XNAS','XNYS','ARCX') and asset_class = 'etf' and status = 'active'\"",
        ],
        run: () => import("./universe.ts").then((m) => m.runUniverseCreate),
      },
      {
        name: "add",
        summary: "Add symbols to a list universe as of a date",
        args: "NAME",
        options: [
          ...chosenSymbolsSpecs("Comma-separated symbols to add", "File with the symbols to add"),
          asOfSpec("Members from this date, YYYY-MM-DD (default: today in New York)"),
        ],
        examples: ["marketpipe universe add tech --symbols AMD --as-of 2022-06-01"],
        run: () => import("./universe.ts").then((m) => m.runUniverseAdd),
      },
      {
        name: "remove",
        summary: "Remove symbols from a list universe as of a date (history is kept)",
        args: "NAME",
        options: [
          ...chosenSymbolsSpecs(
            "Comma-separated symbols to remove",
            "File with the symbols to remove",
          ),
          asOfSpec("No longer members from this date, YYYY-MM-DD (default: today in New York)"),
        ],
        examples: ["marketpipe universe remove tech --symbols NVDA --as-of 2022-06-30"],
        run: () => import("./universe.ts").then((m) => m.runUniverseRemove),
      },
      {
        name: "list",
        summary: "List the universes with their member counts",
        options: [asOfSpec("Count members on this date, YYYY-MM-DD (default: today)")],
        examples: ["marketpipe universe list", "marketpipe universe list --json"],
        run: () => import("./universe.ts").then((m) => m.runUniverseList),
      },
      {
        name: "show",
        summary: "Show a universe's members on a date, with their listing dates",
        args: "NAME",
        options: [asOfSpec("Members on this date, YYYY-MM-DD (default: today in New York)")],
        examples: [
          "marketpipe universe show tech",
          "marketpipe universe show tech --as-of 2022-06-30 --json",
        ],
        run: () => import("./universe.ts").then((m) => m.runUniverseShow),
      },
      {
        name: "delete",
        summary: "Delete a universe and its membership history",
        args: "NAME",
        options: [YES_OPTION],
        examples: ["marketpipe universe delete tech --yes"],
        run: () => import("./universe.ts").then((m) => m.runUniverseDelete),
      },
    ],
  },
];

/** The `marketpipe` command table: flags, help text, examples and lazily loaded handlers. */
export const COMMANDS: CommandSpec[] = [
  {
    name: "ingest",
    summary: "Fetch bars from a provider into the data directory (resumable)",
    args: "",
    description: [
      "Plans tasks of about 25,000 bars per symbol within one year partition (26 days of 1m, a",
      "year of 15m and longer), records the job, and runs",
      "the tasks on a worker pool. A task counts as done only once its bars are durably written, so",
      "a killed run repeated with the same command does only what is left. Days already stored from",
      "the same provider/feed are skipped unless --force. Dates are New York trading dates,",
      "--start and --end both inclusive. A symbol the symbol master knows (marketpipe symbols) is",
      "fetched only from its listing to its delisting date, and from providers that serve history",
      "under the ticker valid then (polygon, fake) under its earlier ticker, stored under today's.",
    ].join("\n"),
    options: [
      {
        name: "provider",
        short: "p",
        type: "string",
        placeholder: "NAME",
        description: "Data provider (see `marketpipe providers`)",
        default: "fake",
      },
      ...symbolSelectionSpecs("Comma-separated symbols, e.g. AAPL,MSFT,BRK.B"),
      START_OPTION,
      END_OPTION,
      timeframeSpec("Bar timeframe"),
      WORKERS_OPTION,
      {
        name: "batch-size",
        type: "string",
        placeholder: "N",
        description: "Bars per provider request for providers that page (provider default)",
      },
      {
        name: "feed",
        type: "string",
        placeholder: "FEED",
        description: "Provider feed, e.g. iex or sip (provider default)",
      },
      {
        name: "adjustment",
        type: "string",
        placeholder: "ADJ",
        description: "Price adjustment: raw, split, dividend, all (provider default)",
      },
      {
        name: "rate-limit",
        type: "string",
        placeholder: "N",
        description: "Provider requests per minute (provider default, e.g. alpaca 200, polygon 5)",
      },
      {
        name: "force",
        type: "boolean",
        description: "Fetch again days that are already stored",
        default: false,
      },
      perRunSpec("resume", "JOB_ID", "Resume an interrupted or partial job by id"),
      {
        name: "fake-seed",
        type: "string",
        placeholder: "N",
        description: "Seed of the fake provider's generator",
        default: "0",
      },
      {
        name: "fake-gap-rate",
        type: "string",
        placeholder: "R",
        description: "Share of minutes the fake provider leaves out, 0-0.99",
        default: "0.01",
      },
      {
        name: "fake-corrupt-rate",
        type: "string",
        placeholder: "R",
        description:
          "Share of regular-session bars the fake provider corrupts with known defects, 0-0.5",
        default: "0",
      },
      ...STORE_WRITE_OPTIONS,
      VALIDATION_OPTION,
      perRunSpec("output", "DIR", "Alias of --data-dir (kept from the original)"),
    ],
    examples: [
      "marketpipe ingest --provider fake --symbols AAPL,MSFT,SPY --start 2024-03-04 --end 2024-03-15",
      "marketpipe ingest --symbols-file universe.txt --start 2024-01-02 --end 2024-06-28 --workers 8",
      "marketpipe ingest --universe tech --start 2022-01-03 --end 2022-12-30 --timeframe 1d",
      "marketpipe ingest --resume 20241125-191500-ab12",
    ],
    run: () => import("./ingest.ts").then((m) => m.runIngest),
  },
  {
    name: "query",
    summary: "Run read-only SQL over the stored bars (DuckDB)",
    args: "SQL",
    description: [
      `Views: ${TIMEFRAMES.map((tf) => `bars_${tf}`).join(", ")} (one per timeframe`,
      "with data) and bars (all timeframes). Only SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE and",
      "EXPLAIN run; files outside the data directory cannot be read. Columns: symbol, ts (bar start,",
      "TIMESTAMPTZ; tables show it in New York time, --tz utc|local to change, CSV and JSON give",
      "ISO UTC unless --tz), open, high, low, close, volume, vwap, trade_count, timeframe,",
      "trading_date, session, provider, feed, adjustment, ingest_id, ingested_at, schema_version.",
      "Reference tables: symbols, symbols_history, universes, universe_members.",
    ].join("\n"),
    options: [
      {
        name: "format",
        short: "f",
        type: "string",
        placeholder: "FMT",
        description: "Output: table, csv, json or parquet",
        default: "table",
      },
      TZ_OPTION,
      {
        ...perRunSpec("output", "FILE", "Write the result to FILE (required for parquet)"),
        short: "o",
      },
      {
        name: "limit",
        short: "l",
        type: "string",
        placeholder: "N",
        description: "Most rows to print; with --output every row unless given (a cut exits 3)",
        default: "10000",
      },
      {
        name: "timeout",
        type: "string",
        placeholder: "SECONDS",
        description: "Cancel the query after this many seconds",
        default: "300",
      },
      ...QUERY_ENGINE_OPTIONS,
    ],
    examples: [
      `marketpipe query "SELECT symbol, count(*) FROM bars_1m GROUP BY symbol"`,
      `marketpipe query "SELECT * FROM bars_1m WHERE symbol = 'AAPL' ORDER BY ts DESC LIMIT 5"`,
      `marketpipe query "SELECT * FROM bars_1m" --format parquet --output bars.parquet`,
    ],
    run: () => import("./query.ts").then((m) => m.runQueryCommand),
  },
  {
    name: "export",
    summary: "Write stored bars to Parquet, CSV or Arrow files (streamed, never capped)",
    args: "",
    description: [
      "Writes the bars of --symbols, one timeframe and a range of trading dates (both inclusive),",
      "ordered by symbol and ts, to one file or with --per-symbol to DIR/<SYMBOL>.<format>. Memory",
      "stays bounded whatever the range. --out follows the rules of query --output: never inside",
      "the data directory except <data>/exports/, written to a temp file and renamed into place, so",
      "a failed export leaves nothing. Parquet (zstd) and Arrow (IPC file) keep ts as UTC instants;",
      "CSV writes ISO 8601 times, in UTC or with --tz as local time with offset (column ts_<zone>).",
    ].join("\n"),
    options: [
      ...symbolSelectionSpecs("Comma-separated symbols, e.g. AAPL,MSFT,BRK.B"),
      START_OPTION,
      END_OPTION,
      timeframeSpec("Bar timeframe"),
      { ...perRunSpec("format", "FMT", "parquet, csv or arrow"), short: "f" },
      {
        ...perRunSpec(
          "out",
          "PATH",
          "File to write, or with --per-symbol the folder (created when missing)",
        ),
        short: "o",
      },
      switchSpec("per-symbol", "One file per symbol, <out>/<SYMBOL>.<format>"),
      {
        name: "tz",
        type: "string",
        placeholder: "ZONE",
        description:
          "CSV only: ts as local time in this IANA zone, e.g. America/New_York, or exchange, utc, local (default UTC)",
      },
      {
        name: "columns",
        type: "string",
        placeholder: "LIST",
        description: "Bar columns to write, in order, e.g. symbol,ts,close (default: all)",
      },
      ...QUERY_ENGINE_OPTIONS,
    ],
    examples: [
      "marketpipe export --symbols AAPL,MSFT --start 2024-01-02 --end 2024-12-31 --format parquet --out bars.parquet",
      "marketpipe export --symbols SPY --start 2024-03-01 --end 2024-03-28 --format csv --tz America/New_York --columns ts,close,volume --out spy.csv",
      "marketpipe export --symbols-file universe.txt --start 2024-01-02 --end 2024-06-28 --format arrow --per-symbol --out arrow/",
    ],
    run: () => import("./export.ts").then((m) => m.runExport),
  },
  {
    name: "validate",
    summary: "Check stored bars against the validation rules and write an audit report",
    args: "[JOB_ID]",
    description: [
      "Re-checks the stored bars of a job (JOB_ID) or of --symbols and --start/--end against the",
      "rules (marketpipe validate --rules), lists the bars a job quarantined, and writes one CSV per",
      "symbol (symbol,ts,rule,severity,detail) under <data>/reports/validation/<report>/ plus a",
      "summary row in the metadata database. --cross-check compares a provider's own 5m-1d bars",
      "with our aggregation of the stored 1m bars. --fail-on sets the exit code (1) for CI.",
    ].join("\n"),
    options: [
      ...SELECTION_RANGE_OPTIONS,
      timeframeSpec("Timeframe of the bars to check"),
      {
        name: "fail-on",
        type: "string",
        placeholder: "LEVEL",
        description: "Exit 1 when there are findings of this severity or worse: warn or error",
      },
      switchSpec(
        "cross-check",
        "Compare the provider's bars of --timeframe with our aggregation of 1m bars",
      ),
      sessionSpec("Daily bars of the cross-check: regular or extended (default regular)"),
      VALIDATION_OPTION,
      TZ_OPTION,
      switchSpec("list", "List the reports, newest first"),
      perRunSpec(
        "show",
        "REPORT",
        "Print a report (id, unique id prefix, or the job it validated)",
      ),
      switchSpec("rules", "List the rules with their severity, threshold and whether they are on"),
      {
        name: "limit",
        short: "l",
        type: "string",
        placeholder: "N",
        description: "Reports listed (--list) or findings printed (--show, a run)",
        default: "20",
        configurable: false,
      },
    ],
    examples: [
      "marketpipe validate --symbols AAPL --start 2024-03-01 --end 2024-03-31",
      "marketpipe validate 20241125-191500-ab12 --fail-on error",
      "marketpipe validate --list",
      "marketpipe validate --show v20241125-193000-0c1d",
      "marketpipe validate --rules",
      "marketpipe validate --symbols SPY --timeframe 1d --start 2024-01-02 --end 2024-06-28 --cross-check",
    ],
    run: () => import("./validate.ts").then((m) => m.runValidate),
    check: () => import("./validate.ts").then((m) => m.checkValidateOptions),
  },
  {
    name: "gaps",
    summary: "List trading days with no bars or too little of their regular session",
    description: [
      "Compares the stored bars with the NYSE calendar: per symbol, the trading days without any",
      "bar, and (intraday) the days whose regular session holds fewer bars than --min-coverage of",
      "a complete one. Days a provider answered with no bars during ingest are listed as known",
      "empty, not as missing. Without --symbols, every symbol stored for --timeframe; without",
      "--start, each symbol from its first to its last stored session. A symbol the symbol master",
      "knows is judged only from its listing to its delisting date. --fill fetches the gaps",
      "first (as marketpipe backfill); --fail-on missing|partial exits 1 when gaps remain.",
    ].join("\n"),
    options: [
      ...symbolSelectionSpecs("Comma-separated symbols (default: all stored)"),
      { ...START_OPTION, description: "First trading date (default: each symbol's first stored)" },
      END_OPTION,
      timeframeSpec("Timeframe whose bars are compared"),
      MIN_COVERAGE_OPTION,
      {
        name: "fail-on",
        type: "string",
        placeholder: "KIND",
        description:
          "Exit 1 when there are gaps: missing (days) or partial (missing or partial days)",
      },
      switchSpec("fill", "Fetch the missing and partial days first (marketpipe backfill)"),
      ...JOB_RUN_OPTIONS,
    ],
    examples: [
      "marketpipe gaps --symbols AAPL,MSFT --start 2024-01-02 --end 2024-06-28",
      "marketpipe gaps --start 2024-03-01 --end 2024-03-28 --min-coverage 0.95 --json",
      "marketpipe gaps --fail-on missing",
      "marketpipe gaps --symbols AAPL --fill",
      "marketpipe gaps --universe tech --start 2024-01-02 --end 2024-06-28",
    ],
    run: () => import("./gaps.ts").then((m) => m.runGaps),
  },
  {
    name: "update",
    summary: "Bring every stored series up to the last completed session (for cron)",
    description: [
      "Finds the stored series (symbol, timeframe, provider, feed) in the coverage table and",
      "ingests each from the session after its last stored one to the last completed session",
      "(the regular close for 1d bars, 20:00 New York for intraday; early closes included), one",
      "resumable ingest job per source. Run again it writes nothing and says it is up to date.",
    ].join("\n"),
    options: [
      ...chosenSymbolsSpecs("Only these symbols (default: all stored)"),
      { ...UNIVERSE_OPTION, description: "Only the members of this universe today" },
      UNIVERSE_AS_OF_OPTION,
      { ...onlyTimeframeSpec("all stored"), configurable: false },
      ...JOB_RUN_OPTIONS,
    ],
    examples: [
      "marketpipe update",
      "marketpipe update --symbols AAPL,MSFT --timeframe 1m --aggregate",
      "15 21 * * 1-5 marketpipe update --data-dir /srv/marketpipe   # crontab line",
    ],
    run: () => import("./update.ts").then((m) => m.runUpdate),
  },
  {
    name: "backfill",
    summary: "Fetch the missing and partial days that gaps lists, or older history",
    description: [
      "Fetches exactly the missing and partial days marketpipe gaps reports for --timeframe (each",
      "symbol judged over its own stored range, or --start/--end), again from the source that",
      "stored the symbol, replacing a partial day's bars. --before DATE also fetches each series'",
      "trading days from DATE up to its first stored session. Resumable ingest jobs, one per",
      "source and run of consecutive days.",
    ].join("\n"),
    options: [
      ...chosenSymbolsSpecs("Only these symbols (default: all stored)"),
      { ...UNIVERSE_OPTION, description: "Only the members of this universe (in the range)" },
      UNIVERSE_AS_OF_OPTION,
      {
        ...START_OPTION,
        description: "First trading date judged (default: each symbol's first)",
        configurable: false,
      },
      { ...END_OPTION, configurable: false },
      { ...timeframeSpec("Timeframe whose gaps are filled"), configurable: false },
      perRunSpec(
        "before",
        "DATE",
        "Extend history back to this date, YYYY-MM-DD (not after the last session)",
      ),
      MIN_COVERAGE_OPTION,
      ...JOB_RUN_OPTIONS,
    ],
    examples: [
      "marketpipe backfill",
      "marketpipe backfill --symbols AAPL --start 2024-01-02 --end 2024-06-28",
      "marketpipe backfill --symbols SPY --timeframe 1d --before 2020-01-02",
    ],
    run: () => import("./update.ts").then((m) => m.runBackfill),
  },
  {
    name: "compact",
    summary: "Merge the files of each partition into one (appends leave several)",
    description: [
      "An ingest of new days writes new files beside the stored ones (it never rewrites history),",
      "so a partition (timeframe, symbol, year) collects one file per ingest. compact merges each",
      "partition with two or more files into one file sorted by ts, atomically: a reader sees the",
      "old files or the new one, never both. Ingest compacts a partition on its own once it holds",
      "--compact-threshold files (16; 0 turns it off). Files a killed writer left are removed too.",
    ].join("\n"),
    options: [
      { ...SYMBOLS_OPTION, description: "Only these symbols (default: all)" },
      { ...SYMBOLS_FILE_OPTION, description: "Only the symbols in FILE" },
      onlyTimeframeSpec("all"),
      {
        name: "quarantine",
        type: "boolean",
        description: "Compact the quarantine instead of the bars",
        default: false,
      },
      dryRunSpec("Only show what would be compacted"),
    ],
    examples: [
      "marketpipe compact",
      "marketpipe compact --symbols AAPL,MSFT --timeframe 1m --dry-run",
    ],
    run: () => import("./compact.ts").then((m) => m.runCompact),
  },
  {
    name: "repair",
    summary: "Find stored Parquet files that cannot be read and move them aside",
    description: [
      "Reads every Parquet file under <data>/bars and <data>/quarantine in full and lists those",
      "that cannot be read (truncated, bad compression) with the reason; exits 1 when there are",
      "any. --move renames each to <data>/corrupt/<same path> (never deleting anything) and",
      "forgets the ingested days of its partition, so gaps lists them as missing and running the",
      "ingest again fetches them.",
    ].join("\n"),
    options: [
      switchSpec(
        "move",
        "Move the unreadable files to <data>/corrupt/ and mark their days missing",
      ),
      dryRunSpec("With --move: only show what would be moved"),
    ],
    examples: [
      "marketpipe repair",
      "marketpipe repair --move --dry-run",
      "marketpipe repair --move --json",
    ],
    run: () => import("./repair.ts").then((m) => m.runRepair),
  },
  {
    name: "prune",
    summary: "Remove the bars of trading dates before a date, or past the configured retention",
    description: [
      "Removes stored and quarantined bars of trading dates before --before (or, with --policy,",
      "before each timeframe's retention: config retention: {1m: 2y, 5m: 5y}; ages are Nd, Nw,",
      "Nmo or Ny), of every timeframe unless --timeframe. A file that holds only such bars is",
      "deleted, one that holds some is rewritten without them, and their days are forgotten, so",
      "gaps lists them and ingest fetches them again. Asks first on a terminal; scripts pass --yes.",
    ].join("\n"),
    options: [
      perRunSpec(
        "before",
        "DATE",
        "Remove bars of trading dates before this one, YYYY-MM-DD (not after today)",
      ),
      switchSpec("policy", "Apply the retention policy instead of --before"),
      {
        name: "retention-policy",
        type: "string",
        placeholder: "TF=AGE,..",
        description: "Retention per timeframe for --policy, e.g. 1m=2y,5m=5y (config: retention)",
      },
      ...REMOVE_OPTIONS,
      dryRunSpec("Only list what would be removed"),
    ],
    examples: [
      "marketpipe prune --before 2024-01-01 --timeframe 1m --dry-run",
      "marketpipe prune --before 2024-01-01 --symbols AAPL --yes",
      "marketpipe prune --policy --yes",
    ],
    run: () => import("./prune.ts").then((m) => m.runPrune),
    check: () => import("./prune.ts").then((m) => m.pruneCutoffs),
  },
  {
    name: "delete",
    summary: "Remove every stored bar of some symbols",
    description: [
      "Removes the stored and quarantined bars of --symbols (of every timeframe unless",
      "--timeframe, from every provider unless --provider) and forgets their days, so gaps lists",
      "them and ingest fetches them again. Asks first on a terminal; scripts pass --yes.",
    ].join("\n"),
    options: [
      { ...REMOVE_OPTIONS[0], description: "Comma-separated symbols to delete" },
      { ...REMOVE_OPTIONS[1], description: "File with the symbols to delete" },
      ...REMOVE_OPTIONS.slice(2),
      dryRunSpec("Only list what would be removed"),
    ],
    examples: [
      "marketpipe delete --symbols TSLA --dry-run",
      "marketpipe delete --symbols TSLA,NVDA --timeframe 1m --provider fake --yes",
    ],
    run: () => import("./prune.ts").then((m) => m.runDelete),
  },
  {
    name: "aggregate",
    summary: `Roll stored 1m bars up to ${TIMEFRAMES.slice(1, -1).join(", ")} and 1d partitions`,
    description: [
      "Buckets start at the 09:30 New York open (5m: 09:30, 09:35 ...; 1h: 09:30-10:30 ...",
      "15:30-16:00), never cross a session boundary, and follow DST and early closes; daily bars",
      "cover the regular session (--session extended: 04:00-20:00). Only partitions whose 1m bars",
      "changed since their last aggregation are rebuilt (--force: all). Bars a provider delivered",
      "for a timeframe itself are kept for their days. The views bars_5m ... bars_1d read them.",
    ].join("\n"),
    options: [
      {
        name: "timeframes",
        type: "string",
        placeholder: "LIST",
        description: "Timeframes to build, comma separated",
        default: TIMEFRAMES.slice(1).join(","),
      },
      ...symbolSelectionSpecs("Comma-separated symbols (default: all with 1m bars)"),
      {
        ...START_OPTION,
        description: "First trading date whose 1m partitions are aggregated (default: all)",
      },
      { ...END_OPTION, description: "Last trading date (inclusive; default: --start)" },
      sessionSpec(
        "Sessions of daily bars: regular or extended (default: as last built, else regular)",
      ),
      switchSpec("force", "Rebuild every partition in scope, changed or not"),
    ],
    examples: [
      "marketpipe aggregate",
      "marketpipe aggregate --timeframes 5m,15m,1h,1d --symbols AAPL --start 2024-03-01 --end 2024-03-31",
      "marketpipe aggregate --timeframes 1d --session extended",
    ],
    run: () => import("./aggregate.ts").then((m) => m.runAggregate),
  },
  {
    name: "serve",
    summary: "Serve the dashboard, REST API and /metrics over the data directory",
    server: true,
    description: [
      "Dashboard (overview, symbols with candlestick charts and coverage, jobs, validation, SQL",
      "console), a JSON/CSV/Arrow/Parquet REST API (GET /api/openapi.json), /metrics, /healthz and",
      "/readyz. Listens on 127.0.0.1 by default; any other address needs MARKETPIPE_API_TOKEN,",
      "and with a token POST and DELETE require `Authorization: Bearer <token>` (and reads too",
      "with --auth-reads; browsers log in at /login). Ingests started from the web run in this",
      "process; Ctrl-C or SIGTERM cancels them resumably and exits 0.",
    ].join("\n"),
    options: [
      {
        name: "host",
        type: "string",
        placeholder: "ADDR",
        description: "Address to listen on (non-loopback needs MARKETPIPE_API_TOKEN)",
        default: "127.0.0.1",
      },
      {
        name: "port",
        short: "p",
        type: "string",
        placeholder: "PORT",
        description: "Port to listen on (0: any free port)",
        default: "8000",
      },
      {
        name: "auth-reads",
        type: "boolean",
        description: "Require the token for reads too",
        default: false,
      },
      {
        name: "legacy-metrics",
        type: "boolean",
        description: "Also emit the original tool's mp_*_legacy_* series on /metrics",
        default: false,
      },
      {
        name: "aggregate",
        type: "boolean",
        description: "Default for jobs started from the web: roll 1m bars up afterwards",
        default: false,
      },
      {
        name: "max-heavy",
        type: "string",
        placeholder: "N",
        description: "DuckDB-backed requests at once; 64 more wait, beyond that 503",
        default: "4",
      },
      {
        name: "max-jobs",
        type: "string",
        placeholder: "N",
        description: "Ingest jobs the server runs at once",
        default: "2",
      },
      {
        name: "query-timeout",
        type: "string",
        placeholder: "SECONDS",
        description: "Longest a query or bars read may run",
        default: "30",
      },
      {
        name: "quiet",
        short: "q",
        type: "boolean",
        description: "No access log line per request on stderr",
        default: false,
      },
      ...QUERY_ENGINE_OPTIONS,
    ],
    examples: [
      "marketpipe serve",
      "MARKETPIPE_API_TOKEN=$(openssl rand -hex 24) marketpipe serve --host 0.0.0.0 --port 9000",
      "curl 'http://127.0.0.1:8000/api/bars?symbol=AAPL&timeframe=5m&start=2024-03-04&end=2024-03-08'",
    ],
    run: () => import("./serve.ts").then((m) => m.runServe),
  },
  ...REFERENCE_COMMANDS,
  {
    name: "jobs",
    summary: "List, inspect and clean up ingest jobs",
    subcommands: [
      {
        name: "list",
        summary: "List jobs, newest first",
        options: [
          {
            name: "status",
            type: "string",
            placeholder: "S",
            description: `Only jobs with this status: ${JOB_STATUSES.join(" ")}`,
          },
          {
            name: "limit",
            short: "l",
            type: "string",
            placeholder: "N",
            description: "Maximum jobs to show",
            default: "20",
          },
          TZ_OPTION,
        ],
        examples: ["marketpipe jobs list", "marketpipe jobs list --status partial --json"],
        run: () => import("./jobs.ts").then((m) => m.runJobsList),
      },
      {
        name: "show",
        summary: "Show a job with its tasks, counts, errors and durations",
        args: "JOB_ID",
        options: [TZ_OPTION],
        examples: [
          "marketpipe jobs show 20241125-191500-ab12",
          "marketpipe jobs show 2024 --tz utc",
        ],
        run: () => import("./jobs.ts").then((m) => m.runJobsShow),
      },
      {
        name: "cleanup",
        summary: "Delete finished jobs older than a duration (bars are kept)",
        options: [
          {
            name: "older-than",
            type: "string",
            placeholder: "AGE",
            description: "Age like 30d, 12h",
            default: "30d",
          },
          dryRunSpec("Only list what would be deleted"),
          TZ_OPTION,
        ],
        examples: [
          "marketpipe jobs cleanup --older-than 30d",
          "marketpipe jobs cleanup --older-than 7d --dry-run",
        ],
        run: () => import("./jobs.ts").then((m) => m.runJobsCleanup),
      },
    ],
  },
  ...SCHEDULE_COMMANDS,
  {
    name: "providers",
    summary: "List data providers, their env vars (set or not), timeframes and feeds",
    examples: ["marketpipe providers", "marketpipe providers --json"],
    run: () => import("./providers.ts").then((m) => m.runProviders),
  },
  {
    name: "metrics",
    summary: "Serve Prometheus metrics, or show the stored metric history",
    description: [
      "Every marketpipe process adds its counter and histogram increases to the data directory's",
      "SQLite a few times a second, so `metrics --port` and `serve` expose the totals of all",
      "processes (an ingest run from cron included), monotonic across restarts. Without --port it",
      "prints the history: --list, or --metric NAME with --since, --labels, --avg and --plot.",
      "METRICS_MAX_CONNECTIONS (default 100) caps concurrent scrapes (503 beyond);",
      "METRICS_MAX_HEADER_SIZE (default 16384 bytes) caps request headers (431 beyond).",
      "PROMETHEUS_MULTIPROC_DIR, if set, is where the metric history database lives.",
    ].join("\n"),
    options: [
      {
        name: "port",
        short: "p",
        type: "string",
        placeholder: "PORT",
        description: "Serve /metrics on this port (metrics-only server)",
        env: "METRICS_PORT",
      },
      {
        name: "host",
        type: "string",
        placeholder: "HOST",
        description: "Address to bind with --port",
        default: "127.0.0.1",
      },
      {
        name: "legacy-metrics",
        type: "boolean",
        description: "Also emit the original tool's mp_*_legacy_* series",
        default: false,
      },
      {
        name: "list",
        type: "boolean",
        description: "List metrics with their last value and samples",
        configurable: false,
      },
      { ...perRunSpec("metric", "NAME", "Show the history of one metric"), short: "m" },
      {
        name: "since",
        type: "string",
        placeholder: "WHEN",
        description: "History start: a duration back from now (24h, 7d) or a time",
        default: "24h",
        configurable: false,
      },
      perRunSpec("labels", "K=V,..", "Only series with these labels, e.g. provider=fake"),
      perRunSpec(
        "avg",
        "WINDOW",
        "Per-window values: increase for counters, mean for latencies (15m, 1h, 1d)",
      ),
      {
        name: "plot",
        type: "boolean",
        description: "Draw a line chart sized to the terminal",
        configurable: false,
      },
      {
        ...TZ_OPTION,
        description: "Show times in exchange (New York), utc or local time (default: UTC, Z)",
        default: undefined,
        configurable: false,
      },
      {
        name: "retention",
        type: "string",
        placeholder: "AGE",
        description: "Keep metric history this long",
        default: "30d",
      },
    ],
    examples: [
      "marketpipe metrics --port 8000",
      "marketpipe metrics --list",
      "marketpipe metrics --metric mp_ingest_rows_total --since 24h",
      "marketpipe metrics --metric mp_request_latency_seconds --avg 1h --plot",
    ],
    server: true,
    run: () => import("./metrics.ts").then((m) => m.runMetrics),
  },
  {
    name: "migrate",
    summary: "Apply pending metadata migrations and convert an old storage layout in place",
    description: [
      "Applies pending metadata migrations (write commands do this automatically), then converts a",
      "data directory of storage layout 1 (one data.parquet per month) to layout 2, file by file:",
      "each new file is checked against the old one (row count and a checksum of every value)",
      "before the old one is deleted. Resumable: after a kill or Ctrl-C run it again. Write",
      "commands refuse a layout-1 directory until it is converted.",
    ].join("\n"),
    options: [
      switchSpec("status", "Only show applied and pending migrations and the storage layout"),
      dryRunSpec("Only show what would be migrated and converted"),
    ],
    examples: ["marketpipe migrate", "marketpipe migrate --status", "marketpipe migrate --dry-run"],
    run: () => import("./migrate.ts").then((m) => m.runMigrate),
  },
  {
    name: "demo",
    summary: "Ingest a fake universe and show where the data is and how to query it",
    options: [
      {
        ...SYMBOLS_OPTION,
        description: "Symbols to generate",
        default: "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,SPY,QQQ,BRK.B",
      },
      { ...START_OPTION, description: "First trading date", default: "2024-03-01" },
      { ...END_OPTION, description: "Last trading date", default: "2024-03-28" },
    ],
    examples: ["marketpipe demo", "marketpipe demo --data-dir /tmp/mp-demo"],
    run: () => import("./demo.ts").then((m) => m.runDemo),
  },
];
