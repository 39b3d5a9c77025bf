import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { tradingDays, zonedTime } from "./calendar.ts";
import { StorageError, UsageError } from "./errors.ts";
import {
  batchTasks,
  cleanBars,
  ingest,
  type IngestRequest,
  partitionPeriod,
  planTasks,
  requestKeyOf,
  sourceKeyOf,
} from "./ingest.ts";
import type {
  IngestStore,
  JobRecord,
  JobSpec,
  JobStatus,
  NewTask,
  SourceKey,
  TaskRecord,
  TaskResult,
  WriteResult,
} from "./jobs.ts";
import { type FetchRequest, type Provider, ProviderError } from "./provider.ts";
import type { Bar, Timeframe } from "./types.ts";

// ---------------------------------------------------------------------------------------------
// An in-memory IngestStore with the semantics of the SQLite one: a job belongs to a process
// until finished; a job of a dead process is reaped to "failed" and can be resumed.

const ME = "this-process";

class MemoryStore implements IngestStore {
  readonly jobs = new Map<string, JobRecord & { owner: string | null }>();
  readonly tasks = new Map<string, TaskRecord[]>();
  /** `${source}|${timeframe}|${symbol}` -> trading date -> bars stored that day. */
  readonly coverage = new Map<string, Map<string, number>>();
  /** `${symbol}|${timeframe}|${ts}` -> bar. */
  readonly bars = new Map<string, Bar & { jobId: string }>();
  readonly liveProcesses = new Set([ME]);
  #clock = 1_700_000_000_000;

  reapDeadJobs(): void {
    for (const job of this.jobs.values()) {
      if (!["running", "pending"].includes(job.status)) continue;
      if (job.owner === null || this.liveProcesses.has(job.owner)) continue;
      Object.assign(job, { status: "failed", error: "interrupted", owner: null });
      for (const task of this.tasks.get(job.id)!) {
        if (task.status === "running") task.status = "pending";
      }
    }
  }

  coveredDays(source: SourceKey, symbols: string[], start: string, end: string) {
    const out = new Map<string, Set<string>>();
    for (const symbol of symbols) {
      const days = this.coverage.get(coverageKey(source, symbol)) ?? new Map();
      out.set(symbol, new Set([...days.keys()].filter((day) => day >= start && day <= end)));
    }
    return out;
  }

  /** Record days as stored, as an earlier ingest would have. */
  cover(source: SourceKey, symbol: string, days: string[]): void {
    const key = coverageKey(source, symbol);
    if (!this.coverage.has(key)) this.coverage.set(key, new Map());
    for (const day of days) this.coverage.get(key)!.set(day, 390);
  }

  findResumableJob(requestKey: string): JobRecord | undefined {
    return [...this.jobs.values()]
      .filter((job) => job.requestKey === requestKey && job.status !== "succeeded")
      .filter((job) => job.owner === null || !this.liveProcesses.has(job.owner))
      .sort((a, b) => b.createdAt - a.createdAt)
      .map(copyJob)[0];
  }

  getJob(id: string): JobRecord | undefined {
    const job = this.jobs.get(id);
    return job && copyJob(job);
  }

  listTasks(jobId: string): TaskRecord[] {
    return (this.tasks.get(jobId) ?? []).map((task) => ({ ...task }));
  }

  createJob(spec: JobSpec, requestKey: string, tasks: NewTask[]): JobRecord {
    const at = this.#clock++;
    const id = `job-${this.jobs.size + 1}`;
    this.jobs.set(id, {
      ...structuredClone(spec),
      id,
      kind: "ingest",
      result: null,
      requestKey,
      status: "pending",
      createdAt: at,
      startedAt: null,
      finishedAt: null,
      updatedAt: at,
      pid: 1,
      error: null,
      barsWritten: 0,
      owner: ME,
    });
    this.tasks.set(
      id,
      tasks.map((task, seq) => ({
        ...task,
        jobId: id,
        seq,
        status: "pending",
        attempts: 0,
        barsFetched: 0,
        barsWritten: 0,
        barsReplaced: 0,
        error: null,
        startedAt: null,
        finishedAt: null,
        quarantined: 0,
        findings: {},
      })),
    );
    return this.getJob(id)!;
  }

  claimJob(jobId: string): JobRecord {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    if (job.owner !== null && job.owner !== ME && this.liveProcesses.has(job.owner)) {
      throw new Error(`job ${jobId} is run by ${job.owner}`);
    }
    for (const task of this.tasks.get(jobId)!) {
      if (task.status === "running" || task.status === "failed") task.status = "pending";
    }
    Object.assign(job, { status: "running", owner: ME, finishedAt: null, error: null });
    job.startedAt ??= this.#clock++;
    return copyJob(job);
  }

  startTask(jobId: string, seq: number): void {
    const task = this.#task(jobId, seq);
    assert.equal(task.status, "pending", `task ${seq} started while ${task.status}`);
    Object.assign(task, { status: "running", attempts: task.attempts + 1, error: null });
  }

  completeTask(jobId: string, seq: number, source: SourceKey, result: TaskResult): void {
    const task = this.#task(jobId, seq);
    assert.equal(task.status, "running", `task ${seq} completed while ${task.status}`);
    Object.assign(task, {
      status: "done",
      barsFetched: result.barsFetched,
      barsWritten: result.barsWritten,
      barsReplaced: result.barsReplaced,
    });
    const key = coverageKey(source, task.symbol);
    if (!this.coverage.has(key)) this.coverage.set(key, new Map());
    for (const [day, count] of Object.entries(result.dayCounts)) {
      this.coverage.get(key)!.set(day, count);
    }
    this.jobs.get(jobId)!.barsWritten += result.barsWritten;
  }

