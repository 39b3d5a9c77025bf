import assert from "node:assert/strict";
import FakeTimers, { type Clock } from "@sinonjs/fake-timers";
import { createMetrics, type Metrics } from "../core/metrics.ts";
import { ProviderError } from "../core/provider.ts";
import {
  createHttpClient,
  type HttpClientOptions,
  httpSettingsFromEnv,
  requireCredentials,
} from "./http.ts";

const SECRET = "SECRETTOKEN1234567890WXYZ";
const T0 = 1_700_000_000_000;

async function withFakeClock(fn: (clock: Clock) => Promise<void>): Promise<void> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout", "Date"],
    now: T0,
  });
  try {
    await fn(clock);
  } finally {
    clock.uninstall();
  }
}

type Step = (url: URL, init: RequestInit) => Response | Promise<Response>;

/** A fetch that answers with `steps` in turn and records each call's time and URL. */
function scriptedFetch(steps: Step[]) {
  const calls: { at: number; url: URL }[] = [];
  const fetch = ((input: URL, init: RequestInit) => {
    calls.push({ at: Date.now(), url: input });
    const step = steps[calls.length - 1];
    if (!step) throw new Error(`unexpected request #${calls.length}`);
    return Promise.resolve(step(input, init));
  }) as unknown as typeof globalThis.fetch;
  return { fetch, calls };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers });

/** Never answers; rejects with the signal's reason when the client aborts. */
const hang: Step = (_url, init) =>
  new Promise((_, reject) => {
    init.signal!.addEventListener("abort", () => reject(init.signal!.reason), { once: true });
  });

function client(fetch: typeof globalThis.fetch, extra: Partial<HttpClientOptions> = {}) {
  return createHttpClient({
    provider: "mock",
    baseUrl: "http://mock.test/api/",
    perMinute: 6_000,
    secrets: [SECRET],
    fetch,
    random: () => 1,
    ...extra,
  });
}

const parseAny = (body: unknown) => body;

/** Settle `promise` while running the fake clock, and return its outcome. */
async function settle<T>(
  clock: Clock,
  promise: Promise<T>,
): Promise<{ value?: T; error?: unknown }> {
  const outcome: { value?: T; error?: unknown; done?: boolean } = {};
  promise.then(
    (value) => Object.assign(outcome, { value, done: true }),
    (error) => Object.assign(outcome, { error, done: true }),
  );
  for (let i = 0; i < 1_000 && !outcome.done; i++) await clock.tickAsync(100);
  assert.ok(outcome.done, "the request settled");
  return outcome;
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string>) {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l)
  );
  return value?.value ?? 0;
}

Deno.test("get() retries 5xx with growing backoff and returns the first good answer", async () => {
  await withFakeClock(async (clock) => {
    const metrics = createMetrics();
    const { fetch, calls } = scriptedFetch([
      json(500, { message: "oops" }),
      json(503, { message: "busy" }),
      json(200, { ok: 1 }),
    ]);
    const http = client(fetch, { metrics, baseDelayMs: 100 });
    const outcome = await settle(
      clock,
      http.get("/v2/x", { query: { a: 1 }, parse: parseAny, feed: "iex" }),
    );
    assert.deepEqual(outcome.value, { ok: 1 });
    assert.equal(calls.length, 3);
    assert.equal(calls[0].url.href, "http://mock.test/api/v2/x?a=1");
    // Full jitter with random() = 1 waits the whole ceiling: 100 ms, then 200 ms.
    assert.equal(calls[1].at - calls[0].at, 100);
    assert.equal(calls[2].at - calls[1].at, 200);
    assert.equal(
      await metricValue(metrics, "mp_requests_total", { status: "5xx", feed: "iex" }),
      2,
    );
    assert.equal(await metricValue(metrics, "mp_requests_total", { status: "2xx" }), 1);
    assert.equal(await metricValue(metrics, "mp_errors_total", { code: "503" }), 1);
  });
});

Deno.test("get() does not retry a 4xx and names provider, path and status, never the query", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([
      json(422, { code: 42210000, message: "invalid timeframe" }),
    ]);
    const http = client(fetch);
    const { error } = await settle(
      clock,
      http.get("/v2/stocks/bars", { query: { token: SECRET }, parse: parseAny }),
    );
    assert.equal(calls.length, 1);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 422);
    assert.equal(error.retriable, false);
    assert.equal(
      error.message,
      'Cannot fetch /api/v2/stocks/bars from "mock": HTTP 422 "invalid timeframe"',
    );
  });
});

