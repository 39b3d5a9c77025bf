import assert from "node:assert/strict";
import { buildIngestRequest } from "../providers/ingest_request.ts";
import { openStore, type Store } from "../storage/mod.ts";
import { jobJson, planJob, ResumeError, runJob, taskJson } from "./mod.ts";

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mp-app-jobs-" });
  const store = await openStore(dir, { command: "test" });
  try {
    await fn(store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("planJob() refuses to resume a job the store does not have", async () => {
  await withStore(async (store) => {
    const prepared = await buildIngestRequest({ resume: "20240101-000000-beef" });
    assert.throws(
      () => planJob({ store, env: {} }, prepared),
      (error) =>
        error instanceof ResumeError && error.reason === "missing" &&
        error.jobId === "20240101-000000-beef" &&
        error.message ===
          `Cannot resume job "20240101-000000-beef": no such job in ${store.dataDir}`,
    );
  });
});

Deno.test("planJob() resumes a job by id prefix with the job's own spec", async () => {
  await withStore(async (store) => {
    const first = await buildIngestRequest({
      symbols: "AAPL",
      start: "2024-03-04",
      "fake-seed": "7",
    });
    const { summary } = await runJob(planJob({ store, env: {} }, first));
    const id = summary.job!.id;
    const plan = planJob(
      { store, env: {} },
      await buildIngestRequest({ resume: id.slice(0, 12) }),
    );
    assert.equal(plan.request.resumeJobId, id);
    assert.equal(plan.resumes?.id, id);
    assert.deepEqual(plan.spec.symbols, ["AAPL"]);
    assert.equal(plan.spec.params.seed, 7);
    const again = await runJob(plan);
    assert.equal(again.summary.status, "succeeded");
    // The job had succeeded: its tasks are done, nothing is fetched again.
    assert.equal(again.summary.tasksAlreadyDone, again.summary.tasksTotal);
    assert.equal(again.summary.barsWritten, 0);
  });
});

Deno.test("runJob() rolls a 1m job up when asked and says why it does not for 1d", async () => {
  await withStore(async (store) => {
    let started = 0;
    const minute = await runJob(
      planJob({ store, env: {} }, {
        ...(await buildIngestRequest({ symbols: "AAPL", start: "2024-03-04" })),
        aggregate: true,
      }),
      { onAggregateStart: () => started++ },
    );
    assert.equal(minute.summary.status, "succeeded");
    assert.equal(started, 1);
    assert.ok(minute.aggregation && minute.aggregation.rebuilt > 0);
    assert.equal(minute.notAggregated, undefined);

    const daily = await runJob(
      planJob({ store, env: {} }, {
        ...(await buildIngestRequest({ symbols: "AAPL", start: "2024-03-04", timeframe: "1d" })),
        aggregate: true,
      }),
      { onAggregateStart: () => started++ },
    );
    assert.equal(daily.summary.status, "succeeded");
    assert.equal(started, 1);
    assert.equal(daily.aggregation, undefined);
    assert.equal(daily.notAggregated, "aggregation rolls up 1m bars, this ingest is 1d");
  });
});

Deno.test("jobJson() and taskJson() give the snake_case record the README documents", async () => {
  await withStore(async (store) => {
    const prepared = await buildIngestRequest({ symbols: "AAPL", start: "2024-03-04" });
    const { summary } = await runJob(planJob({ store, env: {} }, prepared));
    const job = jobJson(summary.job!);
    assert.deepEqual(Object.keys(job), [
      "id",
      "kind",
      "status",
      "provider",
      "feed",
      "adjustment",
      "timeframe",
      "symbols",
      "start",
      "end",
      "params",
      "bars_written",
      "created_at",
      "started_at",
      "finished_at",
      "pid",
      "error",
      "result",
    ]);
    assert.equal(job.kind, "ingest");
    assert.equal(job.result, null);
    assert.equal(job.bars_written, summary.barsWritten);
    assert.equal(job.created_at, new Date(summary.job!.createdAt).toISOString());
    const [task] = store.listTasks(summary.job!.id).map(taskJson);
    assert.equal(task.bars_written, summary.barsWritten);
    assert.equal(task.status, "done");
    assert.equal(typeof task.duration_ms, "number");
  });
});