  failTask(jobId: string, seq: number, error: string): void {
    Object.assign(this.#task(jobId, seq), { status: "failed", error });
  }

  releaseTask(jobId: string, seq: number): void {
    const task = this.#task(jobId, seq);
    if (task.status === "running") task.status = "pending";
  }

  finishJob(jobId: string, status: JobStatus, error?: string): JobRecord {
    const job = this.jobs.get(jobId)!;
    for (const task of this.tasks.get(jobId)!) {
      if (task.status === "running") task.status = "pending";
    }
    Object.assign(job, { status, error: error ?? null, finishedAt: this.#clock++, owner: null });
    return copyJob(job);
  }

  writeBars(bars: Bar[], options: { jobId: string }): Promise<WriteResult> {
    const result: WriteResult = { written: 0, replaced: 0, partitions: 0 };
    const partitions = new Set<string>();
    for (const bar of bars) {
      const key = `${bar.symbol}|${bar.timeframe}|${bar.ts}`;
      if (this.bars.has(key)) result.replaced++;
      else result.written++;
      this.bars.set(key, { ...bar, jobId: options.jobId });
      partitions.add(`${bar.symbol}|${partitionPeriod(bar.timeframe, bar.tradingDate)}`);
    }
    result.partitions = partitions.size;
    return Promise.resolve(result);
  }

  /** Stored bars of a symbol, sorted by ts. */
  barsOf(symbol: string): Bar[] {
    return [...this.bars.values()].filter((bar) => bar.symbol === symbol).sort((a, b) =>
      a.ts - b.ts
    );
  }

  #task(jobId: string, seq: number): TaskRecord {
    const task = this.tasks.get(jobId)?.find((t) => t.seq === seq);
    assert.ok(task, `no task ${jobId}/${seq}`);
    return task;
  }
}

function coverageKey(source: SourceKey, symbol: string): string {
  const params = Object.entries(source.params).sort(([a], [b]) => a.localeCompare(b));
  return `${source.provider}/${source.feed}/${source.adjustment}?${params}|${source.timeframe}|${symbol}`;
}

function copyJob(job: JobRecord & { owner: string | null }): JobRecord {
  const { owner: _owner, ...record } = job;
  return structuredClone(record);
}

// ---------------------------------------------------------------------------------------------
// A scripted provider: three regular-session bars per trading day unless the script says
// otherwise. Every call is recorded.

const BAR_TIMES = ["09:30", "09:31", "09:32"];

function bar(symbol: string, date: string, time: string, fields: Partial<Bar> = {}): Bar {
  return {
    symbol,
    timeframe: "1m",
    ts: zonedTime(date, time),
    open: 100,
    high: 101,
    low: 99,
    close: 100.5,
    volume: 1_000,
    vwap: 100.2,
    tradeCount: 12,
    tradingDate: date,
    session: "regular",
    provider: "scripted",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

function barsFor(request: FetchRequest): Bar[] {
  return request.symbols.flatMap((symbol) =>
    tradingDays(request.start, request.end).flatMap((day) =>
      BAR_TIMES.map((time) => bar(symbol, day, time))
    )
  );
}

type Script = (request: FetchRequest, call: number, signal?: AbortSignal) => Bar[] | Promise<Bar[]>;

function scriptedProvider(script: Script = barsFor) {
  const calls: FetchRequest[] = [];
  const provider: Provider = {
    name: "scripted",
    fetchBars(request, options = {}) {
      calls.push(request);
      try {
        return Promise.resolve(script(request, calls.length, options.signal));
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
  return { provider, calls };
}

/** `SYMBOL start..end` of each fetch, for compact assertions. */
function fetched(calls: FetchRequest[]): string[] {
  return calls.map((call) => `${call.symbols.join(",")} ${call.start}..${call.end}`);
}

// 2023-12-27..2024-01-04: Dec 27, 28, 29 | Jan 2, 3, 4 (two year partitions, three days each).
function request(fields: Partial<IngestRequest> = {}): IngestRequest {
  return {
    provider: "scripted",
    feed: "sip",
    adjustment: "raw",
    timeframe: "1m",
    symbols: ["AAPL", "MSFT"],
    start: "2023-12-27",
    end: "2024-01-04",
    params: {},
    workers: 2,
    force: false,
    ...fields,
  };
}

const SPEC: JobSpec = {
  provider: "scripted",
  feed: "sip",
  adjustment: "raw",
  timeframe: "1m",
  symbols: ["AAPL", "MSFT"],
  start: "2024-02-15",
  end: "2024-03-05",
  params: {},
};

const NO_COVERAGE = { coveredDays: () => new Map<string, Set<string>>() };

/** Run `start()` with fake timers, advancing them until its promise settles: backoff never really sleeps. */
async function withFakeTimers<T>(start: () => Promise<T>): Promise<T> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout"],
  });
  try {
    let settled = false;
    const running = start();
    running.then(() => settled = true, () => settled = true);
    // Each tickAsync also yields one real macrotask, so I/O-backed promises (digests) progress.
    for (let i = 0; !settled; i++) {
      assert.ok(i < 1_000, "ingest did not finish within 1000 s of fake time");
      await clock.tickAsync(1_000);
    }
    return await running;
  } finally {
    clock.uninstall();
  }
}

// ---------------------------------------------------------------------------------------------
// planTasks()

Deno.test("planTasks() plans one task per symbol and run of trading days within a year", () => {
  const { tasks } = planTasks(NO_COVERAGE, SPEC, false);
  assert.deepEqual(tasks, [
    // Feb 19 is Presidents' Day and weekends are skipped: 10 trading days in February.
    { symbol: "AAPL", start: "2024-02-15", end: "2024-03-05", days: 13 },
    { symbol: "MSFT", start: "2024-02-15", end: "2024-03-05", days: 13 },
  ]);
});

Deno.test("planTasks() cuts runs at the task's bar budget, and never across a year", () => {
  const spec: JobSpec = { ...SPEC, symbols: ["SPY"], start: "2023-12-27", end: "2024-03-05" };
  const { tasks } = planTasks(NO_COVERAGE, spec, false);
  // 25,000 bars / 960 per 1m day = 26 days per task.
  assert.deepEqual(tasks.map((t) => [t.start, t.end, t.days]), [
    ["2023-12-27", "2023-12-29", 3],
    ["2024-01-02", "2024-02-07", 26],
    ["2024-02-08", "2024-03-05", 18],
  ]);
  const cut = planTasks(
    NO_COVERAGE,
    { ...spec, start: "2024-01-02", end: "2024-01-31" },
    false,
    { maxBars: 10_000 },
  );
  assert.deepEqual(cut.tasks.map((t) => t.days), [10, 10, 1]);
  // A year of 15m bars (64 a day) is one task.
  const quarterly = planTasks(NO_COVERAGE, {
    ...spec,
    timeframe: "15m",
    start: "2024-01-02",
    end: "2024-12-31",
  }, false);
  assert.deepEqual(quarterly.tasks.map((t) => t.days), [252]);
});
Deno.test("planTasks() skips covered days, splitting the run around them", () => {
  const covered = new Map([[
    "AAPL",
    new Set(["2024-02-21", "2024-03-01", "2024-03-04", "2024-03-05"]),
  ]]);
  const { tasks, symbols } = planTasks({ coveredDays: () => covered }, SPEC, false);
  assert.deepEqual(tasks, [
    { symbol: "AAPL", start: "2024-02-15", end: "2024-02-20", days: 3 },
    { symbol: "AAPL", start: "2024-02-22", end: "2024-02-29", days: 6 },
    { symbol: "MSFT", start: "2024-02-15", end: "2024-03-05", days: 13 },
  ]);
  assert.deepEqual(symbols.map((s) => [s.symbol, s.daysSkipped]), [["AAPL", 4], ["MSFT", 0]]);
});

Deno.test("planTasks() asks for coverage of the job's source, symbols and dates", () => {
  const asked: unknown[] = [];
  planTasks(
    {
      coveredDays: (...args) => {
        asked.push(args);
        return new Map();
      },
    },
    { ...SPEC, params: { seed: 7 } },
    false,
  );
  assert.deepEqual(asked, [[
    { provider: "scripted", feed: "sip", adjustment: "raw", timeframe: "1m", params: { seed: 7 } },
    ["AAPL", "MSFT"],
    "2024-02-15",
    "2024-03-05",
  ]]);
});

Deno.test("planTasks() with force plans covered days too without asking for coverage", () => {
  const store = {
    coveredDays(): Map<string, Set<string>> {
      throw new Error("coverage must not be consulted with --force");
    },
  };
  const { tasks } = planTasks(store, SPEC, true);
  assert.deepEqual(tasks.map((t) => t.days), [13, 13]);
});

Deno.test("planTasks() plans nothing when every day is covered", () => {
  const all = new Set(tradingDays(SPEC.start, SPEC.end));
  const covered = new Map([["AAPL", all], ["MSFT", all]]);
  const { tasks, symbols } = planTasks({ coveredDays: () => covered }, SPEC, false);
  assert.deepEqual(tasks, []);
  assert.deepEqual(symbols.map((s) => s.daysSkipped), [13, 13]);
});

Deno.test("planTasks() plans only days inside each symbol's listing window, counting the rest", () => {
  const windows = new Map([
    ["AAPL", { start: "2024-02-27", end: null }],
    ["MSFT", { start: null, end: "2024-02-20" }],
  ]);
  const { tasks, symbols } = planTasks(NO_COVERAGE, SPEC, false, { windows });
  assert.deepEqual(tasks, [
    { symbol: "AAPL", start: "2024-02-27", end: "2024-03-05", days: 6 },
    // Feb 19 is a holiday: the 15th, 16th and 20th.
    { symbol: "MSFT", start: "2024-02-15", end: "2024-02-20", days: 3 },
  ]);
  assert.deepEqual(symbols.map((s) => [s.symbol, s.daysUnlisted, s.daysSkipped]), [
    ["AAPL", 7, 0],
    ["MSFT", 10, 0],
  ]);
});

Deno.test("planTasks() plans nothing for a symbol listed after the range", () => {
  const windows = new Map([["AAPL", { start: "2024-06-03", end: null }]]);
  const { tasks, symbols } = planTasks(NO_COVERAGE, SPEC, false, { windows });
  assert.deepEqual(tasks.map((t) => t.symbol), ["MSFT"]);
  assert.equal(symbols[0].daysUnlisted, 13);
});

Deno.test("planTasks() splits daily bars by year", () => {
  const spec: JobSpec = {
    ...SPEC,
    timeframe: "1d",
    symbols: ["SPY"],
    start: "2023-11-28",
    end: "2024-01-03",
  };
  const { tasks } = planTasks(NO_COVERAGE, spec, false);
  assert.deepEqual(tasks.map((t) => [t.start, t.end]), [["2023-11-28", "2023-12-29"], [
    "2024-01-02",
    "2024-01-03",
  ]]);
});

Deno.test("partitionPeriod() is the year for every timeframe", () => {
  assert.equal(partitionPeriod("1m", "2024-03-05"), "2024");
  assert.equal(partitionPeriod("1h", "2024-12-31"), "2024");
  assert.equal(partitionPeriod("1d", "2024-03-05"), "2024");
});

Deno.test("requestKeyOf() ignores symbol and param order but not dates or source", async () => {
  const key = await requestKeyOf({ ...SPEC, params: { a: 1, b: "x" } });
  assert.match(key, /^[0-9a-f]{32}$/);
  assert.equal(
    await requestKeyOf({ ...SPEC, symbols: ["MSFT", "AAPL"], params: { b: "x", a: 1 } }),
    key,
  );
  assert.notEqual(
    await requestKeyOf({ ...SPEC, params: { a: 1, b: "x" }, end: "2024-03-06" }),
    key,
  );
  assert.notEqual(await requestKeyOf({ ...SPEC, params: { a: 1, b: "x" }, feed: "iex" }), key);
  assert.notEqual(await requestKeyOf({ ...SPEC, params: { a: 2, b: "x" } }), key);
});

// ---------------------------------------------------------------------------------------------
// ingest()

Deno.test("ingest() fetches each task once, stores its bars and records coverage", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  const summary = await ingest({ provider, store }, request());
  assert.equal(summary.status, "succeeded");
  assert.equal(summary.resumed, false);
  assert.equal(summary.tasksTotal, 4);
  assert.deepEqual(fetched(calls).sort(), [
    "AAPL 2023-12-27..2023-12-29",
    "AAPL 2024-01-02..2024-01-04",
    "MSFT 2023-12-27..2023-12-29",
    "MSFT 2024-01-02..2024-01-04",
  ]);
  assert.deepEqual(
    calls.map((c) => [c.timeframe, c.feed, c.adjustment]),
    Array(4).fill(["1m", "sip", "raw"]),
  );
  assert.equal(summary.barsFetched, 36);
  assert.equal(summary.barsWritten, 36);
  assert.equal(summary.barsReplaced, 0);
  assert.equal(store.bars.size, 36);
  assert.deepEqual(
    summary.symbols.map((s) => [s.symbol, s.barsWritten, s.daysFetched, s.tasksFailed]),
    [
      ["AAPL", 18, 6, 0],
      ["MSFT", 18, 6, 0],
    ],
  );
  const job = store.getJob(summary.job!.id)!;
  assert.equal(job.status, "succeeded");
  assert.equal(job.barsWritten, 36);
  assert.ok(store.listTasks(job.id).every((t) => t.status === "done" && t.attempts === 1));
  const covered = store.coveredDays(sourceKeyOf(job), ["AAPL"], "2023-12-27", "2024-01-04");
  assert.deepEqual([...covered.get("AAPL")!].sort(), tradingDays("2023-12-27", "2024-01-04"));
});

Deno.test("ingest() of an all-covered request is up-to-date and creates no job", async () => {
  const store = new MemoryStore();
  const source = sourceKeyOf(request());
  store.cover(source, "AAPL", tradingDays("2023-12-27", "2024-01-04"));
  store.cover(source, "MSFT", tradingDays("2023-12-27", "2024-01-04"));
  const { provider, calls } = scriptedProvider();
  const summary = await ingest({ provider, store }, request());
  assert.equal(summary.status, "up-to-date");
  assert.equal(summary.job, undefined);
  assert.equal(store.jobs.size, 0);
  assert.equal(calls.length, 0);
  assert.equal(summary.barsWritten, 0);
  assert.deepEqual(summary.symbols.map((s) => [s.symbol, s.daysSkipped]), [["AAPL", 6], [
    "MSFT",
    6,
  ]]);
});

Deno.test("ingest() fetches only days inside the listing windows, under the same job key", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  const windows = new Map([["MSFT", { start: "2024-01-03", end: null }]]);
  const summary = await ingest({ provider, store }, request({ windows }));
  assert.deepEqual(fetched(calls).sort(), [
    "AAPL 2023-12-27..2023-12-29",
    "AAPL 2024-01-02..2024-01-04",
    "MSFT 2024-01-03..2024-01-04",
  ]);
  assert.deepEqual(
    summary.symbols.map((s) => [s.symbol, s.daysFetched, s.daysUnlisted, s.daysSkipped]),
    [["AAPL", 6, 0, 0], ["MSFT", 2, 4, 0]],
  );
  const job = store.getJob(summary.job!.id)!;
  assert.equal(job.requestKey, await requestKeyOf(request()));
});

Deno.test("ingest() of days all outside the listing window is up-to-date", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  const windows = new Map([["AAPL", { start: null, end: "2023-06-30" }]]);
  const summary = await ingest({ provider, store }, request({ symbols: ["AAPL"], windows }));
  assert.equal(summary.status, "up-to-date");
  assert.equal(calls.length, 0);
  assert.deepEqual(summary.symbols.map((s) => [s.daysUnlisted, s.daysSkipped]), [[6, 0]]);
});

Deno.test("ingest() repeated after a successful run is up-to-date and writes nothing", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  await ingest({ provider, store }, request());
  const again = await ingest({ provider, store }, request());
  assert.equal(again.status, "up-to-date");
  assert.equal(calls.length, 4);
  assert.equal(store.jobs.size, 1);
  assert.equal(store.bars.size, 36);
});

