import assert from "node:assert/strict";
import FakeTimers, { type Clock } from "@sinonjs/fake-timers";
import { backoffDelay, sleep, withRetry } from "./retry.ts";

/** Replace setTimeout/clearTimeout with a fake clock for the duration of `fn`. */
async function withFakeClock(fn: (clock: Clock) => Promise<void>): Promise<void> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout", "Date"],
  });
  try {
    await fn(clock);
  } finally {
    clock.uninstall();
  }
}

class Retriable extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

const isRetriable = (error: unknown) => error instanceof Retriable;

/** A function that fails with `errors` in turn, then resolves `"ok"`; records call times. */
function scripted(errors: Error[], clock: Clock) {
  const calls: number[] = [];
  const fn = (attempt: number) => {
    calls.push(clock.now);
    assert.equal(attempt, calls.length, "attempt numbers count from 1");
    const error = errors[calls.length - 1];
    return error ? Promise.reject(error) : Promise.resolve("ok");
  };
  return { fn, calls };
}

/** Settle state of a promise that can be checked without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  const done = promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error) => Object.assign(state, { settled: true, error }),
  );
  return { state, done };
}

Deno.test("backoffDelay() doubles the ceiling each attempt and scales it by the jitter", () => {
  const options = { baseDelayMs: 100, maxDelayMs: 10_000 };
  assert.equal(backoffDelay(1, { ...options, random: () => 0.5 }), 50);
  assert.equal(backoffDelay(2, { ...options, random: () => 0.5 }), 100);
  assert.equal(backoffDelay(3, { ...options, random: () => 0.5 }), 200);
  assert.equal(backoffDelay(4, { ...options, random: () => 0.25 }), 200);
});

Deno.test("backoffDelay() stays within [0, ceiling] for jitter at both ends", () => {
  const options = { baseDelayMs: 100, maxDelayMs: 10_000 };
  for (let attempt = 1; attempt <= 6; attempt++) {
    const ceiling = 100 * 2 ** (attempt - 1);
    assert.equal(backoffDelay(attempt, { ...options, random: () => 0 }), 0);
    const high = backoffDelay(attempt, { ...options, random: () => 0.999_999 });
    assert.ok(high <= ceiling && high >= ceiling - 1, `attempt ${attempt}: ${high} vs ${ceiling}`);
  }
});

Deno.test("backoffDelay() never exceeds maxDelayMs", () => {
  const delay = backoffDelay(30, { baseDelayMs: 500, maxDelayMs: 30_000, random: () => 0.999_999 });
  assert.equal(delay, 30_000);
});

Deno.test("backoffDelay() defaults to a 500 ms base", () => {
  assert.equal(backoffDelay(1, { random: () => 0.999_999 }), 500);
  assert.equal(backoffDelay(2, { random: () => 0.5 }), 500);
});

Deno.test("withRetry() waits an exponentially growing jittered delay between attempts", async () => {
  await withFakeClock(async (clock) => {
    const start = clock.now;
    const { fn, calls } = scripted(
      [new Retriable("a"), new Retriable("b"), new Retriable("c")],
      clock,
    );
    const delays: number[] = [];
    const { state, done } = track(withRetry(fn, {
      attempts: 5,
      baseDelayMs: 100,
      random: () => 0.5,
      isRetriable,
      onRetry: ({ delayMs }) => delays.push(delayMs),
    }));
    await clock.tickAsync(0);
    assert.equal(calls.length, 1);
    // First wait: 0.5 * 100 = 50 ms.
    await clock.tickAsync(49);
    assert.equal(calls.length, 1, "second attempt ran before the 50 ms backoff");
    await clock.tickAsync(1);
    assert.equal(calls.length, 2);
    // Second wait: 0.5 * 200 = 100 ms; third: 0.5 * 400 = 200 ms.
    await clock.tickAsync(99);
    assert.equal(calls.length, 2, "third attempt ran before the 100 ms backoff");
    await clock.tickAsync(1);
    assert.equal(calls.length, 3);
    await clock.tickAsync(200);
    await done;
    assert.equal(state.value, "ok");
    assert.deepEqual(calls.map((at) => at - start), [0, 50, 150, 350]);
    assert.deepEqual(delays, [50, 100, 200]);
  });
});

Deno.test("withRetry() keeps each jittered delay within its backoff ceiling", async () => {
  await withFakeClock(async (clock) => {
    const jitter = [0, 0.999_999, 0.3];
    const { fn } = scripted([new Retriable("a"), new Retriable("b"), new Retriable("c")], clock);
    const delays: number[] = [];
    const { done } = track(withRetry(fn, {
      baseDelayMs: 1_000,
      maxDelayMs: 3_000,
      random: () => jitter.shift()!,
      isRetriable,
      onRetry: ({ delayMs }) => delays.push(delayMs),
    }));
    await clock.runAllAsync();
    await done;
    // Ceilings: 1000, 2000, then min(3000, 4000).
    assert.deepEqual(delays, [0, 2_000, 900]);
  });
});

Deno.test("withRetry() does not retry an error that is not retriable", async () => {
  await withFakeClock(async (clock) => {
    const fatal = new Error("HTTP 403");
    const { fn, calls } = scripted([fatal], clock);
    const retries: number[] = [];
    const { state, done } = track(withRetry(fn, {
      isRetriable,
      onRetry: ({ attempt }) => retries.push(attempt),
    }));
    await clock.tickAsync(0);
    await done;
    assert.equal(state.error, fatal);
    assert.equal(calls.length, 1);
    assert.deepEqual(retries, []);
    assert.equal(clock.countTimers(), 0, "a wait was scheduled after a fatal error");
  });
});

Deno.test("withRetry() retries nothing without an isRetriable predicate", async () => {
  await withFakeClock(async (clock) => {
    const { fn, calls } = scripted([new Retriable("a")], clock);
    const { state, done } = track(withRetry(fn));
    await clock.tickAsync(0);
    await done;
    assert.ok(state.error instanceof Retriable);
    assert.equal(calls.length, 1);
  });
});

Deno.test("withRetry() gives up after `attempts` and rethrows the last error", async () => {
  await withFakeClock(async (clock) => {
    const errors = [
      new Retriable("first"),
      new Retriable("second"),
      new Retriable("third"),
      new Retriable("x"),
    ];
    const { fn, calls } = scripted(errors, clock);
    const { state, done } = track(
      withRetry(fn, { attempts: 3, baseDelayMs: 10, random: () => 1, isRetriable }),
    );
    await clock.runAllAsync();
    await done;
    assert.equal(calls.length, 3);
    assert.equal(state.error, errors[2]);
    assert.equal(clock.countTimers(), 0);
  });
});

Deno.test("withRetry() with attempts 1 calls once", async () => {
  await withFakeClock(async (clock) => {
    const { fn, calls } = scripted([new Retriable("a")], clock);
    const { state, done } = track(withRetry(fn, { attempts: 1, isRetriable }));
    await clock.tickAsync(0);
    await done;
    assert.ok(state.error instanceof Retriable);
    assert.equal(calls.length, 1);
  });
});

Deno.test("withRetry() waits the server-provided retryAfterMs instead of the backoff", async () => {
  await withFakeClock(async (clock) => {
    const start = clock.now;
    const { fn, calls } = scripted([new Retriable("429", 5_000)], clock);
    let jitterUsed = false;
    const { state, done } = track(withRetry(fn, {
      baseDelayMs: 10,
      isRetriable,
      retryAfterMs: (error) => (error as Retriable).retryAfterMs,
      random: () => {
        jitterUsed = true;
        return 0;
      },
    }));
    await clock.tickAsync(4_999);
    assert.equal(calls.length, 1, "retried before Retry-After elapsed");
    await clock.tickAsync(1);
    await done;
    assert.equal(state.value, "ok");
    assert.deepEqual(calls.map((at) => at - start), [0, 5_000]);
    assert.equal(jitterUsed, false);
  });
});

Deno.test("withRetry() falls back to backoff when retryAfterMs has no value", async () => {
  await withFakeClock(async (clock) => {
    const start = clock.now;
    const { fn, calls } = scripted([new Retriable("503")], clock);
    const { done } = track(withRetry(fn, {
      baseDelayMs: 100,
      random: () => 0.5,
      isRetriable,
      retryAfterMs: () => undefined,
    }));
    await clock.runAllAsync();
    await done;
    assert.deepEqual(calls.map((at) => at - start), [0, 50]);
  });
});

Deno.test("withRetry() rejects promptly with the abort reason when aborted during a wait", async () => {
  await withFakeClock(async (clock) => {
    const controller = new AbortController();
    const { fn, calls } = scripted([new Retriable("a"), new Retriable("b")], clock);
    const { state, done } = track(withRetry(fn, {
      baseDelayMs: 10_000,
      random: () => 1,
      isRetriable,
      signal: controller.signal,
    }));
    await clock.tickAsync(100);
    assert.equal(state.settled, false);
    const reason = new DOMException("stopped", "AbortError");
    controller.abort(reason);
    await clock.tickAsync(0); // no time passes: the rejection must not wait for the 10 s timer
    assert.equal(state.settled, true, "still waiting for the backoff after abort");
    await done;
    assert.equal(state.error, reason);
    assert.equal(calls.length, 1);
    assert.equal(clock.countTimers(), 0, "the backoff timer was left scheduled");
  });
});

Deno.test("withRetry() does not call fn when the signal is already aborted", async () => {
  const controller = new AbortController();
  controller.abort(new Error("cancelled"));
  let called = false;
  await assert.rejects(
    withRetry(() => {
      called = true;
      return Promise.resolve(1);
    }, { signal: controller.signal }),
    { message: "cancelled" },
  );
  assert.equal(called, false);
});

Deno.test("withRetry() does not retry when the signal aborted during the attempt", async () => {
  await withFakeClock(async (clock) => {
    const controller = new AbortController();
    let calls = 0;
    const failure = new Retriable("connection reset");
    const { state, done } = track(withRetry(() => {
      calls++;
      controller.abort();
      return Promise.reject(failure);
    }, { isRetriable, signal: controller.signal }));
    await clock.tickAsync(0);
    await done;
    assert.equal(state.error, failure);
    assert.equal(calls, 1);
  });
});

Deno.test("sleep() resolves after the given time and not before", async () => {
  await withFakeClock(async (clock) => {
    const { state, done } = track(sleep(1_000));
    await clock.tickAsync(999);
    assert.equal(state.settled, false);
    await clock.tickAsync(1);
    await done;
    assert.equal(state.settled, true);
    assert.equal(state.error, undefined);
  });
});

Deno.test("sleep() rejects at once with the reason of an already aborted signal", async () => {
  const controller = new AbortController();
  controller.abort(new Error("gone"));
  await assert.rejects(sleep(60_000, controller.signal), { message: "gone" });
});

Deno.test("sleep() removes its abort listener once it resolves", async () => {
  await withFakeClock(async (clock) => {
    const controller = new AbortController();
    const { state, done } = track(sleep(10, controller.signal));
    await clock.tickAsync(10);
    await done;
    controller.abort(new Error("late"));
    await clock.tickAsync(0);
    assert.equal(state.error, undefined);
  });
});
