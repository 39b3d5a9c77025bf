import assert from "node:assert/strict";
import { HttpError } from "./errors.ts";
import {
  clientKey,
  createGuessLimiter,
  createLimiter,
  hasValidCredentials,
  sessionValue,
} from "./security.ts";

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

Deno.test("createGuessLimiter() locks out one client after its allowed guesses, for the window", () => {
  let now = 1_000_000;
  const guesses = createGuessLimiter({ allowed: 3, windowMs: 60_000, now: () => now });
  for (let i = 0; i < 3; i++) {
    assert.equal(guesses.retryAfter("a"), 0);
    guesses.fail("a");
    now += 1_000;
  }
  assert.equal(guesses.retryAfter("a"), 57, "until the first guess is a minute old");
  assert.equal(guesses.retryAfter("b"), 0, "other clients are not affected");
  now += 56_500;
  assert.equal(guesses.retryAfter("a"), 1);
  now += 600;
  assert.equal(guesses.retryAfter("a"), 0, "one guess left the window");
  guesses.fail("a");
  assert.ok(guesses.retryAfter("a") > 0);
  now += 120_000;
  assert.equal(guesses.retryAfter("a"), 0);
  assert.equal(guesses.size, 0, "expired clients are forgotten");
});

Deno.test("createGuessLimiter() tracks at most maxClients, forgetting the stalest first", () => {
  const guesses = createGuessLimiter({ allowed: 1, maxClients: 3, now: () => 0 });
  for (const client of ["a", "b", "c", "d"]) guesses.fail(client);
  assert.equal(guesses.size, 3);
  assert.equal(guesses.retryAfter("a"), 0, "the oldest client was dropped");
  for (const client of ["b", "c", "d"]) assert.ok(guesses.retryAfter(client) > 0, client);
  guesses.fail("b");
  guesses.fail("e");
  assert.equal(guesses.retryAfter("c"), 0, "b failed again, so c was the stalest");
  for (let i = 0; i < 50_000; i++) guesses.fail(`flood-${i}`);
  assert.equal(guesses.size, 3);
});

Deno.test("clientKey() is the remote address, IPv6 by /64, unknown without one", () => {
  const env = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 1 } });
  assert.equal(clientKey(env("203.0.113.7")), "203.0.113.7");
  assert.equal(clientKey(env("::ffff:203.0.113.7")), "203.0.113.7");
  assert.equal(clientKey(env("2001:db8:0:12::1")), "2001:db8:0:12::/64");
  assert.equal(clientKey(env("2001:0db8:0000:0012:aaaa:bbbb:cccc:dddd")), "2001:db8:0:12::/64");
  assert.equal(clientKey(env("2001:DB8::1")), "2001:db8:0:0::/64");
  assert.equal(clientKey(env("::1")), "0:0:0:0::/64");
  assert.equal(clientKey(env("fe80::1%eth0")), "fe80:0:0:0::/64");
  assert.equal(clientKey(undefined), "unknown");
  assert.equal(clientKey({}), "unknown");
  assert.equal(clientKey({ remoteAddr: { transport: "unix", path: "/run/mp.sock" } }), "unknown");
});