Deno.test("ingest() fetches only the days not already covered", async () => {
  const store = new MemoryStore();
  store.cover(sourceKeyOf(request()), "AAPL", [
    "2023-12-27",
    "2023-12-28",
    "2023-12-29",
    "2024-01-03",
  ]);
  const { provider, calls } = scriptedProvider();
  const summary = await ingest({ provider, store }, request({ workers: 1 }));
  assert.equal(summary.status, "succeeded");
  assert.deepEqual(fetched(calls), [
    "AAPL 2024-01-02..2024-01-02",
    "AAPL 2024-01-04..2024-01-04",
    "MSFT 2023-12-27..2023-12-29",
    "MSFT 2024-01-02..2024-01-04",
  ]);
  const aapl = summary.symbols.find((s) => s.symbol === "AAPL")!;
  assert.equal(aapl.daysFetched, 2);
  assert.equal(aapl.daysSkipped, 4);
  assert.equal(aapl.barsWritten, 6);
});

Deno.test("ingest() with force fetches covered days again and counts replaced bars", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  await ingest({ provider, store }, request());
  const forced = await ingest({ provider, store }, request({ force: true }));
  assert.equal(forced.status, "succeeded");
  assert.equal(calls.length, 8);
  assert.equal(forced.barsWritten, 0);
  assert.equal(forced.barsReplaced, 36);
  assert.equal(store.bars.size, 36, "forced ingest duplicated bars");
  assert.equal(store.jobs.size, 2);
});

