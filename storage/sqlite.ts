/**
 * SQLite helpers shared by the metadata, telemetry and metric stores: transactions whose failed
 * ROLLBACK never hides the error that caused it, and errors that name the database file when the
 * disk is full or read-only.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { StorageError } from "../core/errors.ts";
import { storageErrorOf, unwritableDirOf } from "./disk.ts";

const _SQLITE_READONLY = 8;

/**
 * Run `write` on `db`; a full or read-only disk is thrown as a {@link StorageError} naming the
 * database file (SQLite itself says only "database or disk is full" or "attempt to write a
 * readonly database").
 */
export function sqliteWrite<T>(db: DatabaseSync, write: () => T): T {
  try {
    return write();
  } catch (error) {
    const path = db.location() ?? "the metadata database";
    const disk = storageErrorOf(error, path);
    if (disk) throw disk;
    const readOnly = (error as { errcode?: unknown }).errcode === _SQLITE_READONLY ||
      /attempt to write a readonly database/.test((error as Error)?.message ?? "");
    const denied = readOnly ? unwritableDirOf(path) : undefined;
    if (denied) {
      throw new StorageError(`Cannot write ${path}: ${denied.reason}`, {
        path,
        code: denied.code,
      }, { cause: error });
    }
    throw error;
  }
}

/**
 * Run `fn` in a `BEGIN IMMEDIATE` transaction: COMMIT when it returns, ROLLBACK when it throws.
 * SQLite rolls back by itself on some errors (a full disk, an I/O error), so ROLLBACK runs only
 * while a transaction is still open, and a failing ROLLBACK never replaces the original error.
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  return sqliteWrite(db, () => {
    db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      if (db.isTransaction) {
        try {
          db.exec("ROLLBACK");
        } catch {
          // The error that made us roll back is the one worth reporting.
        }
      }
      throw error;
    }
  });
}
