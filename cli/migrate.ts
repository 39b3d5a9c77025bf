import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import {
  type DataLayout,
  type LayoutMigrationResult,
  layoutStatus,
  META_FILE,
  MetaStore,
  migrate,
  migrateLayout,
  type MigrateStep,
  migrationStatus,
  openDatabase,
  openDuckDB,
  openReadOnlyDatabase,
  pathExists,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import {
  dataDirArgs,
  formatBytes,
  formatCount,
  formatTime,
  printJson,
  printTable,
  progressReporter,
  shellCommand,
} from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";

/**
 * `marketpipe migrate [--status | --dry-run]`: apply pending metadata migrations, then convert a
 * data directory of storage layout 1 to layout 2 in place (resumable, verified file by file).
 */
export async function runMigrate(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const status = invocation.flag("status");
  const dryRun = invocation.flag("dry-run");
  if (status && dryRun) {
    throw new UsageError(`Invalid --dry-run with --status: give one (both change nothing)`);
  }
  if (await pathExists(dataDir) && !(await Deno.stat(dataDir)).isDirectory) {
    throw new UsageError(`Invalid --data-dir "${dataDir}": not a directory`);
  }
  const killAt = _killPoint(context.env.MARKETPIPE_TEST_KILL_AT);
  const path = join(dataDir, META_FILE);
  if (status || dryRun) return await _report(dataDir, path, dryRun, context);

  await Deno.mkdir(dataDir, { recursive: true });
  const db = openDatabase(path);
  let meta: MetaStore | undefined;
  try {
    const applied = migrate(db);
    meta = new MetaStore(db, { command: "migrate" });
    const before = await layoutStatus(dataDir);
    if (!context.json) {
      if (applied.length === 0) {
        context.out(
          `${path} is up to date (schema version ${
            migrationStatus(db).at(-1)?.version ?? 0
          }); nothing applied.`,
        );
      } else {
        for (const m of applied) context.out(`Applied migration ${m.version}: ${m.name}`);
        context.out(`${path} is now at schema version ${applied.at(-1)!.version}.`);
      }
      if (before.layout === 1) {
        context.err(
          `Converting ${formatCount(before.files.length)} file(s) of storage layout 1 (${
            formatBytes(before.bytes)
          }) in ${dataDir} to layout 2`,
        );
      }
    }
    const report = progressReporter({ status: context.status, err: context.err });
    const started = performance.now();
    let steps = 0;
    const duckdb = await openDuckDB();
    let result: LayoutMigrationResult;
    try {
      result = await migrateLayout({ dataDir, duckdb, meta }, {
        signal: context.signal,
        onProgress: ({ done, total, file }) =>
          report(
            done,
            total,
            `${done} of ${total} files: ${file.path}`,
            performance.now() - started,
          ),
        onStep: killAt &&
          ((step) => {
            if (step === killAt.step && ++steps === killAt.count) Deno.kill(Deno.pid, "SIGKILL");
          }),
      });
    } finally {
      duckdb.closeSync();
    }
    if (context.json) {
      context.out(JSON.stringify({
        database: path,
        applied: applied.map((m) => ({ version: m.version, name: m.name })),
        layout: { ...result, layoutAfter: result.complete ? 2 : 1 },
      }));
    } else {
      _printResult(result, dataDir, context);
    }
    if (result.failures.length > 0) return EXIT.failure;
    if (result.interrupted) return EXIT.interrupted;
    return EXIT.ok;
  } finally {
    if (meta) meta.close();
    else db.close();
  }
}

/** `--status` and `--dry-run`: what is applied, what is pending; changes nothing. */
async function _report(
  dataDir: string,
  path: string,
  dryRun: boolean,
  context: CommandContext,
): Promise<number> {
  const exists = await pathExists(path);
  const db = exists ? openReadOnlyDatabase(path) : null;
  let migrations, aggregationStates = 0;
  try {
    migrations = migrationStatus(db);
    if (db && dryRun) {
      const table = db.prepare(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'aggregation_state'",
      ).get();
      if (table) {
        aggregationStates = Number(
          db.prepare("SELECT count(*) AS n FROM aggregation_state").get()?.n ?? 0,
        );
      }
    }
  } finally {
    db?.close();
  }
  const layout = await layoutStatus(dataDir);
  const layoutJson = {
    version: layout.layout === "empty" ? null : layout.layout,
    current: 2,
    filesToConvert: layout.files.length,
    bytesToConvert: layout.bytes,
  };
  const pending = migrations.filter((m) => m.appliedAt === null);

  if (dryRun) {
    if (context.json) {
      printJson(context, {
        database: path,
        pending: pending.map((m) => ({ version: m.version, name: m.name })),
        layout: {
          ...layoutJson,
          files: layout.files.map(({ path, partition, bytes }) => ({ path, partition, bytes })),
          aggregationStatesToClear: layout.layout === 1 ? aggregationStates : 0,
        },
      });
      return EXIT.ok;
    }
    for (const m of pending) context.out(`Would apply migration ${m.version}: ${m.name}`);
    if (layout.layout === 1) {
      context.out(
        `Would convert ${formatCount(layout.files.length)} file(s) of storage layout 1 (${
          formatBytes(layout.bytes)
        }) to layout 2, one new file per old one:`,
      );
      for (const file of layout.files) context.out(`  ${file.path} -> ${file.partition}/`);
      if (aggregationStates > 0) {
        context.out(
          `Would clear ${
            formatCount(aggregationStates)
          } aggregation state(s): the next aggregate rebuilds every target once.`,
        );
      }
    } else if (layout.layout === "empty" && !(await pathExists(join(dataDir, "layout.json")))) {
      context.out(
        `Would record storage layout 2 in ${join(dataDir, "layout.json")} (no bars yet).`,
      );
    }
    if (pending.length === 0 && layout.layout === 2) {
      context.out(`Nothing to migrate: ${dataDir} is up to date.`);
    }
    context.out("Nothing was changed (--dry-run).");
    return EXIT.ok;
  }

  if (context.json) {
    printJson(context, { database: path, exists, migrations, layout: layoutJson });
    return EXIT.ok;
  }
  if (!exists) context.out(`${path} does not exist yet; every migration is pending.`);
  printTable(
    context,
    ["version", "name", "applied"],
    migrations.map((
      m,
    ) => [m.version, m.name, m.appliedAt === null ? "pending" : formatTime(m.appliedAt)]),
    { right: [0] },
  );
  context.out(_layoutLine(layout.layout, layout.files.length, layout.bytes, dataDir));
  return EXIT.ok;
}

function _layoutLine(layout: DataLayout, files: number, bytes: number, dataDir: string): string {
  if (layout === 2) return "Storage layout: 2 (current)";
  if (layout === "empty") return "Storage layout: none yet (no bars stored)";
  if (files === 0) {
    return `Storage layout: 1, every file converted but the conversion was stopped before it finished; run "${
      _migrateCommand(dataDir)
    }" to finish it`;
  }
  return `Storage layout: 1, ${formatCount(files)} file(s) (${
    formatBytes(bytes)
  }) left to convert; run "${_migrateCommand(dataDir)}" to convert them`;
}

function _printResult(result: LayoutMigrationResult, dataDir: string, context: CommandContext) {
  if (result.layoutBefore === 2) {
    context.out(`${dataDir} uses storage layout 2; nothing to migrate.`);
    return;
  }
  if (result.layoutBefore === "empty") {
    context.out(
      `Recorded storage layout 2 in ${join(dataDir, "layout.json")} (no bars stored yet).`,
    );
    return;
  }
  if (result.orphansRemoved > 0) {
    context.err(`Removed ${result.orphansRemoved} file(s) left by an interrupted migrate`);
  }
  for (const dir of result.foldersKept) {
    context.err(`Kept ${join(dataDir, dir)}: it holds files that are not MarketPipe's`);
  }
  const resumed = result.resumed > 0
    ? ` (${result.resumed} of them committed by an interrupted run and checked again)`
    : "";
  context.out(
    `Converted ${formatCount(result.converted)} of ${
      formatCount(result.total)
    } file(s)${resumed}: ${
      formatCount(result.rows)
    } rows verified (row count and a checksum of every value), ${
      formatBytes(result.bytesBefore)
    } before, ${formatBytes(result.bytesAfter)} after.`,
  );
  if (result.aggregationStatesCleared > 0) {
    context.out(
      `Cleared ${
        formatCount(result.aggregationStatesCleared)
      } aggregation state(s) that named layout-1 folders: the next "marketpipe aggregate" rebuilds every target once.`,
    );
  }
  if (result.complete) {
    context.out(`${dataDir} now uses storage layout 2.`);
    return;
  }
  for (const failure of result.failures) context.err(`error: ${failure.error}`);
  const rerun = _migrateCommand(dataDir);
  if (result.failures.length > 0) {
    context.err(
      `${result.failures.length} file(s) could not be converted and are left as they were; ${dataDir} stays at storage layout 1 until they are: fix or move them and run "${rerun}" again`,
    );
  } else if (result.interrupted) {
    context.err(
      `Interrupted after ${result.converted} of ${result.total} file(s); nothing is lost: run "${rerun}" to finish`,
    );
  }
}

function _migrateCommand(dataDir: string): string {
  return shellCommand(["marketpipe", "migrate", ...dataDirArgs(dataDir)]);
}

const _STEPS: readonly MigrateStep[] = ["written", "renamed", "committed", "deleted"];

/**
 * `MARKETPIPE_TEST_KILL_AT=<step>:<n>`, for the kill tests only: the process kills itself with
 * SIGKILL right after the n-th file reaches `step` (written, renamed, committed, deleted).
 */
function _killPoint(value: string | undefined): { step: MigrateStep; count: number } | undefined {
  if (value === undefined || value === "") return undefined;
  const match = /^([a-z]+):([1-9]\d*)$/.exec(value);
  if (match === null || !_STEPS.includes(match[1] as MigrateStep)) {
    throw new UsageError(
      `Invalid MARKETPIPE_TEST_KILL_AT "${value}": expected <step>:<n> with step one of ${
        _STEPS.join(", ")
      }`,
    );
  }
  return { step: match[1] as MigrateStep, count: Number(match[2]) };
}
