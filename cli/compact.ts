import { compactPartitions, openStore, type PartitionTree } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount, printJson } from "./format.ts";
import { dataDirOf, positionals, symbolsOption, timeframeOption } from "./options.ts";
import { formatBytes } from "../core/format.ts";

/**
 * `marketpipe compact`: merge the files of each partition (timeframe, symbol, year) into one,
 * sorted by ts, atomically; what a killed writer left behind goes too.
 */
export async function runCompact(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const symbols = await symbolsOption(invocation);
  const timeframeText = invocation.string("timeframe");
  const timeframe = timeframeText === undefined ? undefined : timeframeOption(timeframeText);
  const tree: PartitionTree | undefined = invocation.flag("quarantine") ? "quarantine" : undefined;
  const dryRun = invocation.flag("dry-run");
  const store = await openStore(dataDir, { command: "compact" });
  let reported = 0;
  try {
    const summary = await compactPartitions(
      { dataDir, duckdb: await store.duckdb(), meta: store.meta },
      {
        tree,
        timeframe,
        symbols,
        dryRun,
        jobId: `compact-${Date.now()}`,
        signal: context.signal,
        onProgress: (done, total) => {
          const line = `Compacting: ${done}/${total} partition(s)`;
          if (context.status) context.status(line);
          else if (done === 1 || done === total || reported < Math.floor((done / total) * 10)) {
            // Without a terminal, a line at the start and every ~10%.
            reported = Math.floor((done / total) * 10);
            context.err(line);
          }
        },
      },
    );
    if (context.json) {
      printJson(context, { dataDir, dryRun, ...summary });
    } else if (summary.partitions === 0) {
      context.out("Nothing to compact: every partition holds one file.");
    } else {
      context.out(
        `${dryRun ? "Would compact" : "Compacted"} ${
          formatCount(summary.partitions)
        } partition(s): ` +
          `${formatCount(summary.filesBefore)} files, ${formatCount(summary.rows)} rows, ` +
          `${formatBytes(summary.bytesBefore)}${
            dryRun
              ? ""
              : ` -> ${formatCount(summary.partitions)} file(s), ${formatBytes(summary.bytesAfter)}`
          }`,
      );
    }
    return EXIT.ok;
  } finally {
    store.close();
  }
}