Deno.test("ingest() ends partial when one symbol fails with a non-retriable ProviderError", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider((req) => {
    if (req.symbols[0] === "MSFT") {
      throw new ProviderError('Cannot fetch bars for "MSFT" from "scripted": HTTP 403', {
        provider: "scripted",
        status: 403,
        retriable: false,
      });
    }
    return barsFor(req);
  });
  const summary = await ingest({ provider, store }, request({ attempts: 5 }));
  assert.equal(summary.status, "partial");
  assert.equal(summary.job!.status, "partial");
  assert.equal(summary.job!.error, "2 of 4 tasks failed");
  assert.equal(
    calls.filter((c) => c.symbols[0] === "MSFT").length,
    2,
    "non-retriable error was retried",
  );
  const tasks = store.listTasks(summary.job!.id);
  assert.deepEqual(tasks.map((t) => [t.symbol, t.status]), [
    ["AAPL", "done"],
    ["AAPL", "done"],
    ["MSFT", "failed"],
    ["MSFT", "failed"],
  ]);
  assert.equal(tasks[2].error, 'Cannot fetch bars for "MSFT" from "scripted": HTTP 403');
  const msft = summary.symbols.find((s) => s.symbol === "MSFT")!;
  assert.equal(msft.tasksFailed, 2);
  assert.deepEqual(msft.errors, ['Cannot fetch bars for "MSFT" from "scripted": HTTP 403']);
  assert.equal(store.barsOf("AAPL").length, 18);
  assert.equal(store.barsOf("MSFT").length, 0);
  assert.equal(summary.barsWritten, 18);
});

