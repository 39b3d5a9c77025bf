import { join } from "node:path";
import {
  META_FILE,
  migrate,
  migrationStatus,
  openDatabase,
  openReadOnlyDatabase,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatTime, renderTable } from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";

/** `marketpipe migrate [--status]`. */
export async function runMigrate(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const path = join(dataDir, META_FILE);
  if (invocation.flag("status")) {
    let exists = true;
    try {
      await Deno.stat(path);
    } catch {
      exists = false;
    }
    const status = exists
      ? (() => {
        const db = openReadOnlyDatabase(path);
        try {
          return migrationStatus(db);
        } finally {
          db.close();
        }
      })()
      : migrationStatus(null);
    if (context.json) {
      context.out(JSON.stringify({ database: path, exists, migrations: status }, null, 2));
      return EXIT.ok;
    }
    if (!exists) context.out(`${path} does not exist yet; every migration is pending.`);
    for (
      const line of renderTable(
        ["version", "name", "applied"],
        status.map((
          m,
        ) => [m.version, m.name, m.appliedAt === null ? "pending" : formatTime(m.appliedAt)]),
        { right: [0] },
      )
    ) context.out(line);
    return EXIT.ok;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const db = openDatabase(path);
  try {
    const applied = migrate(db);
    if (context.json) {
      context.out(
        JSON.stringify({
          database: path,
          applied: applied.map((m) => ({ version: m.version, name: m.name })),
        }),
      );
    } else if (applied.length === 0) {
      context.out(
        `${path} is up to date (schema version ${
          migrationStatus(db).at(-1)?.version ?? 0
        }); nothing applied.`,
      );
    } else {
      for (const m of applied) context.out(`Applied migration ${m.version}: ${m.name}`);
      context.out(`${path} is now at schema version ${applied.at(-1)!.version}.`);
    }
    return EXIT.ok;
  } finally {
    db.close();
  }
}
