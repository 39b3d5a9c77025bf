import assert from "node:assert/strict";
import { HttpError } from "./errors.ts";
import { createLimiter, hasValidCredentials, sessionValue } from "./security.ts";

Deno.test("createLimiter() runs up to the cap, queues, then refuses with 503", async () => {
  const limiter = createLimiter({ concurrency: 2, queue: 1, maxWaitMs: 60_000 });
  const first = await limiter.acquire();
  const second = await limiter.acquire();
  let thirdGranted = false;
  const third = limiter.acquire().then((release) => {
    thirdGranted = true;
    return release;
  });
  assert.deepEqual([limiter.active, limiter.waiting], [2, 1]);
  await assert.rejects(limiter.acquire(), (error: unknown) => {
    assert.ok(error instanceof HttpError);
    assert.equal(error.status, 503);
    assert.equal(error.headers["Retry-After"], "1");
    return true;
  });
  first();
  first(); // releasing twice frees one slot only
  const release = await third;
  assert.ok(thirdGranted);
  assert.deepEqual([limiter.active, limiter.waiting], [2, 0]);
  second();
  release();
  assert.deepEqual([limiter.active, limiter.waiting], [0, 0]);
});

Deno.test("createLimiter() refuses a request that waited past maxWaitMs", async () => {
  const limiter = createLimiter({ concurrency: 1, queue: 5, maxWaitMs: 20 });
  const held = await limiter.acquire();
  await assert.rejects(limiter.acquire(), /Waited 20 ms/);
  assert.equal(limiter.waiting, 0);
  held();
  (await limiter.acquire())();
});

Deno.test("hasValidCredentials() accepts the bearer token or the session cookie only", () => {
  const token = "tok-0123456789abcdef";
  assert.ok(hasValidCredentials(`Bearer ${token}`, undefined, token));
  assert.ok(hasValidCredentials(`bearer   ${token}`, undefined, token));
  assert.ok(hasValidCredentials(undefined, sessionValue(token), token));
  assert.ok(!hasValidCredentials(undefined, token, token), "the raw token is not a session");
  assert.ok(!hasValidCredentials(`Bearer ${token}x`, sessionValue(token), token));
  assert.ok(!hasValidCredentials(`Token ${token}`, undefined, token));
  assert.ok(!hasValidCredentials(undefined, undefined, token));
});