Deno.test("get() waits out Retry-After of a 429, and so do concurrent requests", async () => {
  await withFakeClock(async (clock) => {
    const metrics = createMetrics();
    const { fetch, calls } = scriptedFetch([
      json(429, { message: "too many requests" }, { "Retry-After": "7" }),
      json(200, { n: 1 }),
      json(200, { n: 2 }),
    ]);
    const http = client(fetch, { metrics, perMinute: 60_000 });
    const first = http.get("/a", { parse: parseAny });
    await clock.tickAsync(0);
    const second = http.get("/b", { parse: parseAny });
    const outcome = await settle(clock, Promise.all([first, second]));
    assert.ok(outcome.value);
    assert.equal(calls.length, 3);
    assert.ok(calls[1].at - calls[0].at >= 7_000, "first retry after Retry-After");
    assert.ok(calls[2].at - calls[0].at >= 7_000, "the other request also waited");
    assert.equal(await metricValue(metrics, "mp_rate_limiter_waits_total", { mode: "429" }), 2);
  });
});

Deno.test("get() backs off at least one request interval after a 429 without hints", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([json(429, { error: "slow down" }), json(200, {})]);
    const http = client(fetch, { perMinute: 5, baseDelayMs: 100 });
    await settle(clock, http.get("/a", { parse: parseAny }));
    assert.equal(calls[1].at - calls[0].at, 12_000);
  });
});

Deno.test("get() holds the next request until X-Ratelimit-Reset when Remaining is 0", async () => {
  await withFakeClock(async (clock) => {
    const metrics = createMetrics();
    const reset = String(Math.ceil((T0 + 4_500) / 1000)); // epoch seconds
    const { fetch, calls } = scriptedFetch([
      json(200, {}, { "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": reset }),
      json(200, {}, { "X-Ratelimit-Remaining": "9", "X-Ratelimit-Reset": reset }),
    ]);
    const http = client(fetch, { metrics });
    await settle(clock, http.get("/a", { parse: parseAny }));
    await settle(clock, http.get("/b", { parse: parseAny }));
    assert.equal(calls[1].at, Number(reset) * 1000);
    assert.equal(await metricValue(metrics, "mp_rate_limiter_waits_total", { mode: "headers" }), 1);
  });
});

Deno.test("get() times out a silent server, retries, and reports the attempts", async () => {
  await withFakeClock(async (clock) => {
    const metrics = createMetrics();
    const { fetch, calls } = scriptedFetch([hang, hang, hang]);
    const http = client(fetch, { metrics, timeoutMs: 1_000, attempts: 3, baseDelayMs: 10 });
    const { error } = await settle(clock, http.get("/slow", { parse: parseAny }));
    assert.equal(calls.length, 3);
    assert.ok(error instanceof ProviderError);
    assert.equal(
      error.message,
      'Cannot fetch /api/slow from "mock": no answer within 1 s after 3 attempts',
    );
    assert.equal(error.retriable, false);
    assert.equal(await metricValue(metrics, "mp_errors_total", { code: "timeout" }), 3);
  });
});

Deno.test("get() recovers from a timeout followed by an answer", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([hang, json(200, { ok: true })]);
    const http = client(fetch, { timeoutMs: 500, baseDelayMs: 10 });
    const { value } = await settle(clock, http.get("/x", { parse: parseAny }));
    assert.deepEqual(value, { ok: true });
    assert.ok(calls[1].at - calls[0].at >= 500);
  });
});

Deno.test("get() rejects with the abort reason at once and sends nothing more", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([json(503, {}), json(200, {})]);
    const http = client(fetch, { baseDelayMs: 10_000 });
    const controller = new AbortController();
    const pending = http.get("/x", { parse: parseAny, signal: controller.signal });
    await clock.tickAsync(50);
    controller.abort(new DOMException("Interrupted", "AbortError"));
    const { error } = await settle(clock, pending);
    assert.equal((error as DOMException).name, "AbortError");
    assert.equal(calls.length, 1);
    // An abort during the request itself also surfaces as the abort reason.
    const again = scriptedFetch([hang]);
    const controller2 = new AbortController();
    const inFlight = client(again.fetch).get("/y", { parse: parseAny, signal: controller2.signal });
    await clock.tickAsync(10);
    controller2.abort(new DOMException("Interrupted", "AbortError"));
    assert.equal(((await settle(clock, inFlight)).error as DOMException).name, "AbortError");
  });
});

