/**
 * `marketpipe symbols update|list|show|history`: the symbol master (reference data with its
 * history) loaded from a source and read back.
 *
 * @module
 */
import { symbolJson } from "../app/mod.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import {
  type MergeCounts,
  REFERENCE_SOURCES,
  type ReferenceSnapshot,
  type ReferenceSource,
} from "../core/reference.ts";
import { matchesFilter, parseFilter } from "../core/universe_filter.ts";
import { parseDateOption, parseIntOption } from "../core/config.ts";
import { checkReferenceSource, fetchReference } from "../providers/mod.ts";
import { migrate, openDatabase, ReferenceStore } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { dataDirArgs, formatCount, printJson, printTable, shellCommand } from "./format.ts";
import { dataDirOf, positionals, readCappedFile, todayOf } from "./options.ts";
import { withReferenceReader, withReferenceWriter } from "./universe.ts";

/** Largest symbol directory file read (nasdaqlisted.txt is about 0.4 MB). */
const _MAX_REFERENCE_FILE_BYTES = 64 * 2 ** 20;

function _source(text: string | undefined, required: boolean): ReferenceSource | undefined {
  if (text === undefined) {
    if (!required) return undefined;
    throw new UsageError(
      `Missing --source: where the reference data comes from, one of ${
        REFERENCE_SOURCES.join(", ")
      }`,
    );
  }
  const name = text.toLowerCase();
  if (!(REFERENCE_SOURCES as readonly string[]).includes(name)) {
    throw new UsageError(
      `Unknown --source "${text}"${didYouMean(name, REFERENCE_SOURCES)}: expected one of ${
        REFERENCE_SOURCES.join(", ")
      }`,
    );
  }
  return name as ReferenceSource;
}

/**
 * The options of `symbols update`, checked before any file is read or anything is opened (also
 * for a schedule when the server starts): the source, `--as-of` (not after today), the rate,
 * and the source's credentials in `env` and its files or URLs.
 */
export function symbolsUpdateOptions(
  invocation: Invocation,
  env: Record<string, string | undefined>,
): {
  source: ReferenceSource;
  asOf: string;
  rateLimit: number | undefined;
  files: string[];
  urls: string[];
} {
  positionals(invocation, []);
  const source = _source(invocation.string("source"), true)!;
  const asOfText = invocation.string("as-of");
  const today = todayOf({ env });
  const asOf = asOfText === undefined ? today : parseDateOption(asOfText, "--as-of");
  if (asOf > today) {
    throw new UsageError(`Invalid --as-of ${asOf}: it is after today (${today} in New York)`);
  }
  const rateText = invocation.string("rate-limit");
  const rateLimit = rateText === undefined
    ? undefined
    : parseIntOption(rateText, "--rate-limit", 1, 1_000_000);
  const files = invocation.strings("file");
  const urls = invocation.strings("url");
  checkReferenceSource(source, { env, texts: files.map((name) => ({ name, text: "" })), urls });
  return { source, asOf, rateLimit, files, urls };
}

/**
 * `marketpipe symbols update --source S`: fetch the source's snapshot(s) and merge them into the
 * master in one transaction (`--dry-run`: count only, write nothing).
 */
