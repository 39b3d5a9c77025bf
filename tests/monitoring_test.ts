/**
 * Monitoring end to end: metrics recorded by one process are exposed by another, pass promtool,
 * reach a real Prometheus, survive restarts, and match what the Grafana dashboard queries.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { DatabaseSync } from "node:sqlite";
import { IN_PROCESS_PROVIDERS, JOB_OUTCOMES, RATE_LIMIT_WAIT_MODES } from "../core/metrics.ts";
import { VALIDATION_RULES } from "../core/validate.ts";
import { providers } from "../providers/mod.ts";
import { META_FILE } from "../storage/mod.ts";
import { finish, json, runCli, spawnCli, waitFor } from "./_cli.ts";

const GRAFANA = fileURLToPath(new URL("../grafana/", import.meta.url));

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

/** Start `marketpipe metrics --port` on a free port and wait until it answers. */
async function startMetricsServer(
  dataDir: string,
  extra: string[] = [],
  env: Record<string, string> = {},
  command: "metrics" | "serve" = "metrics",
) {
  const port = freePort();
  const child = spawnCli([command, "--port", String(port), "--data-dir", dataDir, ...extra], {
    env,
  });
  const url = `http://127.0.0.1:${port}/metrics`;
  await waitFor(
    async () => {
      try {
        const response = await fetch(url);
        await response.body?.cancel();
        return response.ok;
      } catch {
        return false;
      }
    },
    20_000,
    "the metrics server",
  );
  return {
    url,
    port,
    scrape: async () => await (await fetch(url)).text(),
    async stop() {
      child.kill("SIGTERM");
      const result = await finish(child);
      assert.equal(result.code, 0, result.stderr);
    },
  };
}

/** `name{labels} value` samples of an exposition. */
function parseScrape(
  text: string,
): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    out.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return out;
}

function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  return parseScrape(text).filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).reduce((n, s) => n + s.value, 0);
}

async function ingest(
  dataDir: string,
  symbols: string,
  start: string,
  end: string,
  env: Record<string, string> = {},
) {
  const result = await runCli([
    "ingest",
    "--symbols",
    symbols,
    "--start",
    start,
    "--end",
    end,
    "--data-dir",
    dataDir,
    "--json",
  ], {
    env,
  });
  assert.equal(result.code, 0, result.stderr);
  return json<{ barsWritten: number; barsReplaced: number }>(result);
}

Deno.test("an ingest's counters appear in another process's scrape, which passes promtool", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  const server = await startMetricsServer(dir, ["--legacy-metrics"]);
  try {
    assert.equal(sumOf(await server.scrape(), "mp_ingest_rows_total"), 0);
    const summary = await ingest(dir, "AAPL,MSFT", "2024-03-04", "2024-03-08");
    const text = await server.scrape();
    assert.equal(
      sumOf(text, "mp_ingest_rows_total", { provider: "fake", timeframe: "1m" }),
      summary.barsWritten,
    );
    assert.equal(sumOf(text, "mp_jobs_total", { outcome: "succeeded" }), 1);
    assert.equal(sumOf(text, "mp_jobs_running"), 0);
    const freshness = parseScrape(text).filter((s) =>
      s.name === "mp_data_last_bar_timestamp_seconds"
    );
    assert.deepEqual(freshness.map((s) => s.labels.symbol).sort(), ["AAPL", "MSFT"]);
    assert.ok(freshness.every((s) => s.value >= Date.UTC(2024, 2, 8, 20) / 1000 - 3600));
    assert.ok(text.includes("# TYPE mp_requests_legacy_total counter"));
    if (!(await hasCommand("promtool"))) {
      throw new Error("promtool missing: install the Debian package prometheus");
    }
    const check = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const writer = check.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const out = await check.output();
    assert.equal(
      out.code,
      0,
      new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    );
  } finally {
    await server.stop();
  }
});

