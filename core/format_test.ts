import assert from "node:assert/strict";
import {
  formatIsoInZone,
  formatIsoTime,
  formatPrices,
  formatTime,
  shellCommand,
  shellQuote,
} from "./format.ts";

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

Deno.test("formatTime() names the zone: exchange time across DST, UTC, and the legacy form", () => {
  const winter = Date.parse("2024-03-08T14:30:05Z"); // EST, UTC-5
  const summer = Date.parse("2024-03-11T13:30:05Z"); // EDT from 2024-03-10, UTC-4
  assert.equal(formatTime(winter, "exchange"), "2024-03-08 09:30:05 ET");
  assert.equal(formatTime(summer, "exchange"), "2024-03-11 09:30:05 ET");
  assert.equal(formatTime(winter, "utc"), "2024-03-08 14:30:05 UTC");
  assert.equal(formatTime(winter), "2024-03-08 14:30:05Z");
  assert.equal(formatTime(null, "exchange"), "-");
  // Local is the process's zone (TZ=UTC in the tests), named by its short name.
  assert.match(formatTime(winter, "local"), /^2024-03-08 \d\d:30:05 \S+$/);
});

Deno.test("formatIsoTime() and formatIsoInZone() show a stored ISO instant in a zone", () => {
  assert.equal(formatIsoTime("2024-07-01T13:30:00.000Z", "exchange"), "2024-07-01 09:30:00 ET");
  assert.equal(formatIsoTime("2024-07-01T13:30:00.250Z", "utc"), "2024-07-01 13:30:00.250 UTC");
  assert.equal(formatIsoTime("not a time", "exchange"), "not a time");
  const ms = Date.parse("2024-01-02T14:30:00Z");
  assert.equal(formatIsoInZone(ms, "exchange"), "2024-01-02T09:30:00.000-05:00");
  assert.equal(
    formatIsoInZone(Date.parse("2024-07-02T13:30:00Z"), "exchange"),
    "2024-07-02T09:30:00.000-04:00",
  );
  assert.equal(formatIsoInZone(ms, "utc"), "2024-01-02T14:30:00.000Z");
  // Round trip: the offset form is the same instant.
  assert.equal(Date.parse(formatIsoInZone(ms, "exchange")), ms);
});

Deno.test("formatPrices() gives a column the decimals its most precise value needs, capped", () => {
  assert.deepEqual(formatPrices([187, 187.5, 187.25]), ["187.00", "187.50", "187.25"]);
  assert.deepEqual(formatPrices([1, 2]), ["1", "2"]);
  assert.deepEqual(formatPrices([1, 2], { minDecimals: 2 }), ["1.00", "2.00"]);
  assert.deepEqual(formatPrices([187.123456, 1]), ["187.1235", "1.0000"], "at most 4");
  assert.deepEqual(formatPrices([0.1 + 0.2]), ["0.3"], "binary noise is not a decimal");
  // Below 1, 4 significant digits survive the cap.
  assert.deepEqual(formatPrices([0.00012346]), ["0.0001235"]);
  assert.deepEqual(formatPrices([NaN, 1.5]), ["NaN", "1.5"]);
});
