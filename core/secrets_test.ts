import assert from "node:assert/strict";
import { maskSecret, redact, redactError, redactUrl } from "./secrets.ts";

const KEY = "PKTEST1234567890ABCD";

Deno.test("maskSecret() shows at most the last 4 characters, none of a short secret", () => {
  assert.equal(maskSecret(KEY), "****ABCD");
  assert.equal(maskSecret("short-key"), "****");
  assert.equal(maskSecret(""), "****");
});

Deno.test("redact() replaces raw and percent-encoded secrets and credential parameters", () => {
  const secret = "a+b/c=d&e1234567";
  const text = `key ${KEY} in GET /x?token=${
    encodeURIComponent(secret)
  }&symbol=AAPL, raw ${secret}`;
  const out = redact(text, [KEY, secret, undefined]);
  assert.ok(!out.includes(KEY));
  assert.ok(!out.includes(secret));
  assert.ok(!out.includes(encodeURIComponent(secret)));
  assert.match(out, /key \*\*\*\*ABCD in GET \/x\?token=\*\*\*\*&symbol=AAPL, raw \*\*\*\*4567/);
});

Deno.test("redact() masks credential query parameters of secrets it was not told about", () => {
  assert.equal(
    redact("error sending request for url (http://h/v2/aggs?apiKey=zzz&limit=5)", []),
    "error sending request for url (http://h/v2/aggs?apiKey=****&limit=5)",
  );
  assert.equal(
    redactUrl("http://h/chart?symbol=A&TOKEN=abc#x"),
    "http://h/chart?symbol=A&TOKEN=****#x",
  );
});

Deno.test("redact() leaves text alone for secrets too short to search for", () => {
  assert.equal(redact("a bad day", ["a"]), "a bad day");
});

Deno.test("redactError() redacts the message, the stack and the whole cause chain", () => {
  const inner = new TypeError(`error sending request for url (http://x/?token=${KEY})`);
  const outer = new Error(`failed with ${KEY}`, { cause: inner });
  const copy = redactError(outer, [KEY]) as Error;
  assert.equal(copy.message, "failed with ****ABCD");
  assert.ok(!copy.stack!.includes(KEY));
  const cause = copy.cause as Error;
  assert.equal(cause.name, "TypeError");
  assert.ok(!cause.message.includes(KEY));
  assert.ok(!cause.stack!.includes(KEY));
  assert.equal(redactError(`plain ${KEY}`, [KEY]), "plain ****ABCD");
});