Deno.test("the first scrape of a fresh data dir has every known counter at 0, in metrics --port and serve", async () => {
  for (const command of ["metrics", "serve"] as const) {
    const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
    const spawned = Date.now() / 1000;
    const server = await startMetricsServer(dir, [], {}, command);
    let text: string;
    try {
      text = await server.scrape();
    } finally {
      await server.stop();
    }
    const scraped = Date.now() / 1000;
    const samples = parseScrape(text);
    const zeroAt = (name: string, labels: Record<string, string>) => {
      const found = samples.filter((s) =>
        s.name === name && Object.keys(s.labels).length === Object.keys(labels).length &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      );
      assert.deepEqual(
        found.map((s) => s.value),
        [0],
        `${command}: ${name}${JSON.stringify(labels)} at 0 in the first scrape`,
      );
    };
    for (const { info } of Object.values(providers)) {
      // The fake provider sends no HTTP requests: it has no request or error series.
      for (const feed of IN_PROCESS_PROVIDERS.includes(info.name) ? [] : info.feeds) {
        zeroAt("mp_errors_total", { provider: info.name, feed, code: "429" });
        zeroAt("mp_errors_total", { provider: info.name, feed, code: "timeout" });
        zeroAt("mp_requests_total", { provider: info.name, feed, status: "2xx" });
      }
      for (const mode of RATE_LIMIT_WAIT_MODES) {
        zeroAt("mp_rate_limiter_waits_total", { provider: info.name, mode });
      }
    }
    for (const outcome of JOB_OUTCOMES) zeroAt("mp_jobs_total", { outcome });
    for (const rule of VALIDATION_RULES) {
      zeroAt("mp_validation_errors_total", { rule: rule.id, severity: rule.severity });
    }
    // Served from the stored totals: metric_series has them before anything happened.
    const db = new DatabaseSync(`${dir}/${META_FILE}`, { readOnly: true });
    try {
      const stored = db.prepare(
        "SELECT count(*) AS n FROM metric_series WHERE name = 'mp_errors_total' AND value = 0",
      ).get()!;
      assert.ok(Number(stored.n) >= Object.keys(providers).length, `${command}: stored zeros`);
    } finally {
      db.close();
    }
    assert.doesNotMatch(text, /^nodejs_/m, `${command}: prom-client's broken Deno defaults`);
    assert.doesNotMatch(text, / NaN$/m);
    // The server process started after the spawn (to the kernel's 10 ms tick) and before it
    // answered.
    const start = samples.find((s) => s.name === "process_start_time_seconds")!.value;
    assert.ok(start >= spawned - 0.05 && start <= scraped, `${command}: start time ${start}`);
    const cpu = samples.find((s) => s.name === "process_cpu_seconds_total")!.value;
    assert.ok(cpu > 0 && cpu <= (scraped - start) * navigator.hardwareConcurrency, `cpu ${cpu}`);
  }
});

Deno.test("counters never go backwards when serve restarts between ingests", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  const first = await ingest(dir, "SPY", "2024-03-04", "2024-03-05");
  let server = await startMetricsServer(dir, ["--legacy-metrics"], {}, "serve");
  const firstScrape = await server.scrape();
  assert.ok(firstScrape.includes("# TYPE mp_requests_legacy_total counter"));
  const before = sumOf(firstScrape, "mp_ingest_rows_total");
  assert.equal(before, first.barsWritten);
  await server.stop();
  const second = await ingest(dir, "SPY", "2024-03-06", "2024-03-07");
  server = await startMetricsServer(dir, [], {}, "serve");
  try {
    const after = sumOf(await server.scrape(), "mp_ingest_rows_total");
    assert.equal(after, first.barsWritten + second.barsWritten);
    assert.ok(after >= before);
  } finally {
    await server.stop();
  }
});

Deno.test("the metrics server answers 404, 405 and 431 like a careful server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  const server = await startMetricsServer(dir, [], { METRICS_MAX_HEADER_SIZE: "1024" });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const notFound = await fetch(`${base}/nope`);
    assert.equal(notFound.status, 404);
    await notFound.body?.cancel();
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    const big = await fetch(`${base}/metrics`, { headers: { "X-Padding": "x".repeat(2000) } });
    assert.equal(big.status, 431);
    await big.body?.cancel();
  } finally {
    await server.stop();
  }
});

