/**
 * `--json` errors: a failing command run with `--json` prints `{"error": {...}}` on stdout with
 * the same exit code and masking as the text error, which stays on stderr for runs without it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./_cli.ts";

interface JsonError {
  error: { message: string; kind: string; exit_code: number; cause?: string };
}

function parseError(stdout: string): JsonError {
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 1, `one JSON line on stdout, got: ${stdout}`);
  return JSON.parse(lines[0]);
}

Deno.test("--json: a usage error is JSON on stdout with exit code 2; without it, text on stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-json-errors-" });
  try {
    const args = ["query", "--data-dir", dir, "--nope"];
    const json = await runCli([...args, "--json"]);
    assert.equal(json.code, 2);
    assert.deepEqual(parseError(json.stdout), {
      error: {
        message: 'Unknown option "--nope" for "marketpipe query"; see marketpipe query --help',
        kind: "UsageError",
        exit_code: 2,
      },
    });
    assert.equal(json.stderr, "");
    const text = await runCli(args);
    assert.equal(text.code, 2);
    assert.equal(text.stdout, "");
    assert.equal(
      text.stderr,
      'error: Unknown option "--nope" for "marketpipe query"; see marketpipe query --help\n',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--json: a runtime error is JSON on stdout with exit code 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-json-errors-" });
  try {
    // A file where the data directory should be: the command fails while running, not parsing.
    const file = join(dir, "not-a-dir");
    await Deno.writeTextFile(file, "x");
    const json = await runCli(["query", "--data-dir", file, "--json", "SELECT 1"]);
    assert.equal(json.code, 1, json.stderr);
    const { error } = parseError(json.stdout);
    assert.equal(error.exit_code, 1);
    assert.match(error.message, /not-a-dir/);
    assert.notEqual(error.kind, "UsageError");
    assert.equal(json.stderr, "");
    const text = await runCli(["query", "--data-dir", file, "SELECT 1"]);
    assert.equal(text.code, 1);
    assert.equal(text.stdout, "");
    assert.equal(text.stderr.split("\n")[0], `error: ${error.message}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--json: secrets from the environment are masked in JSON and text errors alike", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-json-errors-" });
  const key = "AKSECRETKEYVALUE1234";
  const env = { ALPACA_KEY: key, ALPACA_SECRET: "s".repeat(24), ALPACA_BASE_URL: `nope-${key}` };
  const args = [
    "ingest",
    "--provider",
    "alpaca",
    "--symbols",
    "AAPL",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-04",
    "--data-dir",
    dir,
  ];
  try {
    const json = await runCli([...args, "--json"], { env });
    assert.equal(json.code, 2, json.stderr);
    assert.deepEqual(parseError(json.stdout).error, {
      message: 'Invalid ALPACA_BASE_URL "nope-****1234": expected an http(s) URL',
      kind: "UsageError",
      exit_code: 2,
    });
    const text = await runCli(args, { env });
    assert.equal(text.code, 2);
    assert.equal(
      text.stderr,
      'error: Invalid ALPACA_BASE_URL "nope-****1234": expected an http(s) URL\n',
    );
    assert.ok(!(json.stdout + json.stderr + text.stdout + text.stderr).includes(key));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
