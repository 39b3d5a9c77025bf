import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { UsageError } from "../core/errors.ts";
import { checkOutputPath, writeFileAtomic } from "./output.ts";

/** Asserts that `fn` rejects with an error of `type` whose message includes `text`. */
async function assertRejects(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => Error,
  text = "",
  what = "",
): Promise<void> {
  await assert.rejects(fn, (error: Error) => {
    assert.ok(error instanceof type, `${what}: ${error}`);
    assert.ok(error.message.includes(text), `${what}: ${error.message}`);
    return true;
  }, what);
}

async function dataDirFixture(): Promise<{ root: string; data: string }> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "mp-output-" }));
  const data = join(root, "data");
  const partition = join(data, "bars", "timeframe=1m", "symbol=AAPL", "year=2024", "month=03");
  await Deno.mkdir(partition, { recursive: true });
  await Deno.writeTextFile(join(partition, "data.parquet"), "PAR1");
  await Deno.mkdir(join(data, "quarantine"), { recursive: true });
  await Deno.mkdir(join(data, "reports"), { recursive: true });
  await Deno.writeTextFile(join(data, "marketpipe.db"), "db");
  return { root, data };
}

Deno.test("checkOutputPath() refuses every path inside the data directory but exports/", async () => {
  const { root, data } = await dataDirFixture();
  try {
    const refused = [
      join(data, "bars", "timeframe=1m", "symbol=AAPL", "year=2024", "month=03", "data.parquet"),
      join(data, "bars", "x.csv"),
      join(data, "quarantine", "q.parquet"),
      join(data, "reports", "r.csv"),
      join(data, "marketpipe.db"),
      join(data, "marketpipe.db-wal"),
      join(data, "marketpipe.db-shm"),
      join(data, "new-file.txt"),
      join(data, "exports"),
      join(data, "bars", "..", "marketpipe.db"),
    ];
    for (const path of refused) {
      await assertRejects(
        () => checkOutputPath(data, path),
        UsageError,
        "inside the data directory",
        path,
      );
    }
    // A relative data directory and output resolve the same way.
    const rel = relative(Deno.cwd(), data);
    await assertRejects(() => checkOutputPath(rel, join(rel, "marketpipe.db")), UsageError);
    await assertRejects(() => checkOutputPath(`./${rel}/`, `./${rel}/bars/a.json`), UsageError);
    await Deno.mkdir(join(data, "exports"));
    assert.deepEqual(
      await checkOutputPath(data, join(data, "exports", "a.csv")),
      join(data, "exports", "a.csv"),
    );
    assert.deepEqual(await checkOutputPath(data, join(root, "a.csv")), join(root, "a.csv"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkOutputPath() resolves symlinks of the folder, the file and the data directory", async () => {
  const { root, data } = await dataDirFixture();
  try {
    // A folder outside that is a link into bars/.
    await Deno.symlink(join(data, "bars"), join(root, "bars-link"));
    await assertRejects(
      () => checkOutputPath(data, join(root, "bars-link", "x.csv")),
      UsageError,
      "inside the data directory",
    );
    // A file outside that is a link to the metadata database.
    await Deno.symlink(join(data, "marketpipe.db"), join(root, "db-link"));
    await assertRejects(
      () => checkOutputPath(data, join(root, "db-link")),
      UsageError,
      "inside the data directory",
    );
    // The data directory given through a link.
    await Deno.symlink(data, join(root, "data-link"));
    await assertRejects(
      () => checkOutputPath(join(root, "data-link"), join(data, "marketpipe.db")),
      UsageError,
    );
    await assertRejects(
      () => checkOutputPath(data, join(root, "data-link", "bars", "y.csv")),
      UsageError,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkOutputPath() refuses protected files, directories and missing folders", async () => {
  const { root, data } = await dataDirFixture();
  try {
    const history = join(root, "history", "marketpipe-metrics.db");
    await Deno.mkdir(join(root, "history"));
    await Deno.writeTextFile(history, "db");
    for (const path of [history, `${history}-wal`, `${history}-journal`]) {
      await assertRejects(
        () => checkOutputPath(data, path, { protectedFiles: [history] }),
        UsageError,
        "database",
      );
    }
    await assertRejects(() => checkOutputPath(data, root), UsageError, "is a directory");
    await assertRejects(() => checkOutputPath(data, `${root}/`), UsageError, "not a directory");
    await assertRejects(
      () => checkOutputPath(data, join(root, "missing", "a.csv")),
      UsageError,
      "does not exist",
    );
    await assertRejects(() => checkOutputPath(data, " "), UsageError, "expected a file path");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeFileAtomic() replaces the file whole, or leaves it as it was", async () => {
  const root = await Deno.makeTempDir({ prefix: "mp-atomic-" });
  try {
    const path = join(root, "out.csv");
    await Deno.writeTextFile(path, "old\n");
    await assertRejects(
      () =>
        writeFileAtomic(path, async (temp) => {
          await Deno.writeTextFile(temp, "half");
          throw new Error("disk on fire");
        }),
      Error,
      "disk on fire",
    );
    assert.deepEqual(await Deno.readTextFile(path), "old\n");
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["out.csv"]);
    // A hard link elsewhere keeps the old contents: the file is replaced, not truncated in place.
    await Deno.link(path, join(root, "hard-link"));
    await writeFileAtomic(path, (temp) => Deno.writeTextFile(temp, "new\n"));
    assert.deepEqual(await Deno.readTextFile(path), "new\n");
    assert.deepEqual(await Deno.readTextFile(join(root, "hard-link")), "old\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