Deno.test("ingest() ends failed when every task fails", async () => {
  const store = new MemoryStore();
  const { provider } = scriptedProvider(() => {
    throw new ProviderError("HTTP 401", { provider: "scripted", status: 401 });
  });
  const summary = await ingest({ provider, store }, request());
  assert.equal(summary.status, "failed");
  assert.equal(summary.job!.error, "all 4 tasks failed");
});

Deno.test("ingest() retries a retriable ProviderError and succeeds within `attempts`", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider((req, call) => {
    if (call <= 2) {
      throw new ProviderError("HTTP 503", { provider: "scripted", status: 503, retriable: true });
    }
    return barsFor(req);
  });
  const summary = await withFakeTimers(() =>
    ingest({ provider, store }, request({ symbols: ["AAPL"], end: "2023-12-29", attempts: 3 }))
  );
  assert.equal(summary.status, "succeeded");
  assert.equal(calls.length, 3);
  assert.equal(store.barsOf("AAPL").length, 9);
  assert.equal(store.listTasks(summary.job!.id)[0].status, "done");
});

Deno.test("ingest() fails a task once retriable errors exhaust `attempts`", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider(() => {
    throw new ProviderError("HTTP 429", { provider: "scripted", status: 429, retriable: true });
  });
  const summary = await withFakeTimers(() =>
    ingest({ provider, store }, request({ symbols: ["AAPL"], end: "2023-12-29", attempts: 2 }))
  );
  assert.equal(summary.status, "failed");
  assert.equal(calls.length, 2);
  assert.deepEqual(summary.symbols[0].errors, ["HTTP 429"]);
});

Deno.test("ingest() aborted during a retry wait releases the task and ends cancelled", async () => {
  const store = new MemoryStore();
  const controller = new AbortController();
  const { provider, calls } = scriptedProvider((_req, call) => {
    if (call === 1) {
      // A (fake) timer fires before the backoff's: the abort arrives while withRetry waits.
      setTimeout(() => controller.abort(), 0);
    }
    throw new ProviderError("HTTP 503", { provider: "scripted", status: 503, retriable: true });
  });
  const summary = await withFakeTimers(() =>
    ingest({ provider, store }, request({ symbols: ["AAPL"], workers: 1, attempts: 5 }), {
      signal: controller.signal,
    })
  );
  assert.equal(summary.status, "cancelled");
  assert.equal(calls.length, 1);
  assert.deepEqual(store.listTasks(summary.job!.id).map((t) => t.status), ["pending", "pending"]);
});

Deno.test("ingest() aborted mid-run leaves unfinished tasks pending and the job cancelled", async () => {
  const store = new MemoryStore();
  const controller = new AbortController();
  const { provider, calls } = scriptedProvider((req, call, signal) => {
    if (call === 2) {
      controller.abort(new DOMException("Ctrl-C", "AbortError"));
      signal!.throwIfAborted();
    }
    return barsFor(req);
  });
  const summary = await ingest({ provider, store }, request({ workers: 1 }), {
    signal: controller.signal,
  });
  assert.equal(summary.status, "cancelled");
  assert.equal(calls.length, 2, "tasks were started after the abort");
  const job = store.getJob(summary.job!.id)!;
  assert.equal(job.status, "cancelled");
  assert.equal(job.error, "interrupted by the user");
  assert.deepEqual(store.listTasks(job.id).map((t) => t.status), [
    "done",
    "pending",
    "pending",
    "pending",
  ]);
  assert.equal(store.bars.size, 9);
});

