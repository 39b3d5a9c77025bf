import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageError } from "../core/errors.ts";
import { ensureReserve, RESERVE_FILE, storageErrorOf, withReserve } from "./disk.ts";

const FULL = Object.assign(new Error("No space left on device (os error 28): write '/d/x'"), {
  code: "ENOSPC",
});

Deno.test("storageErrorOf() names the path for ENOSPC from Deno, DuckDB and SQLite, and EROFS", () => {
  for (
    const error of [
      FULL,
      new Error('IO Error: Could not write file "/d/.tmp-1": No space left on device'),
      Object.assign(new Error("database or disk is full"), { errcode: 13 }),
      new Error("outer", { cause: FULL }),
    ]
  ) {
    const disk = storageErrorOf(error, "/d/data.parquet");
    assert.ok(disk instanceof StorageError, String(error));
    assert.equal(disk.message, "No space left on device while writing /d/data.parquet");
    assert.equal(disk.code, "ENOSPC");
    assert.equal(disk.cause, error);
  }
  const readOnly = storageErrorOf(
    Object.assign(new Error("Read-only file system (os error 30)"), { code: "EROFS" }),
    "/d/x",
  );
  assert.equal(readOnly?.message, "Read-only file system while writing /d/x");
  assert.equal(storageErrorOf(new Error("HTTP 500"), "/d/x"), undefined);
});

Deno.test("withReserve() frees the reserve and writes again when the disk is full", async () => {
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-disk-" });
  try {
    await ensureReserve(dir);
    assert.equal((await Deno.stat(join(dir, RESERVE_FILE))).size, 256 * 1024);
    let calls = 0;
    const write = () => {
      if (++calls === 1) throw FULL;
      return "recorded";
    };
    assert.equal(withReserve(dir, write), "recorded");
    assert.equal(calls, 2);
    await assert.rejects(Deno.stat(join(dir, RESERVE_FILE)), Deno.errors.NotFound);
    // No reserve left: the full disk is reported as it is.
    assert.throws(() =>
      withReserve(dir, () => {
        throw FULL;
      }), FULL);
    // Other errors are not retried.
    const other = new Error("locked");
    assert.throws(() =>
      withReserve(dir, () => {
        throw other;
      }), other);
    await ensureReserve(dir);
    assert.equal((await Deno.stat(join(dir, RESERVE_FILE))).size, 256 * 1024);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