Deno.test("a real Prometheus scraping serve sees exactly the rows a separate ingest process wrote", async () => {
  if (!(await hasCommand("prometheus"))) {
    throw new Error(
      "prometheus binary missing: install the Debian package prometheus (.ci/run installs it)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  const server = await startMetricsServer(dir, [], {}, "serve");
  const promPort = freePort();
  const promDir = await Deno.makeTempDir({ prefix: "mp-prom-" });
  await Deno.writeTextFile(
    `${promDir}/prometheus.yml`,
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: marketpipe\n    scrape_interval: 1s\n    static_configs:\n      - targets: ["127.0.0.1:${server.port}"]\n`,
  );
  const prometheus = new Deno.Command("prometheus", {
    args: [
      `--config.file=${promDir}/prometheus.yml`,
      `--storage.tsdb.path=${promDir}/tsdb`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const summary = await ingest(dir, "AAPL,NVDA,QQQ", "2024-03-04", "2024-03-06");
    const query = async () => {
      try {
        const response = await fetch(
          `http://127.0.0.1:${promPort}/api/v1/query?query=${
            encodeURIComponent("sum(mp_ingest_rows_total)")
          }`,
        );
        const body = await response.json();
        return Number(body?.data?.result?.[0]?.value?.[1] ?? NaN);
      } catch {
        return NaN;
      }
    };
    await waitFor(
      async () => (await query()) === summary.barsWritten,
      60_000,
      "Prometheus to report the ingested rows",
    );
    assert.equal(await query(), summary.barsWritten);
  } finally {
    prometheus.kill("SIGTERM");
    await prometheus.status;
    await server.stop();
  }
});

Deno.test("every metric and label the Grafana dashboard queries exists in a real scrape of serve", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  await ingest(dir, "AAPL", "2024-03-04", "2024-03-04");
  const server = await startMetricsServer(dir, [], {}, "serve");
  let text: string;
  try {
    text = await server.scrape();
  } finally {
    await server.stop();
  }
  const check = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = check.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const checked = await check.output();
  assert.equal(
    checked.code,
    0,
    "serve's /metrics fails promtool: " + new TextDecoder().decode(checked.stdout),
  );
  const families = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(match[1], match[2]);
  const samples = parseScrape(text);
  const dashboard = JSON.parse(await Deno.readTextFile(`${GRAFANA}dashboards/marketpipe.json`));
  const expressions: { expr: string; legend: string }[] = dashboard.panels.flatMap((
    p: { targets: { expr: string; legendFormat?: string }[] },
  ) => p.targets.map((t) => ({ expr: t.expr, legend: t.legendFormat ?? "" })));
  expressions.push(
    ...dashboard.templating.list.map((v: { definition: string }) => ({
      expr: v.definition,
      legend: "",
    })),
  );
  assert.ok(expressions.length >= 10);
  const functions = new Set([
    "sum",
    "rate",
    "increase",
    "histogram_quantile",
    "max",
    "time",
    "by",
    "label_values",
  ]);
  for (const { expr, legend } of expressions) {
    const names = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)]
      .map((m) => m[1]).filter((n) => n.startsWith("mp_") || n.startsWith("marketpipe_"));
    assert.ok(names.length > 0, `no metric in ${expr}`);
    for (const name of names) {
      const family = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
      assert.ok(families.has(family), `${name} (in ${expr}) is not in the scrape`);
      const labelNames = new Set(["le"]);
      for (const s of samples.filter((s) => s.name.startsWith(family))) {
        for (const l of Object.keys(s.labels)) {
          labelNames.add(l);
        }
      }
      const used = [
        ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) =>
          [...m[1].matchAll(/([a-zA-Z_]+)\s*=~?/g)].map((x) => x[1])
        ),
        ...[...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) =>
          m[1].split(",").map((s) => s.trim())
        ),
        ...[...legend.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]),
      ].filter((l) => !functions.has(l));
      const hasSamples = samples.some((s) => s.name.startsWith(family));
      if (hasSamples) {
        for (const label of used) {
          assert.ok(labelNames.has(label), `${expr}: label "${label}" is not on ${family}`);
        }
      }
    }
  }
});

Deno.test("metrics history commands print the recorded values and a terminal-sized plot", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-mon-" });
  const a = await ingest(dir, "AAPL", "2024-03-04", "2024-03-05");
  const b = await ingest(dir, "MSFT", "2024-03-04", "2024-03-04");
  const list = json<{ name: string; last: number; samples: number }[]>(
    await runCli(["metrics", "--list", "--json", "--data-dir", dir]),
  );
  const rows = list.find((m) => m.name === "mp_ingest_rows_total")!;
  assert.equal(rows.last, a.barsWritten + b.barsWritten);
  assert.ok(rows.samples >= 2);
  const history = json<{ series: { total: number }[]; points: { value: number }[] }>(
    await runCli([
      "metrics",
      "--metric",
      "mp_ingest_rows_total",
      "--since",
      "1h",
      "--json",
      "--data-dir",
      dir,
    ]),
  );
  assert.equal(history.points.at(-1)!.value, a.barsWritten + b.barsWritten);
  const buckets = json<{ points: { value: number }[] }>(
    await runCli([
      "metrics",
      "--metric",
      "mp_ingest_rows_total",
      "--since",
      "2h",
      "--avg",
      "1h",
      "--json",
      "--data-dir",
      dir,
    ]),
  );
  assert.equal(buckets.points.reduce((n, p) => n + p.value, 0), a.barsWritten + b.barsWritten);
  const plot = await runCli([
    "metrics",
    "--metric",
    "mp_ingest_rows_total",
    "--since",
    "1h",
    "--plot",
    "--data-dir",
    dir,
  ], {
    env: { COLUMNS: "60" },
  });
  assert.equal(plot.code, 0, plot.stderr);
  const lines = plot.stdout.trimEnd().split("\n");
  const chart = lines.filter((l) => l.includes("┤") || l.includes("└"));
  assert.ok(chart.length >= 6, plot.stdout);
  assert.ok(chart.every((l) => l.length <= 60), `chart wider than 60:\n${plot.stdout}`);
  assert.ok(
    chart.some((l) => l.length >= 55),
    `chart should use the terminal width:\n${plot.stdout}`,
  );
  assert.match(
    chart[0],
    new RegExp(`^\\s*${(a.barsWritten + b.barsWritten) / 1000 >= 10 ? "[\\d.]+k" : "\\d+"} ┤`),
  );
  assert.ok(lines.some((l) => l.includes("●")));
  const unknown = await runCli(["metrics", "--metric", "mp_ingest_row_total", "--data-dir", dir]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /did you mean "mp_ingest_rows_total"/);
});

Deno.test("grafana/prometheus.yml passes promtool check config and the compose stack references real files", async () => {
  if (await hasCommand("promtool")) {
    const out = await new Deno.Command("promtool", {
      args: ["check", "config", `${GRAFANA}prometheus.yml`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(
      out.code,
      0,
      new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    );
  } else {
    throw new Error("promtool missing: install the Debian package prometheus");
  }
  const { parse } = await import("yaml");
  const compose = parse(await Deno.readTextFile(`${GRAFANA}docker-compose.yml`));
  assert.deepEqual(Object.keys(compose.services).sort(), ["grafana", "marketpipe", "prometheus"]);
  for (const service of Object.values(compose.services) as { volumes?: string[] }[]) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(":")[0];
      if (source.startsWith("./")) await Deno.stat(`${GRAFANA}${source.slice(2)}`);
    }
  }
  assert.equal(compose.services.marketpipe.build.dockerfile, "grafana/Dockerfile");
  await Deno.stat(`${GRAFANA}Dockerfile`);
  const scrape = parse(await Deno.readTextFile(`${GRAFANA}prometheus.yml`));
  assert.deepEqual(scrape.scrape_configs[0].static_configs[0].targets, ["marketpipe:8000"]);
  const dockerfile = await Deno.readTextFile(`${GRAFANA}Dockerfile`);
  assert.match(dockerfile, /EXPOSE 8000/);
  assert.match(dockerfile, /"serve", "--host", "0\.0\.0\.0", "--port", "8000"/);
  const datasource = parse(
    await Deno.readTextFile(`${GRAFANA}provisioning/datasources/prometheus.yml`),
  );
  const dashboard = JSON.parse(await Deno.readTextFile(`${GRAFANA}dashboards/marketpipe.json`));
  for (const panel of dashboard.panels) {
    assert.equal(panel.datasource.uid, datasource.datasources[0].uid);
  }
});
