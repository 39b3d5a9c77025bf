import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { createScheduler, type RunResult } from "../app/scheduler.ts";
import { parseSchedulesConfig } from "../core/schedule.ts";
import { MetaStore, openMigrated } from "../storage/meta.ts";
import { createScheduleStore } from "../storage/schedule_store.ts";
import { HttpError } from "./errors.ts";
import { registerSchedules, scheduleBanner } from "./schedules.ts";

const NOW = Date.parse("2024-07-03T12:00:00Z");

function setup() {
  const { db } = openMigrated(join(Deno.makeTempDirSync(), "marketpipe.db"));
  const meta = new MetaStore(db, { command: "serve" });
  let finish!: (result: RunResult) => void;
  const scheduler = createScheduler(
    parseSchedulesConfig({
      schedules: [{
        name: "nightly",
        command: "update",
        args: ["--timeframe", "1d"],
        when: { "after-close": "30m" },
      }],
    }, "test").schedules,
    {
      store: createScheduleStore(meta),
      clock: () => NOW,
      runCommand: () => new Promise((resolve) => finish = resolve),
    },
  );
  scheduler.start();
  const app = new Hono();
  registerSchedules(app, {
    meta,
    scheduler: () => scheduler,
    now: () => NOW,
    layout: { asset: (name) => `/assets/${name}`, version: "test", authEnabled: false },
  });
  app.onError((error, c) => {
    const status = error instanceof HttpError ? error.status : 500;
    return c.json({ error: { message: error.message } }, status as 400);
  });
  return {
    app,
    finish: (result: RunResult) => finish(result),
    idle: () => scheduler.idle(),
    async close() {
      await scheduler.stop();
      meta.close();
    },
  };
}

Deno.test("GET /api/schedules lists schedules with their next run in UTC", async () => {
  const s = setup();
  try {
    const body = await (await s.app.request("/api/schedules")).json();
    assert.equal(body.holds_lease, true);
    assert.deepEqual(body.schedules[0], {
      name: "nightly",
      command: "update --timeframe 1d",
      when: "30m after the close",
      overlap: "skip",
      catch_up: "latest",
      retries: 2,
      next: "2024-07-03T17:30:00.000Z", // 13:30 ET after the early close
      busy: false,
      queued: [],
      retry_at: null,
      last_run: null,
    });
  } finally {
    await s.close();
  }
});

Deno.test("POST /api/schedules/{name}/run starts a run, refuses a second, 404s an unknown one", async () => {
  const s = setup();
  try {
    const started = await s.app.request("/api/schedules/nightly/run", { method: "POST" });
    assert.equal(started.status, 202);
    const { run } = await started.json();
    assert.deepEqual([run.status, run.trigger, run.command], [
      "running",
      "manual",
      "update --timeframe 1d",
    ]);
    const again = await s.app.request("/api/schedules/nightly/run", { method: "POST" });
    assert.equal(again.status, 409);
    assert.match((await again.json()).error.message, /Cannot run schedule "nightly" now/);
    const unknown = await s.app.request("/api/schedules/nope/run", { method: "POST" });
    assert.equal(unknown.status, 404);
    s.finish({ status: "failed", error: "HTTP 503" });
    await s.idle();
    const runs = await (await s.app.request("/api/schedules/runs?schedule=nightly")).json();
    assert.deepEqual(runs.runs.map((r: { status: string }) => r.status), ["failed"]);
    const bad = await s.app.request("/api/schedules/runs?limit=0");
    assert.equal(bad.status, 400);
    const page = await (await s.app.request("/schedules")).text();
    assert.match(page, /Schedule <a href="\/schedules">nightly<\/a> failed after 1 attempt/);
    assert.match(page, /<td><code>update --timeframe 1d<\/code><\/td>/);
    const status = await (await s.app.request("/api/status")).json();
    assert.deepEqual(
      status.schedules.map((x: { name: string; failing: boolean }) => [x.name, x.failing]),
      [
        ["nightly", true],
      ],
    );
  } finally {
    await s.close();
  }
});

Deno.test("scheduleBanner() escapes the error text", () => {
  const banner = scheduleBanner([{
    schedule: "n",
    plannedAt: NOW,
    status: "failed",
    attempts: 3,
    error: "<script>x</script>",
    at: NOW,
  }]).value;
  assert.match(banner, /failed after 3 attempts/);
  assert.ok(!banner.includes("<script>"));
  assert.equal(scheduleBanner([]).value, "");
});
