/**
 * End-to-end tests of `marketpipe serve`, spawned as a real process: refusing unsafe binds,
 * answering while an ingest runs in the same process, and SIGTERM cancelling jobs resumably.
 */
import assert from "node:assert/strict";
import { metaQuery, runCli } from "./_cli.ts";
import { expectedMinuteBars, filledDataDir, jsonOf, startServe, waitUntil } from "./web_fixture.ts";

Deno.test("serve refuses a non-loopback bind without MARKETPIPE_API_TOKEN", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-serve-" });
  const open = await runCli(["serve", "--host", "0.0.0.0", "--data-dir", dir]);
  assert.equal(open.code, 2, open.stderr);
  assert.match(open.stderr, /Refusing to listen on 0\.0\.0\.0 without MARKETPIPE_API_TOKEN/);
  const reads = await runCli(["serve", "--auth-reads", "--data-dir", dir]);
  assert.equal(reads.code, 2);
  assert.match(reads.stderr, /--auth-reads needs MARKETPIPE_API_TOKEN/);
  const port = await runCli(["serve", "--port", "70000", "--data-dir", dir]);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /Invalid --port "70000"/);
});

Deno.test("serve with a token on a non-loopback address guards writes", async () => {
  const dir = await filledDataDir();
  const token = "0123456789abcdef0123456789abcdef";
  const serve = await startServe(["--host", "0.0.0.0", "--data-dir", dir], {
    MARKETPIPE_API_TOKEN: token,
  });
  const url = serve.url.replace("0.0.0.0", "127.0.0.1");
  try {
    // stderr is read separately from the URL on stdout: wait for the line.
    await waitUntil(() => /token required/.test(serve.stderr()), 10_000, "the token notice");
    assert.match(serve.stderr(), /token required for POST and DELETE/);
    const refused = await fetch(`${url}/api/query`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: '{"sql":"SELECT 1"}',
    });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const allowed = await fetch(`${url}/api/query`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: '{"sql":"SELECT 1 AS one"}',
    });
    assert.deepEqual((await jsonOf<{ rows: unknown[] }>(allowed)).rows, [[1]]);
    const symbols = await fetch(`${url}/api/symbols`);
    assert.equal(symbols.status, 200);
    await symbols.body?.cancel();
  } finally {
    serve.child.kill("SIGTERM");
    assert.equal((await serve.finished).code, 0);
  }
});

Deno.test("serve answers during an ingest in the same process; SIGTERM cancels it resumably", async () => {
  const dir = await filledDataDir();
  const serve = await startServe(["--data-dir", dir]);
  let stopped = false;
  try {
    const symbols = Array.from({ length: 60 }, (_, i) => `T${String(i).padStart(3, "0")}`);
    const started = await jsonOf<{ job: { id: string } }>(
      await fetch(`${serve.url}/api/jobs`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ symbols, start: "2024-01-02", end: "2024-03-28", workers: 2 }),
      }),
      202,
    );
    const id = started.job.id;
    await waitUntil(
      async () => {
        const job = await jsonOf<{ status: string; bars_written: number }>(
          await fetch(`${serve.url}/api/jobs/${id}`),
        );
        return job.status === "running" && job.bars_written > 0;
      },
      30_000,
      "the job to write bars",
    );

    // While the job runs: health checks and one-day bar reads answer, and correctly. How fast is
    // for bench/serve_bench.ts, against the same server when idle.
    const probeHealth = async () => {
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(await jsonOf(await fetch(`${serve.url}/healthz`)), { status: "ok" });
      }
    };
    const probeBars = async () => {
      for (let i = 0; i < 3; i++) {
        const day = await fetch(
          `${serve.url}/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05`,
        );
        const body = await jsonOf<{ bars: unknown[] }>(day);
        assert.equal(body.bars.length, expectedMinuteBars("AAPL", "2024-03-05", "2024-03-05"));
      }
    };
    await Promise.all([probeHealth(), probeBars()]);
    const running = await jsonOf<{ status: string }>(await fetch(`${serve.url}/api/jobs/${id}`));
    assert.equal(running.status, "running", "the job should still run during the probes");

    serve.child.kill("SIGTERM");
    const status = await serve.finished;
    stopped = true;
    assert.equal(status.code, 0, serve.stderr());
    assert.match(
      serve.stderr(),
      new RegExp(`Cancelled job ${id}; resume it with: marketpipe ingest --resume ${id}`),
    );
    const [row] = metaQuery(dir, `SELECT status FROM jobs WHERE id = '${id}'`);
    assert.equal(row.status, "cancelled");
    const pending = metaQuery(
      dir,
      `SELECT count(*) AS n FROM tasks WHERE job_id = '${id}' AND status <> 'done'`,
    );
    assert.ok(Number(pending[0].n) > 0, "the cancelled job should have tasks left");

    const resumed = await runCli(["ingest", "--resume", id, "--data-dir", dir, "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const count = await runCli([
      "query",
      "SELECT count(*) AS n FROM bars_1m WHERE symbol = 'T059'",
      "--json",
      "--data-dir",
      dir,
    ]);
    assert.equal(
      JSON.parse(count.stdout)[0].n,
      expectedMinuteBars("T059", "2024-01-02", "2024-03-28"),
    );
  } finally {
    if (!stopped) {
      serve.child.kill("SIGTERM");
      await serve.finished;
    }
  }
});