export async function runSymbolsUpdate(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const dataDir = dataDirOf(invocation);
  const { source, asOf, rateLimit, files, urls } = symbolsUpdateOptions(invocation, context.env);
  const texts: { name: string; text: string }[] = [];
  for (const name of files) {
    texts.push({ name, text: await readCappedFile(name, _MAX_REFERENCE_FILE_BYTES, "--file") });
  }
  const snapshots = await fetchReference(source, {
    asOf,
    rateLimit,
    texts: texts.length > 0 ? texts : undefined,
    urls: urls.length > 0 ? urls : undefined,
    env: context.env,
    signal: context.signal,
  });
  const dryRun = invocation.flag("dry-run");
  let applied = snapshots;
  const apply = (reference: ReferenceStore) => {
    applied = unappliedSnapshots(reference, snapshots);
    return reference.applySnapshots(applied, { dryRun });
  };
  const counts = dryRun ? await _dryRun(dataDir, apply) : await withReferenceWriter(dataDir, apply);
  const dates = [...new Set(applied.map((s) => s.asOf))].sort();
  if (context.json) {
    printJson(context, { dataDir, source, asOf, snapshots: dates, dryRun, ...counts });
    return EXIT.ok;
  }
  const described = dates.length === 0
    ? `no snapshot on or before ${asOf}`
    : dates.length === 1
    ? `as of ${dates[0]}`
    : `${dates.length} snapshots ${dates[0]}..${dates.at(-1)}`;
  context.out(
    `${dryRun ? "Would update" : "Updated"} the symbol master from ${source} (${described}): ${
      _countsText(counts)
    }${dryRun ? "; nothing was written" : ""}`,
  );
  return EXIT.ok;
}

/**
 * The snapshots of a source's series (fake's dated ones) not older than the latest it applied:
 * run again, the update re-applies only the newest and reports it unchanged. A single snapshot
 * is kept as it is, so one older than the stored history is refused naming both dates.
 */
export function unappliedSnapshots(
  reference: ReferenceStore,
  snapshots: readonly ReferenceSnapshot[],
): ReferenceSnapshot[] {
  if (snapshots.length <= 1) return [...snapshots];
  const latest = new Map<string, string | undefined>();
  for (const s of snapshots) {
    if (!latest.has(s.source)) latest.set(s.source, reference.latestAsOf(s.source));
  }
  const kept = snapshots.filter((s) => s.asOf >= (latest.get(s.source) ?? ""));
  return kept.length > 0 ? kept : [snapshots.at(-1)!];
}

function _countsText(counts: MergeCounts): string {
  return (["inserted", "changed", "delisted", "unchanged", "skipped"] as const)
    .map((count) => `${formatCount(counts[count])} ${count}`).join(", ");
}

/**
 * Run `fn` over the master for a dry run, which must leave the data directory as it is: the
 * stored master read-only when there is one, else an empty one in memory.
 */
async function _dryRun<T>(dataDir: string, fn: (reference: ReferenceStore) => T): Promise<T> {
  const stored = await withReferenceReader(
    dataDir,
    (reference) => reference ? fn(reference) : undefined,
  );
  if (stored !== undefined) return stored;
  const db = openDatabase(":memory:");
  try {
    migrate(db);
    return fn(new ReferenceStore(db));
  } finally {
    db.close();
  }
}

/** `marketpipe symbols list [--filter EXPR] [--as-of D] [--source S]`. */
export async function runSymbolsList(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const asOfText = invocation.string("as-of");
  const asOf = asOfText === undefined ? undefined : parseDateOption(asOfText, "--as-of");
  const source = _source(invocation.string("source"), false);
  const filterText = invocation.string("filter");
  const filter = filterText === undefined ? undefined : parseFilter(filterText);
  const rows = await withReferenceReader(
    dataDir,
    (reference) => reference?.symbolsAsOf({ asOf, source }) ?? [],
  );
  const shown = filter === undefined ? rows : rows.filter((row) => matchesFilter(filter, row));
  if (context.json) {
    printJson(context, {
      dataDir,
      asOf: asOf ?? null,
      source: source ?? null,
      symbols: shown.map(symbolJson),
    });
    return EXIT.ok;
  }
  if (rows.length === 0) {
    context.out(
      `The symbol master of ${dataDir} is empty${asOf ? ` on ${asOf}` : ""}. Load it: ${
        shellCommand([
          "marketpipe",
          "symbols",
          "update",
          "--source",
          source ?? "fake",
          ...dataDirArgs(dataDir),
        ])
      }`,
    );
    return EXIT.ok;
  }
  printTable(
    context,
    ["ticker", "name", "exchange", "class", "status", "listed", "delisted", "source"],
    shown.map((row) => [
      row.ticker,
      row.name ?? "",
      row.exchange ?? "",
      row.assetClass,
      row.status,
      row.listDate ?? "",
      row.delistDate ?? "",
      row.source,
    ]),
  );
  context.out("");
  context.out(
    `${formatCount(shown.length)} of ${formatCount(rows.length)} symbol row(s)${
      asOf ? ` on ${asOf}` : " (current)"
    }${filterText ? ` matching ${filterText}` : ""}`,
  );
  return EXIT.ok;
}

