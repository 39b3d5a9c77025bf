import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { StorageError } from "../core/errors.ts";
import { transaction } from "./sqlite.ts";

/** A database that is full after a few pages, the way SQLite sees a full disk (SQLITE_FULL). */
async function withTinyDatabase(fn: (db: DatabaseSync, path: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-sqlite-" });
  const path = join(dir, "tiny.db");
  const db = new DatabaseSync(path);
  try {
    db.exec("CREATE TABLE t (x TEXT)");
    db.exec("PRAGMA max_page_count = 8");
    fn(db, path);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("transaction() on a full database throws the cause naming the file, not a failed ROLLBACK", async () => {
  await withTinyDatabase((db, path) => {
    const fill = () => {
      const insert = db.prepare("INSERT INTO t VALUES (?)");
      for (let i = 0; i < 1_000; i++) insert.run("x".repeat(500));
    };
    assert.throws(() => transaction(db, fill), (error: unknown) => {
      assert.ok(error instanceof StorageError, String(error));
      assert.equal(error.message, `No space left on device while writing ${path}`);
      assert.equal(error.code, "ENOSPC");
      assert.match(String((error.cause as Error).message), /database or disk is full/);
      return true;
    });
    assert.equal(db.isTransaction, false);
    assert.equal(db.prepare("SELECT count(*) AS n FROM t").get()!.n, 0);
  });
});

Deno.test("transaction() rolls back and rethrows the error of its function", async () => {
  await withTinyDatabase((db) => {
    const boom = new RangeError("boom");
    assert.throws(() =>
      transaction(db, () => {
        db.exec("INSERT INTO t VALUES ('kept?')");
        throw boom;
      }), boom);
    assert.equal(db.isTransaction, false);
    assert.equal(db.prepare("SELECT count(*) AS n FROM t").get()!.n, 0);
    assert.equal(transaction(db, () => 42), 42);
  });
});