Deno.test("get() retries a body that is not JSON, then names path and status", async () => {
  await withFakeClock(async (clock) => {
    const broken = () => new Response('{"bars":{"AAPL":[{"t":', { status: 200 });
    const { fetch, calls } = scriptedFetch([broken, broken]);
    const http = client(fetch, { attempts: 2, baseDelayMs: 1 });
    const { error } = await settle(clock, http.get("/v2/stocks/bars", { parse: parseAny }));
    assert.equal(calls.length, 2);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.status, 200);
    assert.match(
      error.message,
      /^Cannot fetch \/api\/v2\/stocks\/bars from "mock": HTTP 200 with a body that is not JSON .* after 2 attempts$/,
    );
  });
});

Deno.test("get() fails at once on a JSON body of the wrong shape", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([json(200, { bars: 7 })]);
    const http = client(fetch);
    const { error } = await settle(
      clock,
      http.get("/x", {
        parse: (body) => {
          if (typeof (body as { bars: unknown }).bars !== "object") {
            throw new TypeError('"bars" is number');
          }
          return body;
        },
      }),
    );
    assert.equal(calls.length, 1);
    assert.ok(error instanceof ProviderError);
    assert.equal(
      error.message,
      'Cannot fetch /api/x from "mock": HTTP 200 with an unexpected body: "bars" is number',
    );
  });
});

Deno.test("get() masks secrets in messages and causes of connection errors", async () => {
  await withFakeClock(async (clock) => {
    const reset: Step = (url) => {
      throw new TypeError(
        `error sending request for url (${url.href}): connection reset by ${SECRET}`,
      );
    };
    const { fetch } = scriptedFetch([reset, reset]);
    const http = client(fetch, { attempts: 2, baseDelayMs: 1 });
    const { error } = await settle(
      clock,
      http.get("/x", { query: { token: SECRET }, parse: parseAny }),
    );
    assert.ok(error instanceof ProviderError);
    const everything = [
      error.message,
      error.stack,
      String((error.cause as Error).message),
      (error.cause as Error).stack,
    ]
      .join("\n");
    assert.ok(!everything.includes(SECRET), everything);
    assert.match(error.message, /connection failed .*\*\*\*\*WXYZ.* after 2 attempts/);
    assert.match((error.cause as Error).message, /token=\*\*\*\*/);
  });
});

Deno.test("a fatal answer fails every later request of the client without sending it", async () => {
  await withFakeClock(async (clock) => {
    const { fetch, calls } = scriptedFetch([json(403, { message: "forbidden" })]);
    const http = client(fetch, {
      explainError: (status) =>
        status === 403 ? { hint: "check MOCK_KEY", fatal: true } : undefined,
    });
    const first = await settle(clock, http.get("/x", { parse: parseAny }));
    assert.equal(
      (first.error as Error).message,
      'Cannot fetch /api/x from "mock": HTTP 403 "forbidden": check MOCK_KEY',
    );
    const second = await settle(clock, http.get("/y", { parse: parseAny }));
    assert.equal(second.error, first.error);
    assert.equal(calls.length, 1);
  });
});

Deno.test("accept() turns an error answer into a result and text bodies pass through", async () => {
  await withFakeClock(async (clock) => {
    const { fetch } = scriptedFetch([() => new Response("Unknown symbol", { status: 404 })]);
    const http = client(fetch);
    const { value } = await settle(
      clock,
      http.get("/stock/ZZZZ", {
        parse: parseAny,
        accept: (status, text) => status === 404 && text === "Unknown symbol" ? "none" : undefined,
      }),
    );
    assert.equal(value, "none");
  });
});

Deno.test("httpSettingsFromEnv() and requireCredentials() refuse bad values with usage errors", () => {
  assert.deepEqual(
    httpSettingsFromEnv({ MARKETPIPE_HTTP_TIMEOUT: "1.5", MARKETPIPE_HTTP_ATTEMPTS: "3" }),
    {
      timeoutMs: 1_500,
      attempts: 3,
    },
  );
  assert.throws(() => httpSettingsFromEnv({ MARKETPIPE_HTTP_ATTEMPTS: "0" }), {
    name: "UsageError",
  });
  assert.deepEqual(requireCredentials("p", { B: "b", A2: "a" }, [["A", "A2"], ["B"]]), ["a", "b"]);
  assert.throws(
    () =>
      requireCredentials("alpaca", {}, [["ALPACA_KEY", "APCA_API_KEY_ID"], [
        "ALPACA_SECRET",
        "APCA_API_SECRET_KEY",
      ]]),
    {
      name: "UsageError",
      message:
        'Missing credentials for provider "alpaca": set ALPACA_KEY and ALPACA_SECRET (or APCA_API_KEY_ID and APCA_API_SECRET_KEY)',
    },
  );
});
