import assert from "node:assert/strict";
import {
  closest,
  didYouMean,
  errorChain,
  errorMessage,
  findStorageError,
  StorageError,
  UsageError,
} from "./errors.ts";

const COMMAND_NAMES = ["ingest", "query", "jobs", "providers", "migrate", "demo"];

Deno.test("closest() finds the command behind a transposition typo", () => {
  assert.equal(closest("ingset", COMMAND_NAMES), "ingest");
  assert.equal(closest("qeury", COMMAND_NAMES), "query");
});

Deno.test("closest() finds a flag missing one letter", () => {
  assert.equal(closest("symbol", ["symbols", "symbols-file", "start", "end"]), "symbols");
  assert.equal(closest("symbolsfile", ["symbols", "symbols-file"]), "symbols-file");
});

Deno.test("closest() ignores case when comparing but returns the candidate's spelling", () => {
  assert.equal(closest("INGEST", COMMAND_NAMES), "ingest");
  assert.equal(closest("data-dir", ["Data-Dir"]), "Data-Dir");
});

Deno.test("closest() returns undefined when nothing is close", () => {
  assert.equal(closest("backtest", COMMAND_NAMES), undefined);
  assert.equal(closest("zzzzzzzzzzzz", ["symbols"]), undefined);
});

Deno.test("closest() returns undefined for no candidates", () => {
  assert.equal(closest("ingest", []), undefined);
});

Deno.test("closest() allows more edits for longer inputs", () => {
  // 12 characters allow 4 edits: "providerxxxx" -> "providers" is 4 edits away.
  assert.equal(closest("providerxxxx", COMMAND_NAMES), "providers");
  // 6 characters allow only 2 edits: "ingxxx" is 3 edits from "ingest".
  assert.equal(closest("ingxxx", COMMAND_NAMES), undefined);
});

Deno.test("closest() prefers the first of equally close candidates", () => {
  assert.equal(closest("ab", ["ac", "ad"]), "ac");
});

Deno.test("didYouMean() formats the suggestion with a leading space", () => {
  assert.equal(didYouMean("ingset", COMMAND_NAMES), ' (did you mean "ingest"?)');
});

Deno.test("didYouMean() is empty when nothing is close", () => {
  assert.equal(didYouMean("backtest", COMMAND_NAMES), "");
});

Deno.test("didYouMean() accepts any iterable such as a Set", () => {
  assert.equal(didYouMean("workrs", new Set(["workers", "force"])), ' (did you mean "workers"?)');
});

Deno.test("UsageError keeps its name, message and cause", () => {
  const cause = new Error("inner");
  const error = new UsageError('Invalid --workers "0"', { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "UsageError");
  assert.equal(error.message, 'Invalid --workers "0"');
  assert.equal(error.cause, cause);
});

Deno.test("errorMessage() returns the message of errors and the text of other values", () => {
  assert.equal(errorMessage(new TypeError("bad input")), "bad input");
  assert.equal(errorMessage("plain text"), "plain text");
  assert.equal(errorMessage(42), "42");
});

Deno.test("errorChain() joins the first line of each cause and skips a cause already quoted", () => {
  const io = new Error(
    'IO Error: Could not write file "/d/.tmp-1": No space left on device\nLINE 1',
  );
  const disk = new StorageError("No space left on device while writing /d/data.parquet", {
    path: "/d/data.parquet",
    code: "ENOSPC",
  }, { cause: io });
  const top = new Error(`Cannot write partition d: ${disk.message}`, { cause: disk });
  assert.equal(
    errorChain(top),
    'Cannot write partition d: No space left on device while writing /d/data.parquet: IO Error: Could not write file "/d/.tmp-1": No space left on device',
  );
  assert.equal(errorChain("plain"), "plain");
  assert.equal(findStorageError(top), disk);
  assert.equal(findStorageError(io), undefined);
});
