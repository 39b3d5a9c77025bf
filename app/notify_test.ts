import assert from "node:assert/strict";
import { createNotifier, secretValuesOf } from "./notify.ts";

const SECRET = "PKTESTSECRET1234567890";

/** A webhook on 127.0.0.1 answering `statuses` in turn (then 200), recording what it got. */
async function withWebhook(
  statuses: number[],
  fn: (url: string, received: { headers: Headers; body: unknown }[]) => Promise<void>,
): Promise<void> {
  const received: { headers: Headers; body: unknown }[] = [];
  const queue = [...statuses];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      received.push({ headers: request.headers, body: await request.json() });
      return new Response("", { status: queue.shift() ?? 200 });
    },
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/hook?token=${SECRET}`, received);
  } finally {
    await server.shutdown();
  }
}

const noSleep = () => Promise.resolve();
const runFailed = {
  event: "run.failed" as const,
  schedule: "nightly",
  command: "update",
  plannedAt: "2024-07-03T17:30:00.000Z",
  attempts: 3,
  error: `HTTP 401 from alpaca with key ${SECRET}`,
  jobIds: ["20240703-173000-ab12"],
};

Deno.test("createNotifier() POSTs the event as JSON with secrets masked, retrying 5xx", async () => {
  await withWebhook([500, 503], async (url, received) => {
    const notify = createNotifier(
      { url, headers: { Authorization: "Bearer hook-token-abcdef" }, retries: 3 },
      { secrets: [SECRET], sleep: noSleep, now: () => Date.parse("2024-07-03T18:00:00Z") },
    );
    assert.deepEqual(await notify(runFailed), { delivered: true, attempts: 3 });
    assert.equal(received.length, 3);
    assert.equal(received[2].headers.get("authorization"), "Bearer hook-token-abcdef");
    assert.equal(received[2].headers.get("content-type"), "application/json");
    assert.deepEqual(received[2].body, {
      event: "run.failed",
      schedule: "nightly",
      command: "update",
      planned_at: "2024-07-03T17:30:00.000Z",
      attempts: 3,
      job_ids: ["20240703-173000-ab12"],
      error: "HTTP 401 from alpaca with key ****7890",
      at: "2024-07-03T18:00:00.000Z",
    });
  });
});

Deno.test("createNotifier() gives up after its retries and logs a masked line", async () => {
  await withWebhook([500, 500, 500], async (url, received) => {
    const lines: string[] = [];
    const waits: number[] = [];
    const notify = createNotifier({ url, headers: {}, retries: 2 }, {
      secrets: [SECRET],
      log: (line) => lines.push(line),
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      random: () => 0.5,
      baseDelayMs: 1_000,
    });
    const delivery = await notify({ event: "series.stale", series: [] });
    assert.equal(delivery.delivered, false);
    assert.equal(delivery.attempts, 3);
    assert.equal(received.length, 3);
    assert.deepEqual(waits, [500, 1_000]);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /^warning: Cannot notify http:\/\/127\.0\.0\.1:\d+\/hook\?token=\*\*\*\* of series\.stale: HTTP 500 after 3 attempts$/,
    );
    assert.ok(!lines[0].includes(SECRET));
  });
});

Deno.test("createNotifier() does not retry a 4xx answer", async () => {
  await withWebhook([404], async (url, received) => {
    const delivery = await createNotifier({ url, headers: {}, retries: 3 }, { sleep: noSleep })(
      runFailed,
    );
    assert.equal(received.length, 1);
    assert.deepEqual([delivery.delivered, delivery.attempts], [false, 1]);
    assert.match(delivery.error!, /HTTP 404 after 1 attempt$/);
  });
});

Deno.test("createNotifier() retries when nothing listens, then reports the failure", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const lines: string[] = [];
  const delivery = await createNotifier(
    { url: `http://127.0.0.1:${port}/hook`, headers: {}, retries: 1 },
    { sleep: noSleep, log: (line) => lines.push(line) },
  )(runFailed);
  assert.deepEqual([delivery.delivered, delivery.attempts], [false, 2]);
  assert.match(
    lines[0],
    /^warning: Cannot notify http:\/\/127\.0\.0\.1:\d+\/hook of run\.failed: .+ after 2 attempts$/,
  );
});

Deno.test("secretValuesOf() picks credential-looking variables", () => {
  assert.deepEqual(
    secretValuesOf({ ALPACA_KEY_ID: "k", ALPACA_SECRET_KEY: "s", HOME: "/root", MP_TOKEN: "" }),
    ["k", "s"],
  );
});
