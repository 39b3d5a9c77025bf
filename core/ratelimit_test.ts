import assert from "node:assert/strict";
import FakeTimers, { type Clock } from "@sinonjs/fake-timers";
import { createRateLimiter, type RateLimitWaitMode, readRateLimitHeaders } from "./ratelimit.ts";

async function withFakeClock(fn: (clock: Clock) => Promise<void>): Promise<void> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout", "Date"],
    now: 1_700_000_000_000,
  });
  try {
    await fn(clock);
  } finally {
    clock.uninstall();
  }
}

/** Start `n` acquires at once and record when each resolves (ms after the start). */
function startAcquires(
  limiter: ReturnType<typeof createRateLimiter>,
  n: number,
  clock: Clock,
  signal?: AbortSignal,
) {
  const t0 = clock.now;
  const times: number[] = [];
  const errors: unknown[] = [];
  const all = Promise.all(
    Array.from(
      { length: n },
      () => limiter.acquire(signal).then(() => times.push(clock.now - t0), (e) => errors.push(e)),
    ),
  );
  return { times, errors, all };
}

Deno.test("createRateLimiter() spaces requests evenly at the configured rate", async () => {
  await withFakeClock(async (clock) => {
    const waits: [RateLimitWaitMode, number][] = [];
    const limiter = createRateLimiter({
      perMinute: 200,
      onWait: (mode, ms) => waits.push([mode, ms]),
    });
    assert.equal(limiter.intervalMs, 300);
    const run = startAcquires(limiter, 4, clock);
    await clock.tickAsync(1_000);
    await run.all;
    assert.deepEqual(run.times, [0, 300, 600, 900]);
    assert.deepEqual(waits, [["local", 300], ["local", 600], ["local", 900]]);
  });
});

Deno.test("createRateLimiter() lets a burst through at once, then refills at the rate", async () => {
  await withFakeClock(async (clock) => {
    const limiter = createRateLimiter({ perMinute: 60, burst: 3 });
    const run = startAcquires(limiter, 5, clock);
    await clock.tickAsync(5_000);
    await run.all;
    assert.deepEqual(run.times, [0, 0, 0, 1_000, 2_000]);
    // After an idle spell the bucket is full again.
    await clock.tickAsync(10_000);
    const later = startAcquires(limiter, 4, clock);
    await clock.tickAsync(2_000);
    await later.all;
    assert.deepEqual(later.times, [0, 0, 0, 1_000]);
  });
});

Deno.test("createRateLimiter() never sends more than the rate in any window", async () => {
  await withFakeClock(async (clock) => {
    const limiter = createRateLimiter({ perMinute: 120 });
    const run = startAcquires(limiter, 50, clock);
    await clock.tickAsync(30_000);
    await run.all;
    for (let i = 0; i < run.times.length; i++) {
      const inWindow = run.times.filter((t) => t >= run.times[i] && t < run.times[i] + 5_000);
      assert.ok(inWindow.length <= 10, `${inWindow.length} requests in 5 s at 120/min`);
    }
  });
});

Deno.test("pauseUntil() holds every request, then releases them spaced, not bunched", async () => {
  await withFakeClock(async (clock) => {
    const waits: RateLimitWaitMode[] = [];
    const limiter = createRateLimiter({ perMinute: 600, onWait: (mode) => waits.push(mode) });
    await limiter.acquire();
    const t0 = clock.now;
    limiter.pauseUntil(t0 + 5_000, "429");
    const run = startAcquires(limiter, 3, clock);
    await clock.tickAsync(4_999);
    assert.deepEqual(run.times, []);
    await clock.tickAsync(1_000);
    await run.all;
    assert.deepEqual(run.times, [5_000, 5_100, 5_200]);
    assert.deepEqual(waits, ["429", "429", "429"]);
    // An earlier pause does not shorten a later one.
    limiter.pauseUntil(clock.now + 1_000, "headers");
    limiter.pauseUntil(clock.now + 500, "429");
    assert.equal(limiter.pausedUntil, clock.now + 1_000);
  });
});

Deno.test("a pause that starts while a request waits for its slot delays it", async () => {
  await withFakeClock(async (clock) => {
    const limiter = createRateLimiter({ perMinute: 60 });
    await limiter.acquire();
    const run = startAcquires(limiter, 1, clock); // slot at +1 s
    await clock.tickAsync(500);
    limiter.pauseUntil(clock.now + 3_000, "headers"); // until +3.5 s
    await clock.tickAsync(5_000);
    await run.all;
    assert.deepEqual(run.times, [3_500]);
  });
});

Deno.test("acquire() rejects with the signal's reason as soon as it aborts", async () => {
  await withFakeClock(async (clock) => {
    const limiter = createRateLimiter({ perMinute: 1 });
    await limiter.acquire();
    const controller = new AbortController();
    const run = startAcquires(limiter, 1, clock, controller.signal);
    await clock.tickAsync(100);
    controller.abort(new DOMException("stop", "AbortError"));
    await run.all;
    assert.equal(run.times.length, 0);
    assert.equal((run.errors[0] as DOMException).name, "AbortError");
    await assert.rejects(limiter.acquire(controller.signal), { name: "AbortError" });
  });
});

Deno.test("createRateLimiter() refuses a rate or burst that is not positive", () => {
  assert.throws(() => createRateLimiter({ perMinute: 0 }), RangeError);
  assert.throws(() => createRateLimiter({ perMinute: Number.NaN }), RangeError);
  assert.throws(() => createRateLimiter({ perMinute: 5, burst: 0 }), RangeError);
});

Deno.test("readRateLimitHeaders() reads remaining, reset (epoch or delta) and Retry-After", () => {
  const now = 1_700_000_000_000;
  assert.deepEqual(
    readRateLimitHeaders(
      new Headers({ "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "1700000006" }),
      now,
    ),
    { remaining: 0, resetAt: 1_700_000_006_000 },
  );
  assert.deepEqual(readRateLimitHeaders(new Headers({ "x-ratelimit-reset": "7" }), now), {
    resetAt: now + 7_000,
  });
  assert.deepEqual(readRateLimitHeaders(new Headers({ "Retry-After": "2.5" }), now), {
    retryAfterMs: 2_500,
  });
  const date = new Date(now + 4_000).toUTCString();
  assert.deepEqual(readRateLimitHeaders(new Headers({ "Retry-After": date }), now), {
    retryAfterMs: 4_000,
  });
  assert.deepEqual(
    readRateLimitHeaders(new Headers({ "Retry-After": "soon", "X-Ratelimit-Remaining": "x" }), now),
    {},
  );
});