Deno.test("ingest() of the same request resumes the cancelled job and runs only its remaining tasks", async () => {
  const store = new MemoryStore();
  const controller = new AbortController();
  const first = scriptedProvider((req, call, signal) => {
    if (call === 2) {
      controller.abort();
      signal!.throwIfAborted();
    }
    return barsFor(req);
  });
  const cancelled = await ingest({ provider: first.provider, store }, request({ workers: 1 }), {
    signal: controller.signal,
  });
  assert.equal(cancelled.status, "cancelled");

  const second = scriptedProvider();
  const starts: unknown[] = [];
  const summary = await ingest({ provider: second.provider, store }, request({ workers: 1 }), {
    onStart: ({ job, resumed, tasksTotal, tasksLeft }) =>
      starts.push({ id: job.id, resumed, tasksTotal, tasksLeft }),
  });
  assert.equal(summary.status, "succeeded");
  assert.equal(summary.resumed, true);
  assert.equal(summary.job!.id, cancelled.job!.id);
  assert.equal(store.jobs.size, 1, "a second job was created instead of resuming");
  assert.deepEqual(starts, [{ id: cancelled.job!.id, resumed: true, tasksTotal: 4, tasksLeft: 3 }]);
  assert.deepEqual(fetched(second.calls), [
    "AAPL 2024-01-02..2024-01-04",
    "MSFT 2023-12-27..2023-12-29",
    "MSFT 2024-01-02..2024-01-04",
  ]);
  assert.equal(summary.tasksAlreadyDone, 1);
  // The summary covers the whole job, including the task done before the abort.
  assert.equal(summary.barsWritten, 36);
  assert.equal(store.bars.size, 36);
  assert.ok(store.listTasks(summary.job!.id).every((t) => t.status === "done"));
});

Deno.test("ingest() resumes a job left running by a dead process after reaping it", async () => {
  const store = new MemoryStore();
  const spec = { ...request() } as JobSpec;
  const key = await requestKeyOf(spec);
  const job = store.createJob(spec, key, planTasks(store, spec, false).tasks);
  store.claimJob(job.id);
  store.startTask(job.id, 0);
  store.completeTask(job.id, 0, sourceKeyOf(spec), {
    barsFetched: 9,
    barsWritten: 9,
    barsReplaced: 0,
    quarantined: 0,
    findings: {},
    dayCounts: {},
  });
  store.startTask(job.id, 1);
  // The owning process dies with task 1 in flight.
  store.jobs.get(job.id)!.owner = "killed-process";

  const { provider, calls } = scriptedProvider();
  const summary = await ingest({ provider, store }, request({ workers: 1 }));
  assert.equal(summary.resumed, true);
  assert.equal(summary.job!.id, job.id);
  assert.equal(summary.status, "succeeded");
  assert.deepEqual(fetched(calls), [
    "AAPL 2024-01-02..2024-01-04",
    "MSFT 2023-12-27..2023-12-29",
    "MSFT 2024-01-02..2024-01-04",
  ]);
});

Deno.test("ingest() does not resume a job that a live process still runs", async () => {
  const store = new MemoryStore();
  const spec = { ...request() } as JobSpec;
  const running = store.createJob(
    spec,
    await requestKeyOf(spec),
    planTasks(store, spec, false).tasks,
  );
  store.jobs.get(running.id)!.owner = "other-live-process";
  store.jobs.get(running.id)!.status = "running";
  store.liveProcesses.add("other-live-process");
  const { provider } = scriptedProvider();
  const summary = await ingest({ provider, store }, request());
  assert.equal(summary.resumed, false);
  assert.notEqual(summary.job!.id, running.id);
  assert.equal(store.getJob(running.id)!.status, "running");
});

Deno.test("ingest() of a partial job's request again retries only the failed tasks", async () => {
  const store = new MemoryStore();
  let msftBroken = true;
  const { provider, calls } = scriptedProvider((req) => {
    if (msftBroken && req.symbols[0] === "MSFT") {
      throw new ProviderError("HTTP 500", { provider: "scripted" });
    }
    return barsFor(req);
  });
  const partial = await ingest({ provider, store }, request({ workers: 1 }));
  assert.equal(partial.status, "partial");
  msftBroken = false;
  calls.length = 0;
  const summary = await ingest({ provider, store }, request({ workers: 1 }));
  assert.equal(summary.status, "succeeded");
  assert.equal(summary.job!.id, partial.job!.id);
  assert.deepEqual(fetched(calls), ["MSFT 2023-12-27..2023-12-29", "MSFT 2024-01-02..2024-01-04"]);
  assert.equal(store.bars.size, 36);
});

Deno.test("ingest() with resumeJobId runs that job's remaining tasks", async () => {
  const store = new MemoryStore();
  const controller = new AbortController();
  const first = scriptedProvider((req, call, signal) => {
    if (call === 3) {
      controller.abort();
      signal!.throwIfAborted();
    }
    return barsFor(req);
  });
  const cancelled = await ingest({ provider: first.provider, store }, request({ workers: 1 }), {
    signal: controller.signal,
  });
  const second = scriptedProvider();
  // Different symbols and dates in the request: the stored job decides what runs.
  const summary = await ingest(
    { provider: second.provider, store },
    request({
      symbols: ["SPY"],
      start: "2024-01-02",
      end: "2024-01-02",
      resumeJobId: cancelled.job!.id,
      workers: 1,
    }),
  );
  assert.equal(summary.status, "succeeded");
  assert.equal(summary.resumed, true);
  assert.deepEqual(fetched(second.calls), [
    "MSFT 2023-12-27..2023-12-29",
    "MSFT 2024-01-02..2024-01-04",
  ]);
});

Deno.test("ingest() with an unknown resumeJobId throws a UsageError naming it", async () => {
  const store = new MemoryStore();
  const { provider } = scriptedProvider();
  await assert.rejects(
    ingest({ provider, store }, request({ resumeJobId: "20240101-000000-beef" })),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message === 'Cannot resume job "20240101-000000-beef": no such job',
  );
});

Deno.test("ingest() reports progress after every task", async () => {
  const store = new MemoryStore();
  const { provider } = scriptedProvider();
  const progress: [number, number, number][] = [];
  await ingest({ provider, store }, request({ workers: 1 }), {
    onProgress: (p) => progress.push([p.tasksDone, p.symbolsDone, p.barsWritten]),
  });
  assert.deepEqual(progress, [[1, 0, 9], [2, 1, 18], [3, 1, 27], [4, 2, 36]]);
});

