import { join } from "node:path";
import { parseNumberOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { findGaps, type SymbolGaps, tradingDayRuns } from "../core/validate_gaps.ts";
import {
  listStoredSymbols,
  META_FILE,
  openDuckDB,
  openReadOnlyDatabase,
  pathExists,
  readDayCounts,
  readKnownEmptyDays,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, renderTable } from "./format.ts";
import { dataDirOf, positionals, symbolsOption } from "./options.ts";
import { rangeOption, timeframeOption } from "./validate.ts";

/** `marketpipe gaps`: trading days without bars, or with too little of their regular session. */
export async function runGaps(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const range = rangeOption(invocation, { required: true })!;
  const timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  const coverageText = invocation.string("min-coverage") ?? "0.9";
  const minCoverage = coverageText.endsWith("%")
    ? parseNumberOption(coverageText.slice(0, -1), "--min-coverage", 0, 100) / 100
    : parseNumberOption(coverageText, "--min-coverage", 0, 1);
  let symbols = await symbolsOption(invocation);
  const explicit = symbols !== undefined;
  symbols ??= await listStoredSymbols(dataDir, "bars", timeframe);
  if (symbols.length === 0) {
    throw new UsageError(
      `Missing --symbols: ${dataDir} holds no ${timeframe} bars to find symbols from`,
    );
  }

  // Known-empty days come from the coverage table, read without creating or migrating anything.
  let knownEmpty = new Map<string, Set<string>>();
  const metaPath = join(dataDir, META_FILE);
  if (await pathExists(metaPath)) {
    const db = openReadOnlyDatabase(metaPath);
    try {
      knownEmpty = readKnownEmptyDays(db, timeframe, symbols, range.start, range.end);
    } finally {
      db.close();
    }
  }
  const duckdb = await openDuckDB({});
  const results: SymbolGaps[] = [];
  try {
    const connection = await duckdb.connect();
    try {
      for (const symbol of symbols) {
        context.signal.throwIfAborted();
        const counts = await readDayCounts(
          connection,
          dataDir,
          timeframe,
          symbol,
          range.start,
          range.end,
        );
        results.push(
          findGaps(symbol, range.start, range.end, counts, {
            timeframe,
            minCoverage,
            knownEmpty: knownEmpty.get(symbol),
          }),
        );
      }
    } finally {
      connection.closeSync();
    }
  } finally {
    duckdb.closeSync();
  }

  if (context.json) {
    context.out(JSON.stringify(
      {
        dataDir,
        timeframe,
        start: range.start,
        end: range.end,
        minCoverage,
        symbols: results.map((r) => ({
          ...r,
          lowCoverage: r.lowCoverage.map((d) => ({
            ...d,
            coverage: Math.round(d.coverage * 10_000) / 10_000,
          })),
        })),
      },
      null,
      2,
    ));
    return EXIT.ok;
  }
  const intraday = timeframe !== "1d";
  for (
    const line of renderTable(
      [
        "symbol",
        "trading days",
        "with data",
        "missing",
        ...(intraday ? [`< ${_percent(minCoverage)} regular`] : []),
        "known empty",
      ],
      results.map((r) => [
        r.symbol,
        formatCount(r.tradingDays),
        formatCount(r.daysWithData),
        formatCount(r.missing.length),
        ...(intraday ? [formatCount(r.lowCoverage.length)] : []),
        formatCount(r.knownEmpty.length),
      ]),
      { right: intraday ? [1, 2, 3, 4, 5] : [1, 2, 3, 4] },
    )
  ) context.out(line);
  const missing = results.filter((r) => r.missing.length > 0);
  if (missing.length > 0) {
    context.out("");
    context.out("Missing days (no bars):");
    for (const r of missing) context.out(`  ${r.symbol}: ${tradingDayRuns(r.missing).join(", ")}`);
  }
  const low = results.filter((r) => r.lowCoverage.length > 0);
  if (low.length > 0) {
    context.out("");
    context.out(`Regular session covered below ${_percent(minCoverage)}:`);
    for (
      const line of renderTable(
        ["symbol", "date", "bars", "of", "coverage"],
        low.flatMap((r) =>
          r.lowCoverage.map((d) => [
            r.symbol,
            d.date,
            formatCount(d.regularBars),
            formatCount(d.expected),
            _percent(d.coverage),
          ])
        ),
        { right: [2, 3, 4] },
      )
    ) context.out(`  ${line}`);
  }
  const empty = results.filter((r) => r.knownEmpty.length > 0);
  if (empty.length > 0) {
    context.out("");
    context.out("Known empty (the provider answered with no bars; not gaps):");
    for (const r of empty) {
      context.out(`  ${r.symbol}: ${tradingDayRuns(r.knownEmpty).join(", ")}`);
    }
  }
  if (missing.length === 0 && low.length === 0) {
    context.out("");
    context.out(
      `No gaps: every trading day of ${range.start}..${range.end} has ${timeframe} bars${
        intraday ? ` covering at least ${_percent(minCoverage)} of the regular session` : ""
      } for ${explicit ? "the symbols asked" : `all ${symbols.length} stored symbol(s)`}.`,
    );
  }
  return EXIT.ok;
}

function _percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}
