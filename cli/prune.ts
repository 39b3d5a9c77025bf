import { parseRetentionPolicy, retentionCutoff } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { providers } from "../providers/mod.ts";
import {
  openStore,
  pathExists,
  pruneBars,
  type PrunedPartition,
  type PruneSelection,
  type PruneSummary,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, printJson } from "./format.ts";
import {
  dataDirOf,
  parseDateOption,
  positionals,
  symbolsOption,
  timeframeOption,
  todayOf,
} from "./options.ts";

/**
 * `marketpipe prune --before DATE | --policy`: remove the bars of trading dates before a cutoff
 * (per timeframe with the configured retention).
 */
export async function runPrune(invocation: Invocation, context: CommandContext): Promise<number> {
  return await _remove(invocation, context, {
    cutoffs: pruneCutoffs(invocation, context.env),
    symbols: await symbolsOption(invocation),
    provider: _provider(invocation),
  });
}

/**
 * The cutoff date per timeframe of a `prune` (bars before it go), from `--before` or `--policy`;
 * refuses what `prune` would refuse before it opens anything (also checked for a schedule when
 * the server starts).
 */
export function pruneCutoffs(
  invocation: Invocation,
  env: Record<string, string | undefined>,
): Map<Timeframe, string> {
  positionals(invocation, []);
  const timeframes = _timeframes(invocation);
  const beforeText = invocation.string("before");
  const today = todayOf({ env });
  const cutoffs = new Map<Timeframe, string>();
  // Checked whenever it is set, so a mistake shows before the day --policy is used.
  const text = invocation.string("retention-policy");
  const policy = text === undefined ? undefined : parseRetentionPolicy(
    text,
    invocation.options.sources["retention-policy"] === "config"
      ? "the config file's retention"
      : "--retention-policy",
  );
  if (invocation.flag("policy")) {
    if (beforeText !== undefined) {
      throw new UsageError("Use either --before or --policy, not both");
    }
    if (policy === undefined) {
      throw new UsageError(
        "Missing retention for --policy: set retention: {1m: 2y, 5m: 5y} in the config file or --retention-policy 1m=2y,5m=5y",
      );
    }
    for (const [timeframe, age] of policy) {
      if (timeframes.includes(timeframe)) cutoffs.set(timeframe, retentionCutoff(age, today));
    }
    if (cutoffs.size === 0) {
      throw new UsageError(
        `Invalid --timeframe ${timeframes[0]}: the retention policy (${text}) keeps it whole`,
      );
    }
  } else {
    if (beforeText === undefined) {
      throw new UsageError("Missing --before DATE or --policy: what to prune");
    }
    const before = parseDateOption(beforeText, "--before");
    if (before > today) {
      throw new UsageError(
        `Invalid --before ${before}: it is after today (${today} in New York)`,
      );
    }
    for (const timeframe of timeframes) cutoffs.set(timeframe, before);
  }
  return cutoffs;
}

/** `marketpipe delete --symbols LIST`: remove every stored bar of the symbols. */
export async function runDelete(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const timeframes = _timeframes(invocation);
  const symbols = await symbolsOption(invocation);
  if (symbols === undefined) {
    throw new UsageError("Missing --symbols or --symbols-file: the symbols whose bars to delete");
  }
  return await _remove(invocation, context, {
    cutoffs: new Map(timeframes.map((timeframe) => [timeframe, undefined])),
    symbols,
    provider: _provider(invocation),
  });
}

function _timeframes(invocation: Invocation): Timeframe[] {
  const text = invocation.string("timeframe");
  return text === undefined ? [...TIMEFRAMES] : [timeframeOption(text)];
}

function _provider(invocation: Invocation): string | undefined {
  const name = invocation.string("provider");
  if (name === undefined) return undefined;
  const names = Object.keys(providers);
  if (!names.includes(name)) {
    throw new UsageError(
      `Unknown --provider "${name}"${didYouMean(name, names)}: expected one of ${names.join(", ")}`,
    );
  }
  return name;
}

/** The part prune and delete share: confirm, remove (or list with --dry-run), report. */
async function _remove(
  invocation: Invocation,
  context: CommandContext,
  selection: PruneSelection,
): Promise<number> {
  const command = invocation.path[0];
  const dataDir = dataDirOf(invocation);
  const dryRun = invocation.flag("dry-run");
  const confirmed = invocation.flag("yes");
  // Decided before anything is opened: a script without --yes must not half-start.
  if (!dryRun && !confirmed && !Deno.stdin.isTerminal()) {
    throw new UsageError(
      `Refusing to ${command} without --yes: there is no terminal to confirm on (see what goes with --dry-run)`,
    );
  }
  if (!(await pathExists(dataDir))) {
    throw new UsageError(`Cannot ${command} in ${dataDir}: no such data directory`);
  }
  const store = await openStore(dataDir, { command });
  try {
    const writer = { dataDir, duckdb: await store.duckdb(), meta: store.meta };
    const onProgress = context.status
      ? (done: number, total: number) => context.status!(`Checking ${done}/${total} partition(s)`)
      : undefined;
    if (!dryRun && !confirmed) {
      const plan = await pruneBars(writer, selection, { dryRun: true, onProgress });
      _report(context, dataDir, plan, true);
      if (plan.partitions.length === 0 && plan.days === 0) return EXIT.ok;
      if (!confirm(`Remove these ${formatCount(plan.rows)} bar(s) for good?`)) {
        context.out("Cancelled: nothing was removed.");
        return EXIT.failure;
      }
    }
    const summary = await pruneBars(writer, selection, {
      dryRun,
      jobId: `${command}-${Date.now()}`,
      signal: context.signal,
      onProgress,
    });
    return _report(context, dataDir, summary, dryRun);
  } finally {
    store.close();
  }
}

function _report(
  context: CommandContext,
  dataDir: string,
  summary: PruneSummary,
  dryRun: boolean,
): number {
  if (context.json) {
    printJson(context, { dataDir, dryRun, ...summary });
    return EXIT.ok;
  }
  if (summary.partitions.length === 0 && summary.days === 0) {
    context.out("Nothing to remove: no stored bar matches.");
    return EXIT.ok;
  }
  for (const partition of summary.partitions) {
    context.out(`${dryRun ? "would remove" : "removed"} ${_describe(partition)}`);
  }
  context.out(
    `${dryRun ? "Would remove" : "Removed"} ${formatCount(summary.rows)} bar(s) from ${
      formatCount(summary.partitions.filter((p) => p.tree === "bars").length)
    } partition(s) and ${dryRun ? "forget" : "forgot"} ${
      formatCount(summary.days)
    } ingested day(s)${
      dryRun ? "; nothing was changed" : "; marketpipe ingest fetches those days again"
    }.`,
  );
  return EXIT.ok;
}

function _describe(p: PrunedPartition): string {
  const files = [
    p.removed > 0 ? `${formatCount(p.removed)} file(s) deleted` : "",
    p.rewritten > 0 ? `${formatCount(p.rewritten)} rewritten` : "",
  ].filter((part) => part !== "").join(", ");
  return `${p.tree} ${p.timeframe} ${p.symbol} ${p.year}: ${formatCount(p.rows)} bar(s) of ${
    p.firstDate === p.lastDate ? p.firstDate : `${p.firstDate}..${p.lastDate}`
  } (${files}; ${formatCount(p.kept)} kept)`;
}