/** The TICKER (upper-cased) and data directory of `symbols show|history`. */
function _tickerArgs(invocation: Invocation): { ticker: string; dataDir: string } {
  const [text] = positionals(invocation, ["TICKER"]);
  return { ticker: text.toUpperCase(), dataDir: dataDirOf(invocation) };
}

function _unknownSymbol(ticker: string, dataDir: string): UsageError {
  return new UsageError(
    `Unknown symbol "${ticker}": not in the symbol master of ${dataDir}; load it with marketpipe symbols update`,
  );
}

/** `marketpipe symbols show TICKER`: the current master record (by source priority). */
export async function runSymbolsShow(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { ticker, dataDir } = _tickerArgs(invocation);
  const found = await withReferenceReader(dataDir, (reference) => {
    const current = reference?.lookup(ticker);
    if (current) return { row: current, renamed: undefined };
    const history = reference?.history(ticker) ?? [];
    // A former ticker: show what the instrument is called now.
    const last = history.filter((row) => row.validTo === null).at(-1) ?? history.at(-1);
    return { row: last, renamed: last && last.ticker !== ticker ? last.ticker : undefined };
  });
  if (!found.row) {
    throw _unknownSymbol(ticker, dataDir);
  }
  const row = found.row;
  if (context.json) {
    printJson(context, { dataDir, ticker, symbol: symbolJson(row) });
    return EXIT.ok;
  }
  if (found.renamed) context.out(`${ticker} is now ${found.renamed}:`);
  const fields: [string, string | null][] = [
    ["ticker", row.ticker],
    ["name", row.name],
    ["exchange", row.exchange],
    ["asset class", row.assetClass],
    ["status", row.status],
    ["listed", row.listDate],
    ["delisted", row.delistDate],
    ["figi", row.figi],
    ["cusip", row.cusip],
    ["cik", row.cik],
    ["provider id", row.providerId],
    ["instrument id", row.instrumentId],
    ["source", row.source],
    ["as of", row.asOf],
    ["valid", `${row.validFrom}..${row.validTo ?? "(current)"}`],
  ];
  for (const [key, value] of fields) context.out(`${`${key}:`.padEnd(15)}${value ?? "-"}`);
  context.out(
    `History: ${
      shellCommand(["marketpipe", "symbols", "history", ticker, ...dataDirArgs(dataDir)])
    }`,
  );
  return EXIT.ok;
}

/**
 * `marketpipe symbols history TICKER`: every row of every instrument that ever had the ticker
 * (so `META` shows the `FB` rows too), oldest first.
 */
export async function runSymbolsHistory(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { ticker, dataDir } = _tickerArgs(invocation);
  const rows = await withReferenceReader(dataDir, (reference) => reference?.history(ticker) ?? []);
  if (rows.length === 0) {
    throw _unknownSymbol(ticker, dataDir);
  }
  if (context.json) {
    printJson(context, { dataDir, ticker, history: rows.map(symbolJson) });
    return EXIT.ok;
  }
  printTable(
    context,
    ["valid_from", "valid_to", "ticker", "name", "exchange", "status", "source"],
    rows.map((row) => [
      row.validFrom,
      row.validTo ?? "(current)",
      row.ticker,
      row.name ?? "",
      row.exchange ?? "",
      row.status,
      row.source,
    ]),
  );
  return EXIT.ok;
}