Deno.test("ingest() drops bars the provider returns outside the task or for other symbols", async () => {
  const store = new MemoryStore();
  const { provider } = scriptedProvider((req) => [
    ...barsFor(req),
    bar("OTHER", req.start, "09:30"),
    bar(req.symbols[0], "2024-02-26", "09:30"), // the day before the range
  ]);
  const summary = await ingest(
    { provider, store },
    request({ symbols: ["AAPL"], end: "2023-12-29" }),
  );
  // Bars of a symbol nobody asked for are not attributed to any task; out-of-range ones count as fetched.
  assert.equal(summary.barsFetched, 10);
  assert.equal(summary.barsWritten, 9);
  assert.deepEqual(store.barsOf("OTHER"), []);
  assert.ok(store.barsOf("AAPL").every((b) => b.tradingDate >= "2023-12-27"));
});

// ---------------------------------------------------------------------------------------------
// cleanBars()

Deno.test("cleanBars() drops bars of other symbols and timeframes", () => {
  const bars = [
    bar("AAPL", "2024-03-04", "09:30"),
    bar("MSFT", "2024-03-04", "09:31"),
    bar("AAPL", "2024-03-04", "09:35", { timeframe: "5m" }),
  ];
  assert.deepEqual(cleanBars(bars, "AAPL", "1m", "2024-03-04", "2024-03-04"), [bars[0]]);
});

Deno.test("cleanBars() drops bars outside the date range", () => {
  const bars = [
    bar("AAPL", "2024-03-01", "15:59"),
    bar("AAPL", "2024-03-04", "09:30"),
    bar("AAPL", "2024-03-05", "09:30"),
    bar("AAPL", "2024-03-06", "09:30"),
  ];
  const kept = cleanBars(bars, "AAPL", "1m", "2024-03-04", "2024-03-05");
  assert.deepEqual(kept.map((b) => b.tradingDate), ["2024-03-04", "2024-03-05"]);
});

Deno.test("cleanBars() drops a bar whose trading date does not match its timestamp", () => {
  // 2024-03-05 09:30 New York labelled as 2024-03-04.
  const wrong = bar("AAPL", "2024-03-05", "09:30", { tradingDate: "2024-03-04" });
  const right = bar("AAPL", "2024-03-04", "19:59");
  assert.deepEqual(cleanBars([wrong, right], "AAPL", "1m", "2024-03-04", "2024-03-05"), [right]);
});

Deno.test("cleanBars() keeps a post-market bar after 20:00 UTC on its New York date", () => {
  // 19:59 New York in March (EST) is 00:59 UTC of the next day.
  const late = bar("AAPL", "2024-03-08", "19:59");
  assert.equal(new Date(late.ts).toISOString().slice(0, 10), "2024-03-09");
  assert.deepEqual(cleanBars([late], "AAPL", "1m", "2024-03-08", "2024-03-08"), [late]);
});

Deno.test("cleanBars() collapses duplicate timestamps keeping the last bar", () => {
  const first = bar("AAPL", "2024-03-04", "09:30", { close: 1 });
  const second = bar("AAPL", "2024-03-04", "09:30", { close: 2 });
  const other = bar("AAPL", "2024-03-04", "09:31");
  const kept = cleanBars([first, other, second], "AAPL", "1m", "2024-03-04", "2024-03-04");
  assert.equal(kept.length, 2);
  assert.equal(kept[0].close, 2);
  assert.equal(kept[1], other);
});

Deno.test("cleanBars() sorts bars by timestamp", () => {
  const bars = ["09:33", "09:30", "09:32", "09:31"].map((time) => bar("AAPL", "2024-03-04", time));
  const kept = cleanBars(bars, "AAPL", "1m", "2024-03-04", "2024-03-04");
  assert.deepEqual(kept.map((b) => b.ts), [...bars.map((b) => b.ts)].sort((a, b) => a - b));
});

Deno.test("cleanBars() drops bars with a non-finite timestamp", () => {
  const bad = bar("AAPL", "2024-03-04", "09:30", { ts: Number.NaN });
  assert.deepEqual(cleanBars([bad], "AAPL", "1m", "2024-03-04", "2024-03-04"), []);
});

Deno.test("cleanBars() keeps daily bars by trading date without a timestamp check", () => {
  const tf: Timeframe = "1d";
  const daily = bar("AAPL", "2024-03-04", "00:00", { timeframe: tf });
  const outside = bar("AAPL", "2024-03-06", "00:00", { timeframe: tf });
  assert.deepEqual(cleanBars([daily, outside], "AAPL", tf, "2024-03-04", "2024-03-05"), [daily]);
});

Deno.test("ingest() batches symbols with the same dates into one request when the provider allows it", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  const batching = Object.assign(provider, { maxSymbolsPerRequest: 2 });
  const summary = await ingest(
    { provider: batching, store },
    request({ symbols: ["AAPL", "MSFT", "SPY"], start: "2024-03-04", end: "2024-03-08" }),
  );
  assert.equal(summary.status, "succeeded");
  assert.deepEqual(calls.map((c) => c.symbols), [["AAPL", "MSFT"], ["SPY"]]);
  for (const symbol of ["AAPL", "MSFT", "SPY"]) assert.ok(store.barsOf(symbol).length > 0);
});

