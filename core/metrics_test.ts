import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { Gauge } from "prom-client";
import {
  createMetrics,
  DeltaTracker,
  type FamilyInfo,
  INITIAL_ERROR_CODES,
  initialiseKnownSeries,
  JOB_OUTCOMES,
  readCumulative,
  readProcessMetrics,
  renderExposition,
  seriesKey,
  type SeriesValue,
  watchEventLoopLag,
} from "./metrics.ts";
import { VALIDATION_RULES } from "./validate.ts";

function counter(name: string, labels: Record<string, string>, value: number): SeriesValue {
  return { name, family: name, kind: "counter", labels, value };
}

function histogramPart(
  family: string,
  suffix: "_bucket" | "_sum" | "_count",
  labels: Record<string, string>,
  value: number,
): SeriesValue {
  return { name: family + suffix, family, kind: "histogram", labels, value };
}

/** Lines of an exposition that are samples (not comments, not blank). */
function sampleLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

Deno.test("renderExposition() writes HELP and TYPE once per family, before its samples", () => {
  const families: FamilyInfo[] = [
    { name: "mp_requests_total", help: "Requests", type: "counter" },
    { name: "mp_jobs_total", help: "Jobs", type: "counter" },
  ];
  const text = renderExposition(families, [
    counter("mp_requests_total", { provider: "fake" }, 3),
    counter("mp_jobs_total", { outcome: "succeeded" }, 1),
    counter("mp_requests_total", { provider: "alpaca" }, 5),
  ]);
  assert.equal(
    text,
    [
      "# HELP mp_requests_total Requests",
      "# TYPE mp_requests_total counter",
      'mp_requests_total{provider="fake"} 3',
      'mp_requests_total{provider="alpaca"} 5',
      "# HELP mp_jobs_total Jobs",
      "# TYPE mp_jobs_total counter",
      'mp_jobs_total{outcome="succeeded"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("renderExposition() escapes quotes, backslashes and newlines in label values and help", () => {
  const text = renderExposition(
    [{ name: "mp_errors_total", help: 'Errors\nby "code" \\ provider', type: "counter" }],
    [counter("mp_errors_total", { code: 'say "hi"\\n\nnext' }, 2)],
  );
  const lines = text.split("\n");
  // Help text escapes backslash and newline only (quotes are legal there).
  assert.equal(lines[0], '# HELP mp_errors_total Errors\\nby "code" \\\\ provider');
  assert.equal(lines[2], 'mp_errors_total{code="say \\"hi\\"\\\\n\\nnext"} 2');
  assert.equal(sampleLines(text).length, 1, "a newline in a value must not split the sample");
});

Deno.test("renderExposition() orders histogram buckets by le with +Inf last, then _sum and _count", () => {
  const family = "mp_request_latency_seconds";
  const a = { provider: "fake", feed: "sip" };
  const b = { provider: "alpaca", feed: "iex" };
  // Deliberately shuffled input, with 10 after 2.5 to catch a string sort.
  const samples = [
    histogramPart(family, "_count", a, 4),
    histogramPart(family, "_bucket", { le: "+Inf", ...a }, 4),
    histogramPart(family, "_bucket", { le: "10", ...b }, 1),
    histogramPart(family, "_sum", a, 1.5),
    histogramPart(family, "_bucket", { le: "10", ...a }, 4),
    histogramPart(family, "_bucket", { le: "2.5", ...a }, 3),
    histogramPart(family, "_bucket", { le: "0.5", ...a }, 1),
    histogramPart(family, "_sum", b, 7),
    histogramPart(family, "_bucket", { le: "+Inf", ...b }, 1),
    histogramPart(family, "_count", b, 1),
  ];
  const text = renderExposition([{ name: family, help: "Latency", type: "histogram" }], samples);
  assert.deepEqual(sampleLines(text), [
    'mp_request_latency_seconds_bucket{le="0.5",provider="fake",feed="sip"} 1',
    'mp_request_latency_seconds_bucket{le="2.5",provider="fake",feed="sip"} 3',
    'mp_request_latency_seconds_bucket{le="10",provider="fake",feed="sip"} 4',
    'mp_request_latency_seconds_bucket{le="+Inf",provider="fake",feed="sip"} 4',
    'mp_request_latency_seconds_sum{provider="fake",feed="sip"} 1.5',
    'mp_request_latency_seconds_count{provider="fake",feed="sip"} 4',
    'mp_request_latency_seconds_bucket{le="10",provider="alpaca",feed="iex"} 1',
    'mp_request_latency_seconds_bucket{le="+Inf",provider="alpaca",feed="iex"} 1',
    'mp_request_latency_seconds_sum{provider="alpaca",feed="iex"} 7',
    'mp_request_latency_seconds_count{provider="alpaca",feed="iex"} 1',
  ]);
});

Deno.test("renderExposition() keeps a family without samples and drops samples of unknown families", () => {
  const text = renderExposition(
    [
      { name: "mp_jobs_running", help: "Running jobs", type: "gauge" },
      { name: "mp_errors_total", help: "Errors", type: "counter" },
    ],
    [counter("mp_not_registered_total", {}, 9), counter("mp_jobs_running", {}, 0)],
  );
  assert.equal(
    text,
    [
      "# HELP mp_jobs_running Running jobs",
      "# TYPE mp_jobs_running gauge",
      "mp_jobs_running 0",
      "# HELP mp_errors_total Errors",
      "# TYPE mp_errors_total counter",
      "",
    ].join("\n"),
  );
  assert.equal(renderExposition([], []), "\n");
});

Deno.test("renderExposition() writes special float values the way Prometheus parses them", () => {
  const text = renderExposition([{ name: "g", help: "G", type: "gauge" }], [
    counter("g", { v: "a" }, NaN),
    counter("g", { v: "b" }, Infinity),
    counter("g", { v: "c" }, -Infinity),
    counter("g", { v: "d" }, 0.25),
  ]);
  assert.deepEqual(sampleLines(text), [
    'g{v="a"} NaN',
    'g{v="b"} +Inf',
    'g{v="c"} -Inf',
    'g{v="d"} 0.25',
  ]);
});

Deno.test("seriesKey() is the same whatever the label order", () => {
  assert.equal(seriesKey("m", { a: "1", b: "2" }), seriesKey("m", { b: "2", a: "1" }));
  assert.notEqual(seriesKey("m", { a: "1" }), seriesKey("m", { a: "2" }));
  assert.notEqual(seriesKey("m", { a: "1" }), seriesKey("n", { a: "1" }));
});

Deno.test("DeltaTracker reports only increases and omits unchanged series", () => {
  const tracker = new DeltaTracker();
  const rows = (n: number, m: number) => [
    counter("mp_ingest_rows_total", { provider: "fake", timeframe: "1m" }, n),
    counter("mp_jobs_total", { outcome: "succeeded" }, m),
  ];
  assert.deepEqual(tracker.deltas(rows(960, 1)).map((d) => d.value), [960, 1]);
  assert.deepEqual(tracker.deltas(rows(960, 1)), []);
  const third = tracker.deltas(rows(1_500, 1));
  assert.deepEqual(third, [
    counter("mp_ingest_rows_total", { provider: "fake", timeframe: "1m" }, 540),
  ]);
});

Deno.test("DeltaTracker reports a new series once even at zero, so every histogram bucket is stored", () => {
  const tracker = new DeltaTracker();
  const buckets = (low: number, high: number) => [
    histogramPart("mp_request_latency_seconds", "_bucket", { le: "0.1" }, low),
    histogramPart("mp_request_latency_seconds", "_bucket", { le: "+Inf" }, high),
  ];
  assert.deepEqual(tracker.deltas(buckets(0, 1)).map((d) => [d.labels.le, d.value]), [
    ["0.1", 0],
    ["+Inf", 1],
  ]);
  assert.deepEqual(tracker.deltas(buckets(0, 1)), []);
  assert.deepEqual(tracker.deltas(buckets(0, 2)).map((d) => [d.labels.le, d.value]), [["+Inf", 1]]);
});

Deno.test("DeltaTracker tells series apart by labels, not by label order", () => {
  const tracker = new DeltaTracker();
  tracker.deltas([counter("m", { a: "1", b: "2" }, 5), counter("m", { a: "9", b: "2" }, 1)]);
  const next = tracker.deltas([
    counter("m", { b: "2", a: "1" }, 7),
    counter("m", { a: "9", b: "2" }, 1),
  ]);
  assert.deepEqual(next.map((d) => [d.labels, d.value]), [[{ b: "2", a: "1" }, 2]]);
});

Deno.test("DeltaTracker reports the new value after a registry reset, never a negative delta", () => {
  const tracker = new DeltaTracker();
  tracker.deltas([counter("mp_jobs_total", {}, 10)]);
  assert.deepEqual(tracker.deltas([counter("mp_jobs_total", {}, 3)]).map((d) => d.value), [3]);
  assert.deepEqual(tracker.deltas([counter("mp_jobs_total", {}, 4)]).map((d) => d.value), [1]);
  assert.deepEqual(tracker.deltas([counter("mp_jobs_total", {}, 0)]), []);
});

Deno.test("readCumulative() reads counters and every histogram part and skips gauges", async () => {
  const metrics = createMetrics();
  metrics.ingestRows.inc({ provider: "fake", timeframe: "1m" }, 960);
  metrics.jobs.inc({ outcome: "succeeded" });
  metrics.requestLatency.observe({ provider: "fake", feed: "sip" }, 0.3);
  metrics.requestLatency.observe({ provider: "fake", feed: "sip" }, 20);
  new Gauge({
    name: "mp_test_gauge",
    help: "A gauge",
    labelNames: ["symbol"],
    registers: [metrics.registry],
  }).set({ symbol: "AAPL" }, 42);

  const values = await readCumulative(metrics.registry);
  assert.ok(!values.some((v) => v.family === "mp_test_gauge"), "gauges are not cumulative");
  const find = (name: string, labels: Record<string, string>) =>
    values.filter((v) => v.name === name && seriesKey(name, v.labels) === seriesKey(name, labels));

  assert.deepEqual(find("mp_ingest_rows_total", { provider: "fake", timeframe: "1m" }), [{
    name: "mp_ingest_rows_total",
    family: "mp_ingest_rows_total",
    kind: "counter",
    labels: { provider: "fake", timeframe: "1m" },
    value: 960,
  }]);
  assert.equal(find("mp_jobs_total", { outcome: "succeeded" })[0].value, 1);

  const latency = values.filter((v) => v.family === "mp_request_latency_seconds");
  assert.ok(latency.every((v) => v.kind === "histogram"));
  const buckets = latency.filter((v) => v.name === "mp_request_latency_seconds_bucket");
  assert.equal(buckets.length, 12, "11 configured buckets plus +Inf");
  assert.ok(buckets.every((b) => typeof b.labels.le === "string"), "le is a string label");
  const le = (bound: string) => buckets.find((b) => b.labels.le === bound)!.value;
  assert.equal(le("0.25"), 0);
  assert.equal(le("0.5"), 1);
  assert.equal(le("10"), 1);
  assert.equal(le("30"), 2);
  assert.equal(le("+Inf"), 2);
  assert.equal(
    find("mp_request_latency_seconds_sum", { provider: "fake", feed: "sip" })[0].value,
    20.3,
  );
  assert.equal(
    find("mp_request_latency_seconds_count", { provider: "fake", feed: "sip" })[0].value,
    2,
  );
  // Families without observations contribute nothing.
  assert.ok(!values.some((v) => v.family === "mp_processing_time_seconds"));
});

Deno.test("readCumulative() output renders to the same samples prom-client writes", async () => {
  const metrics = createMetrics();
  metrics.requests.inc({ provider: "fake", feed: "sip", status: "2xx" }, 3);
  metrics.processingTime.observe({ operation: "ingest" }, 0.07);
  metrics.processingTime.observe({ operation: "ingest" }, 400);
  const ours = renderExposition(
    (await metrics.registry.getMetricsAsJSON()).map((f) => ({
      name: f.name,
      help: f.help,
      type: String(f.type) as FamilyInfo["type"],
    })),
    await readCumulative(metrics.registry),
  );
  const normalise = (text: string) =>
    sampleLines(text).map((line) => {
      // Compare label sets, not label order.
      const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)!;
      const labels = (match[2] ?? "").split(",").filter((s) => s !== "").sort().join(",");
      return `${match[1]}{${labels}} ${Number(match[3])}`;
    }).sort();
  assert.deepEqual(normalise(ours), normalise(await metrics.registry.metrics()));
});

Deno.test("watchEventLoopLag() reports how late each tick fired, measured by the clock", () => {
  const clock = FakeTimers.install({ toFake: ["setInterval", "clearInterval"] });
  let t = 1_000;
  const lags: number[] = [];
  try {
    const stop = watchEventLoopLag((s) => lags.push(s), { intervalMs: 100, now: () => t });
    t = 1_100;
    clock.tick(100);
    assert.deepEqual(lags, [0]);
    // The loop was blocked: the next tick is observed 250 ms after it was due.
    t = 1_100 + 100 + 250;
    clock.tick(100);
    assert.deepEqual(lags, [0, 0.25]);
    // The expectation restarts from the late tick, so the lag does not stick.
    t += 100;
    clock.tick(100);
    assert.deepEqual(lags, [0, 0.25, 0]);
    // A tick that (by the clock) came early is no negative lag.
    t += 40;
    clock.tick(100);
    assert.equal(lags.at(-1), 0);
    stop();
    clock.tick(1_000);
    assert.equal(lags.length, 4, "no ticks after stop");
  } finally {
    clock.uninstall();
  }
});

Deno.test("watchEventLoopLag() sees a real blocked event loop", async () => {
  const lags: number[] = [];
  const started = performance.now();
  const stop = watchEventLoopLag((s) => lags.push(s), { intervalMs: 10 });
  try {
    // No tick can fire while the loop is blocked, so the next one is at least 140 ms late.
    const blockUntil = performance.now() + 150;
    while (performance.now() < blockUntil) { /* block the event loop */ }
    // The deadline only ends a broken run; a slow machine reports the lag later, not smaller.
    const deadline = Date.now() + 60_000;
    while (!lags.some((s) => s >= 0.1)) {
      assert.ok(Date.now() < deadline, `no lag >= 0.1 s reported: ${lags.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // In seconds: no lag can exceed the time the test has been running.
    const runningSeconds = (performance.now() - started) / 1000;
    assert.ok(Math.max(...lags) <= runningSeconds, `lags ${lags.join(", ")} in seconds`);
  } finally {
    stop();
  }
});

Deno.test("initialiseKnownSeries() creates each known label set at 0 and nothing per symbol", async () => {
  const metrics = createMetrics();
  initialiseKnownSeries(metrics, [
    { name: "alpaca", feeds: ["iex", "sip"], timeframes: ["1m", "1d"] },
    { name: "fake", feeds: ["sip"], timeframes: ["1m"] },
  ]);
  const values = await readCumulative(metrics.registry);
  assert.ok(values.every((v) => v.value === 0), "all at zero");
  const labelSets = (name: string) =>
    values.filter((v) => v.name === name).map((v) => seriesKey("", v.labels)).sort();
  // Request, latency and error series for HTTP providers only: the fake one sends no requests.
  assert.equal(labelSets("mp_errors_total").length, 2 * INITIAL_ERROR_CODES.length);
  assert.ok(
    labelSets("mp_errors_total").includes(
      seriesKey("", { provider: "alpaca", feed: "sip", code: "429" }),
    ),
  );
  assert.ok(!values.some((v) => v.name.startsWith("mp_request") && v.labels.provider === "fake"));
  assert.ok(!values.some((v) => v.name === "mp_errors_total" && v.labels.provider === "fake"));
  assert.equal(labelSets("mp_requests_total").length, 2 * 4);
  assert.deepEqual(
    labelSets("mp_rate_limiter_waits_total"),
    ["alpaca", "fake"].flatMap((provider) =>
      ["local", "headers", "429"].map((mode) => seriesKey("", { provider, mode }))
    ).sort(),
  );
  assert.deepEqual(
    labelSets("mp_ingest_rows_total"),
    [
      seriesKey("", { provider: "alpaca", timeframe: "1m" }),
      seriesKey("", { provider: "alpaca", timeframe: "1d" }),
      seriesKey("", { provider: "fake", timeframe: "1m" }),
    ].sort(),
  );
  assert.equal(labelSets("mp_validation_errors_total").length, VALIDATION_RULES.length);
  assert.deepEqual(
    labelSets("mp_jobs_total"),
    JOB_OUTCOMES.map((outcome) => seriesKey("", { outcome })).sort(),
  );
  // Histograms: every bucket, _sum and _count of each label set.
  assert.equal(labelSets("mp_request_latency_seconds_bucket").length, 2 * 12);
  assert.equal(labelSets("mp_request_latency_seconds_count").length, 2);
  assert.equal(labelSets("mp_processing_time_seconds_count").length, 3);
  // A later increase counts on from the zero.
  metrics.jobs.inc({ outcome: "failed" });
  const failed = (await readCumulative(metrics.registry)).filter((v) =>
    v.name === "mp_jobs_total" && v.labels.outcome === "failed"
  );
  assert.deepEqual(failed.map((v) => v.value), [1]);
});

/** Samples of {@link readProcessMetrics} by name. */
function processValues(options: { procDir?: string } = {}): Map<string, number> {
  const { families, samples } = readProcessMetrics(options);
  assert.deepEqual(families.map((f) => f.name), samples.map((s) => s.name));
  return new Map(samples.map((s) => [s.name, s.value]));
}

/** User plus system CPU seconds of this process by /proc/self/stat (clock ticks of 1/100 s). */
function procStatCpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

Deno.test("readProcessMetrics() reads CPU for the whole process life, agreeing with /proc", () => {
  const before = processValues().get("process_cpu_seconds_total")!;
  const reference = procStatCpuSeconds();
  // Busy work: at least 50 ms of CPU by the OS's own count.
  const target = reference + 0.05;
  while (procStatCpuSeconds() < target) { /* burn CPU */ }
  const values = processValues();
  const cpu = values.get("process_cpu_seconds_total")!;
  assert.ok(cpu > before, `cpu ${cpu} did not grow from ${before}`);
  // The same clock as the OS (to a tick of 10 ms each for user and system).
  assert.ok(
    Math.abs(cpu - procStatCpuSeconds()) < 0.05,
    `cpu ${cpu} vs /proc ${procStatCpuSeconds()}`,
  );
  assert.ok(
    Math.abs(
      values.get("process_cpu_user_seconds_total")! +
        values.get("process_cpu_system_seconds_total")! - cpu,
    ) < 1e-9,
  );
  const wall = Date.now() / 1000 - values.get("process_start_time_seconds")!;
  const cores = navigator.hardwareConcurrency;
  assert.ok(cpu <= wall * cores, `cpu ${cpu} s in ${wall} s on ${cores} cores`);
});

Deno.test("readProcessMetrics() reports resident memory within 10% of Deno.memoryUsage()", () => {
  const rss = processValues().get("process_resident_memory_bytes")!;
  const deno = Deno.memoryUsage().rss;
  assert.ok(Math.abs(rss - deno) <= deno * 0.1, `rss ${rss} vs Deno ${deno}`);
  assert.ok(processValues().get("process_virtual_memory_bytes")! >= rss);
  assert.ok(processValues().get("marketpipe_heap_used_bytes")! > 0);
});

Deno.test("readProcessMetrics() counts open file descriptors and reads the limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-fds-" });
  const files: Deno.FsFile[] = [];
  try {
    const before = processValues().get("process_open_fds")!;
    for (let i = 0; i < 5; i++) {
      files.push(await Deno.open(`${dir}/${i}`, { create: true, write: true }));
    }
    assert.equal(processValues().get("process_open_fds"), before + 5);
    for (const file of files.splice(0)) file.close();
    assert.equal(processValues().get("process_open_fds"), before);
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)![1]);
    assert.equal(processValues().get("process_max_fds"), soft);
    assert.ok(before < soft);
  } finally {
    for (const file of files) file.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readProcessMetrics() leaves out what the OS does not expose", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-noproc-" });
  try {
    const values = processValues({ procDir: `${dir}/missing` });
    assert.deepEqual([...values.keys()].sort(), [
      "marketpipe_heap_total_bytes",
      "marketpipe_heap_used_bytes",
      "process_cpu_seconds_total",
      "process_cpu_system_seconds_total",
      "process_cpu_user_seconds_total",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
    ]);
    assert.equal(values.get("process_resident_memory_bytes")! > 0, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readProcessMetrics() in a new process: start time is its start, CPU counts work before the first read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-procstart-" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { readProcessMetrics } from ${
        JSON.stringify(new URL("./metrics.ts", import.meta.url).href)
      };
const ticks = () => {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
while (ticks() < 0.3) { /* CPU spent before anything reads the metrics */ }
const { samples } = readProcessMetrics();
console.log(JSON.stringify(Object.fromEntries(samples.map((s) => [s.name, s.value]))));
`,
    );
    const spawned = Date.now() / 1000;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", new URL("../deno.json", import.meta.url).pathname, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const exited = Date.now() / 1000;
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const values = JSON.parse(new TextDecoder().decode(out.stdout));
    // The clock's resolution aside, the child started after the spawn and before it exited.
    assert.ok(
      values.process_start_time_seconds >= spawned - 0.05,
      `${values.process_start_time_seconds} < ${spawned}`,
    );
    assert.ok(
      values.process_start_time_seconds <= exited,
      `${values.process_start_time_seconds} > ${exited}`,
    );
    // prom-client's collector would report ~0 here: it counts from its first collection.
    assert.ok(values.process_cpu_seconds_total >= 0.28, `cpu ${values.process_cpu_seconds_total}`);
    assert.ok(
      values.process_cpu_seconds_total <= (exited - spawned) * navigator.hardwareConcurrency,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
