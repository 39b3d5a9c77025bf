/**
 * `marketpipe universe create|add|remove|list|show|delete`, and the members of `--universe NAME`
 * for the commands that select symbols.
 *
 * @module
 */
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { parseDateOption } from "../core/config.ts";
import { masterJson, universeJson } from "../app/mod.ts";
import { UsageError } from "../core/errors.ts";
import type { SymbolVersion } from "../core/reference.ts";
import { parseFilter } from "../core/universe_filter.ts";
import {
  META_FILE,
  migrationStatus,
  openMigrated,
  openReadOnlyDatabase,
  pathExists,
  ReferenceStore,
  UNIVERSE_NAME_PATTERN,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { dataDirArgs, formatCount, printJson, printTable, shellCommand } from "./format.ts";
import { dataDirOf, positionals, symbolsOption, todayOf } from "./options.ts";

/** The metadata migration that creates the symbol master and universe tables. */
const _REFERENCE_MIGRATION = 8;

/**
 * Run `fn` over the symbol master and universes of `dataDir`, opened read-only; `fn` gets
 * undefined when the directory has none yet (no metadata, or not migrated to hold them).
 */
export async function withReferenceReader<T>(
  dataDir: string,
  fn: (reference: ReferenceStore | undefined) => T | Promise<T>,
): Promise<T> {
  const path = join(dataDir, META_FILE);
  if (!(await pathExists(path))) return await fn(undefined);
  const db = openReadOnlyDatabase(path);
  try {
    return await fn(_hasReferenceTables(db) ? new ReferenceStore(db) : undefined);
  } finally {
    db.close();
  }
}

/**
 * Run `fn` over the symbol master and universes of `dataDir` opened for writing (the directory
 * and its metadata are created and migrated when needed).
 */
export async function withReferenceWriter<T>(
  dataDir: string,
  fn: (reference: ReferenceStore) => T | Promise<T>,
): Promise<T> {
  await Deno.mkdir(dataDir, { recursive: true });
  const { db } = openMigrated(join(dataDir, META_FILE));
  try {
    return await fn(new ReferenceStore(db));
  } finally {
    db.close();
  }
}

function _hasReferenceTables(db: DatabaseSync): boolean {
  return migrationStatus(db).some((m) =>
    m.version === _REFERENCE_MIGRATION && m.appliedAt !== null
  );
}

/**
 * The members of universe `name` in `dataDir`: on `asOf`, else at any time in `range` (today
 * without one), named by the ticker their bars are stored under (the instrument's current one),
 * leaving out those the symbol master says were not listed then (delisted before, or listed
 * after). Unknown or empty universes are usage errors naming them.
 */
export async function universeMembers(
  dataDir: string,
  name: string,
  options: { asOf?: string; range?: { start: string; end: string }; today: string },
): Promise<string[]> {
  const universe = universeName(name);
  const members = await _readUniverse(dataDir, universe, (reference) => {
    const when = options.asOf !== undefined
      ? { asOf: options.asOf }
      : options.range ?? { asOf: options.today };
    // Named by the ticker their bars are stored under: FB of a 2021 member list is META now.
    const all = reference.members(universe, { ...when, today: options.today, stored: true });
    const span = options.asOf !== undefined
      ? { start: options.asOf, end: options.asOf }
      : options.range ?? { start: options.today, end: options.today };
    const windows = reference.listingWindows(all);
    return all.filter((symbol) => {
      const window = windows.get(symbol);
      return window === undefined ||
        ((window.start === null || window.start <= span.end) &&
          (window.end === null || window.end >= span.start));
    });
  });
  if (members.length === 0) {
    const when = options.asOf !== undefined
      ? `on ${options.asOf}`
      : options.range !== undefined
      ? options.range.start === options.range.end
        ? `on ${options.range.start}`
        : `in ${options.range.start}..${options.range.end}`
      : `today (${options.today})`;
    throw new UsageError(
      `Universe "${universe}" has no listed members ${when}: nothing to select; see marketpipe universe show ${universe}`,
    );
  }
  return members;
}

/** A universe name checked and lower-cased. */
export function universeName(text: string): string {
  const name = text.toLowerCase();
  if (!UNIVERSE_NAME_PATTERN.test(name)) {
    throw new UsageError(
      `Invalid universe name "${text}": expected a letter, then up to 63 letters, digits, _ or -`,
    );
  }
  return name;
}

/** The NAME, data directory and `--as-of` of a `universe` subcommand on one universe. */
function _universeArgs(
  invocation: Invocation,
  context: CommandContext,
): { name: string; dataDir: string; asOf: string } {
  const [text] = positionals(invocation, ["NAME"]);
  return {
    name: universeName(text),
    dataDir: dataDirOf(invocation),
    asOf: _asOf(invocation, context),
  };
}

/** `--as-of`, default today's New York date. */
function _asOf(invocation: Invocation, context: CommandContext): string {
  const text = invocation.string("as-of");
  return text === undefined ? todayOf(context) : parseDateOption(text, "--as-of");
}

/** `marketpipe universe create NAME (--symbols L | --symbols-file F | --filter EXPR)`. */
export async function runUniverseCreate(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { name, dataDir, asOf } = _universeArgs(invocation, context);
  const filter = invocation.string("filter");
  const symbols = await symbolsOption(invocation);
  if (filter !== undefined && symbols !== undefined) {
    throw new UsageError(
      `Use either --filter or --symbols/--symbols-file for universe "${name}", not both`,
    );
  }
  if (filter === undefined && symbols === undefined) {
    throw new UsageError(
      `Missing members for universe "${name}": give --symbols LIST, --symbols-file FILE or --filter EXPR`,
    );
  }
  // Checked before anything is opened, so a bad expression creates nothing.
  if (filter !== undefined) parseFilter(filter);
  const description = invocation.string("description");
  const info = await withReferenceWriter(
    dataDir,
    (reference) =>
      reference.createUniverse(name, {
        ...(symbols !== undefined ? { symbols } : { filter }),
        description,
        asOf,
      }),
  );
  if (context.json) {
    printJson(context, { dataDir, asOf, universe: universeJson(info) });
    return EXIT.ok;
  }
  context.out(
    `Created universe "${info.name}" (${
      info.kind === "filter" ? `filter: ${info.filter}` : "list"
    }): ${formatCount(info.members)} member(s) as of ${asOf}`,
  );
  context.out(
    `Show it: ${
      shellCommand(["marketpipe", "universe", "show", info.name, ...dataDirArgs(dataDir)])
    }`,
  );
  return EXIT.ok;
}

/** `marketpipe universe add NAME --symbols L [--as-of D]`. */
export async function runUniverseAdd(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  return await _changeMembers(invocation, context, "add");
}

/** `marketpipe universe remove NAME --symbols L [--as-of D]`. */
export async function runUniverseRemove(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  return await _changeMembers(invocation, context, "remove");
}

async function _changeMembers(
  invocation: Invocation,
  context: CommandContext,
  action: "add" | "remove",
): Promise<number> {
  const { name, dataDir, asOf } = _universeArgs(invocation, context);
  const symbols = await symbolsOption(invocation);
  if (symbols === undefined) {
    throw new UsageError(
      `Missing --symbols (or --symbols-file): which symbols to ${action} ${
        action === "add" ? "to" : "from"
      } universe "${name}"`,
    );
  }
  await _requireUniverse(dataDir, name);
  const result = await withReferenceWriter(dataDir, (reference) => {
    if (action === "add") {
      const { added, already } = reference.addMembers(name, symbols, asOf);
      return { changed: added, unchanged: already };
    }
    const { removed, notMembers } = reference.removeMembers(name, symbols, asOf);
    return { changed: removed, unchanged: notMembers };
  });
  if (context.json) {
    printJson(
      context,
      action === "add"
        ? { universe: name, asOf, added: result.changed, already: result.unchanged }
        : { universe: name, asOf, removed: result.changed, not_members: result.unchanged },
    );
    return EXIT.ok;
  }
  const done = action === "add" ? "Added" : "Removed";
  const parts = [
    result.changed.length > 0
      ? `${done} ${result.changed.join(",")} ${
        action === "add" ? "to" : "from"
      } "${name}" as of ${asOf}`
      : `Nothing ${action === "add" ? "added to" : "removed from"} "${name}"`,
  ];
  if (result.unchanged.length > 0) {
    parts.push(
      `${action === "add" ? "already members" : "not members"} on ${asOf}: ${
        result.unchanged.join(",")
      }`,
    );
  }
  context.out(parts.join("; "));
  return EXIT.ok;
}

/** {@link withReferenceReader} for universe `name`: a directory without universes has no such one. */
function _readUniverse<T>(
  dataDir: string,
  name: string,
  fn: (reference: ReferenceStore) => T,
): Promise<T> {
  return withReferenceReader(dataDir, (reference) => {
    if (!reference) {
      throw new UsageError(
        `Unknown universe "${name}": ${dataDir} has no universes yet; create one with marketpipe universe create`,
      );
    }
    return fn(reference);
  });
}

/** Refuse a universe that does not exist before anything is created or migrated. */
async function _requireUniverse(dataDir: string, name: string): Promise<void> {
  await _readUniverse(dataDir, name, (reference) => {
    if (reference.getUniverse(name) === undefined) {
      // The store's did-you-mean message.
      reference.members(name, { asOf: "2000-01-03", today: "2000-01-03" });
      throw new UsageError(`Unknown universe "${name}"; see marketpipe universe list`);
    }
  });
}

/** `marketpipe universe list [--as-of D]`. */
export async function runUniverseList(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const asOf = _asOf(invocation, context);
  const list = await withReferenceReader(
    dataDir,
    (reference) => reference?.listUniverses({ asOf }) ?? [],
  );
  if (context.json) {
    printJson(context, { dataDir, asOf, universes: list.map(universeJson) });
    return EXIT.ok;
  }
  if (list.length === 0) {
    context.out(
      `No universes in ${dataDir}. Create one: marketpipe universe create NAME --symbols AAPL,MSFT`,
    );
    return EXIT.ok;
  }
  printTable(
    context,
    ["name", "kind", `members ${asOf}`, "definition"],
    list.map((u) => [
      u.name,
      u.kind,
      formatCount(u.members),
      [u.kind === "filter" ? u.filter : "", u.description ?? ""].filter((t) => t).join(" - "),
    ]),
    { right: [2] },
  );
  return EXIT.ok;
}

/** `marketpipe universe show NAME [--as-of D]`: the members on D with their listing dates. */
export async function runUniverseShow(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { name, dataDir, asOf } = _universeArgs(invocation, context);
  const shown = await _readUniverse(dataDir, name, (reference) => {
    const info = reference.getUniverse(name);
    // members() names the closest universe when there is no such one.
    const symbols = reference.members(name, { asOf, today: asOf });
    const intervals = reference.memberIntervals(name);
    const members = symbols.map((symbol) => {
      const interval = intervals.find((i) =>
        i.symbol === symbol && i.validFrom <= asOf && (i.validTo === null || i.validTo > asOf)
      );
      return {
        symbol,
        member_from: interval?.validFrom ?? null,
        member_to: interval?.validTo ?? null,
        ...masterJson(_masterRow(reference, symbol, asOf)),
      };
    });
    return { info: info!, members };
  });
  if (context.json) {
    printJson(context, {
      dataDir,
      asOf,
      universe: universeJson(shown.info),
      members: shown.members,
    });
    return EXIT.ok;
  }
  const { info, members } = shown;
  context.out(
    `Universe "${info.name}" (${info.kind === "filter" ? `filter: ${info.filter}` : "list"})${
      info.description ? `: ${info.description}` : ""
    }`,
  );
  context.out(`${formatCount(members.length)} member(s) on ${asOf}`);
  if (members.length === 0) return EXIT.ok;
  context.out("");
  printTable(
    context,
    ["symbol", "member since", "until", "name", "exchange", "status", "listed", "delisted"],
    members.map((m) => [
      m.symbol,
      m.member_from ?? "",
      m.member_to ?? "",
      m.name ?? "",
      m.exchange ?? "",
      m.status ?? "",
      m.list_date ?? "",
      m.delist_date ?? "",
    ]),
  );
  return EXIT.ok;
}

/** The master's row of `ticker` valid on `asOf` (by source priority), else its current row. */
function _masterRow(
  reference: ReferenceStore,
  ticker: string,
  asOf: string,
): SymbolVersion | undefined {
  const rows = reference.history(ticker).filter((row) =>
    row.ticker === ticker && row.validFrom <= asOf && (row.validTo === null || row.validTo > asOf)
  );
  const current = reference.lookup(ticker);
  return rows.find((row) => current !== undefined && row.source === current.source) ?? rows[0] ??
    current;
}

/** `marketpipe universe delete NAME [--yes]`. */
export async function runUniverseDelete(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const [text] = positionals(invocation, ["NAME"]);
  const name = universeName(text);
  const dataDir = dataDirOf(invocation);
  const confirmed = invocation.flag("yes");
  // Decided before anything is opened: a script without --yes must not half-start.
  if (!confirmed && !Deno.stdin.isTerminal()) {
    throw new UsageError(
      `Refusing to delete universe "${name}" without --yes: there is no terminal to confirm on`,
    );
  }
  await _requireUniverse(dataDir, name);
  if (!confirmed && !confirm(`Delete universe "${name}" and its membership history for good?`)) {
    context.out("Cancelled: nothing was deleted.");
    return EXIT.failure;
  }
  const deleted = await withReferenceWriter(dataDir, (reference) => reference.deleteUniverse(name));
  if (context.json) {
    printJson(context, { universe: name, deleted });
    return EXIT.ok;
  }
  context.out(
    deleted ? `Deleted universe "${name}".` : `Nothing deleted: no universe "${name}".`,
  );
  return EXIT.ok;
}