Deno.test("batchTasks() groups equal date ranges up to the size, keeping plan order", () => {
  const task = (seq: number, symbol: string, start: string) => ({
    jobId: "j",
    seq,
    symbol,
    start,
    end: start,
    days: 1,
    status: "pending" as const,
    attempts: 0,
    barsFetched: 0,
    barsWritten: 0,
    barsReplaced: 0,
    error: null,
    startedAt: null,
    finishedAt: null,
    quarantined: 0,
    findings: {},
  });
  const tasks = [
    task(0, "A", "2024-03-01"),
    task(1, "A", "2024-04-01"),
    task(2, "B", "2024-03-01"),
    task(3, "C", "2024-03-01"),
  ];
  assert.deepEqual(batchTasks(tasks, 2).map((b) => b.map((t) => t.seq)), [[0, 2], [1], [3]]);
  assert.deepEqual(batchTasks(tasks, 1).map((b) => b.map((t) => t.seq)), [[0], [1], [2], [3]]);
});

Deno.test("batchTasks() fills a batch up to the expected-bars budget before the symbol cap", () => {
  const task = (seq: number, days: number) => ({
    jobId: "j",
    seq,
    symbol: `S${seq}`,
    start: "2024-01-02",
    end: "2024-12-31",
    days,
    status: "pending" as const,
    attempts: 0,
    barsFetched: 0,
    barsWritten: 0,
    barsReplaced: 0,
    error: null,
    startedAt: null,
    finishedAt: null,
    quarantined: 0,
    findings: {},
  });
  const year = Array.from({ length: 250 }, (_, i) => task(i, 252));
  // Daily bars: 252 per symbol-year, so 100 symbols (the cap) fit in 200,000 bars.
  assert.deepEqual(
    batchTasks(year, 100, { timeframe: "1d", maxBars: 200_000 }).map((b) => b.length),
    [100, 100, 50],
  );
  // 1m bars: 252 days x 960 = 241,920 bars per task, over the budget alone: one task per batch.
  assert.deepEqual(
    batchTasks(year.slice(0, 3), 100, { timeframe: "1m", maxBars: 200_000 }).map((b) => b.length),
    [1, 1, 1],
  );
  const month = Array.from({ length: 25 }, (_, i) => task(i, 21));
  // 21 days x 960 = 20,160 bars: nine symbol-months fit in 200,000.
  assert.deepEqual(
    batchTasks(month, 100, { timeframe: "1m", maxBars: 200_000 }).map((b) => b.length),
    [9, 9, 7],
  );
});

/** A MemoryStore whose `n`th partition write fails on a full disk. */
function fullAfter(n: number): MemoryStore {
  const store = new MemoryStore();
  const write = store.writeBars.bind(store);
  let writes = 0;
  store.writeBars = (bars, options) => {
    if (++writes < n) return write(bars, options);
    const path = "/data/bars/x/data.parquet";
    const disk = new StorageError(`No space left on device while writing ${path}`, {
      path,
      code: "ENOSPC",
    });
    return Promise.reject(new Error(`Cannot write partition x: ${disk.message}`, { cause: disk }));
  };
  return store;
}

Deno.test("ingest() stops the job on a full disk: failed with the cause, the rest left pending", async () => {
  const store = fullAfter(2);
  const { provider, calls } = scriptedProvider();
  await assert.rejects(
    ingest({ provider, store }, request({ workers: 1, symbols: ["AAPL", "MSFT", "SPY"] })),
    new Error(
      "Job job-1 stopped after 1 of 6 task(s): No space left on device while writing /data/bars/x/data.parquet; free some space, then resume it with --resume job-1",
    ),
  );
  assert.equal(calls.length, 2, "no task starts after the disk filled");
  const job = store.getJob("job-1")!;
  assert.equal(job.status, "failed");
  assert.equal(job.error, "No space left on device while writing /data/bars/x/data.parquet");
  const tasks = store.listTasks("job-1");
  assert.deepEqual(tasks.map((t) => t.status), [
    "done",
    "failed",
    "pending",
    "pending",
    "pending",
    "pending",
  ]);
  assert.equal(
    tasks[1].error,
    "Cannot write partition x: No space left on device while writing /data/bars/x/data.parquet",
  );
});

Deno.test("ingest() on a full disk that cannot record the failure either still says why", async () => {
  const store = fullAfter(1);
  store.finishJob = () => {
    throw new StorageError("No space left on device while writing /data/marketpipe.db", {
      path: "/data/marketpipe.db",
      code: "ENOSPC",
    });
  };
  await assert.rejects(
    ingest({ provider: scriptedProvider().provider, store }, request({ workers: 1 })),
    /^Error: Job job-1 stopped after 0 of 4 task\(s\): No space left on device while writing \/data\/bars\/x\/data\.parquet; .* \(it could not be marked failed: the next marketpipe command does that\)$/,
  );
});

Deno.test("ingest() refuses a range whose last session has not closed at its clock", async () => {
  const store = new MemoryStore();
  const { provider, calls } = scriptedProvider();
  // 2024-01-04 (EST) at 11:00 ET: neither its regular session nor its after-hours have closed.
  const clock = () => Date.parse("2024-01-04T16:00:00Z");
  await assert.rejects(
    ingest({ provider, store }, request(), { clock }),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message ===
        "Cannot ingest 2023-12-27..2024-01-04: the 1m session of 2024-01-04 has not closed at 2024-01-04T16:00:00.000Z",
  );
  assert.equal(store.jobs.size, 0);
  assert.equal(calls.length, 0);
  assert.equal(store.coverage.size, 0);
  // At 16:00 ET daily bars are final, 1m bars (after-hours until 20:00 ET) are not.
  const close = () => Date.parse("2024-01-04T21:00:00Z");
  await assert.rejects(ingest({ provider, store }, request(), { clock: close }), UsageError);
  const daily = await ingest({ provider, store }, request({ timeframe: "1d" }), { clock: close });
  assert.equal(daily.status, "succeeded");
  const done = await ingest({ provider, store }, request(), {
    clock: () => Date.parse("2024-01-05T01:00:00Z"),
  });
  assert.equal(done.status, "succeeded");
});
