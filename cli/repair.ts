import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import {
  CORRUPT_DIR,
  findCorruptFiles,
  moveCorruptFiles,
  type MovedFile,
  openDuckDB,
  openStore,
  pathExists,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { dataDirArgs, formatCount, printJson, shellCommand } from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";

/**
 * `marketpipe repair [--move [--dry-run]]`: list the Parquet files that cannot be read (exit 1 when
 * there are any), or move them to `<data>/corrupt/` and forget their days so they are fetched again.
 */
export async function runRepair(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const move = invocation.flag("move");
  const dryRun = invocation.flag("dry-run");
  if (dryRun && !move) {
    throw new UsageError(`Invalid --dry-run without --move: listing corrupt files changes nothing`);
  }
  if (!(await pathExists(dataDir))) {
    throw new UsageError(`Cannot repair ${dataDir}: no such data directory`);
  }
  // Quoted for the shell: the suggested commands below are meant to be pasted.
  const dirFlag = dataDirArgs(dataDir).map((arg) => ` ${shellCommand([arg])}`).join("");

  const duckdb = await openDuckDB({});
  let scan;
  try {
    scan = await findCorruptFiles(dataDir, duckdb, {
      signal: context.signal,
      onProgress: context.status
        ? (checked, total) => context.status!(`Checking ${checked}/${total} file(s)`)
        : undefined,
    });
  } finally {
    duckdb.closeSync();
  }
  const { checked, corrupt } = scan;

  let moved: MovedFile[] | undefined;
  if (move && corrupt.length > 0) {
    // Moving takes the partition locks and edits the ingested days: open the store for writing.
    const store = await openStore(dataDir, { command: "repair" });
    try {
      moved = await moveCorruptFiles(
        { dataDir, duckdb: await store.duckdb(), meta: store.meta },
        corrupt,
        { dryRun, signal: context.signal },
      );
    } finally {
      store.close();
    }
  }

  if (context.json) {
    printJson(context, {
      dataDir,
      checked,
      move,
      dryRun,
      corrupt: corrupt.map((file, i) => ({
        ...file,
        outcome: moved?.[i].outcome ?? null,
        movedTo: moved?.[i].movedTo ?? null,
        daysForgotten: moved?.[i].daysForgotten ?? 0,
      })),
    });
  } else if (corrupt.length === 0) {
    context.out(
      `All ${formatCount(checked)} Parquet file(s) under ${join(dataDir, "bars")} and ${
        join(dataDir, "quarantine")
      } read completely; nothing to repair.`,
    );
  } else if (!moved) {
    for (const file of corrupt) context.out(`corrupt  ${file.path}: ${file.reason}`);
    context.out("");
    context.out(
      `${formatCount(corrupt.length)} of ${
        formatCount(checked)
      } Parquet file(s) cannot be read; they were left as they are.`,
    );
    context.out(
      `Move them to ${
        join(dataDir, CORRUPT_DIR)
      }/ and mark their days missing: marketpipe repair --move${dirFlag}`,
    );
  } else {
    for (const { file, outcome, movedTo, daysForgotten } of moved) {
      const partition = file.tree === "bars" ? file.partition : undefined;
      const days = partition
        ? `; ${dryRun ? "would forget" : "forgot"} ${
          formatCount(daysForgotten)
        } ingested day(s) of ${partition.symbol} ${partition.timeframe} ${
          partition.start.slice(0, partition.timeframe === "1d" ? 4 : 7)
        }`
        : "";
      context.out(
        outcome === "moved"
          ? `${dryRun ? "would move" : "moved"} ${file.path} -> ${movedTo}${days}`
          : outcome === "readable"
          ? `kept ${file.path}: it reads now (rewritten since the check)`
          : `skipped ${file.path}: it no longer exists`,
      );
    }
    const count = moved.filter((m) => m.outcome === "moved").length;
    context.out("");
    if (dryRun) {
      context.out(`Would move ${formatCount(count)} file(s); nothing was changed.`);
    } else {
      context.out(
        `Moved ${formatCount(count)} unreadable file(s) to ${
          join(dataDir, CORRUPT_DIR)
        }/ (nothing was deleted). Their days are no longer recorded as stored:`,
      );
      context.out(
        `marketpipe gaps${dirFlag} lists them as missing, and running the ingest that stored them again fetches them.`,
      );
    }
  }
  if (corrupt.length === 0) return EXIT.ok;
  return moved && !dryRun ? EXIT.ok : EXIT.failure;
}
