import assert from "node:assert/strict";
import { shellCommand, shellQuote } from "./format.ts";

Deno.test("shellQuote() leaves safe words alone and quotes the rest", () => {
  assert.equal(shellQuote("./data"), "./data");
  assert.equal(shellQuote("20241125-191500-ab12"), "20241125-191500-ab12");
  assert.equal(shellQuote("/data with space"), '"/data with space"');
  assert.equal(
    shellQuote("SELECT * FROM bars_1m WHERE symbol = 'AAPL'"),
    `"SELECT * FROM bars_1m WHERE symbol = 'AAPL'"`,
  );
  assert.equal(shellQuote(""), '""');
  assert.equal(shellQuote("$HOME"), "'$HOME'");
  assert.equal(shellQuote(`it's "$x"`), `'it'\\''s "$x"'`);
  assert.equal(shellQuote("~/data"), '"~/data"', "no tilde expansion");
  assert.equal(shellQuote("a*b"), '"a*b"', "no globbing");
  assert.equal(shellQuote("wow!"), "'wow!'", "no history expansion");
});

Deno.test("shellCommand() reads back as the same arguments in a real shell", async () => {
  const args = [
    "plain",
    "/tmp/my data",
    "it's",
    `"quoted" $HOME \`id\` \\n ! * ? [a] ~ # ; & | < > ( ) { }`,
    "",
    "new\nline",
    "tab\there",
    "ünïcödé ✓",
  ];
  const output = await new Deno.Command("sh", {
    args: ["-c", `for a in ${shellCommand(args)}; do printf '%s\\0' "$a"; done`],
    env: { HOME: "/nonexistent" },
    stdout: "piped",
  }).output();
  assert.equal(output.code, 0);
  assert.deepEqual(new TextDecoder().decode(output.stdout).split("\0").slice(0, -1), args);
});
