/**
 * The alerting rules in grafana/alerts.yml: promtool accepts them, their unit tests pass, each
 * alert is tested firing and quiet, and they query series that a real scrape has. Also that
 * every PromQL expression of the Grafana dashboard parses.
 */
import { initialiseScheduleSeries } from "../core/metrics.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { openTelemetry } from "../storage/mod.ts";
import { AAPL_TWO_DAYS, runCli } from "./_cli.ts";

const GRAFANA = fileURLToPath(new URL("../grafana/", import.meta.url));

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Run promtool; a missing promtool fails the test, it does not skip it. */
async function promtool(args: string[]): Promise<{ code: number; output: string }> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("promtool", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "promtool missing: install prometheus (Debian/Ubuntu: apt-get install prometheus; .ci/run installs it)",
      );
    }
    throw error;
  }
  const decoder = new TextDecoder();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

async function alertRules(): Promise<AlertRule[]> {
  const file = parse(await Deno.readTextFile(`${GRAFANA}alerts.yml`));
  return file.groups.flatMap((g: { rules: AlertRule[] }) => g.rules);
}

Deno.test("promtool check rules accepts grafana/alerts.yml", async () => {
  const rules = await alertRules();
  const { code, output } = await promtool(["check", "rules", `${GRAFANA}alerts.yml`]);
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

Deno.test("promtool test rules passes grafana/alerts_test.yml", async () => {
  const { code, output } = await promtool(["test", "rules", `${GRAFANA}alerts_test.yml`]);
  assert.equal(code, 0, output);
  assert.match(output, /SUCCESS/);
});

Deno.test("each alert has for, a severity, a summary and a description, and is tested firing and quiet", async () => {
  const rules = await alertRules();
  const names = rules.map((r) => r.alert);
  for (
    const expected of [
      "MarketPipeDataStale",
      "MarketPipeJobsFailed",
      "MarketPipeProviderErrorRate",
      "MarketPipeProviderRateLimited",
      "MarketPipeEventLoopLag",
    ]
  ) {
    assert.ok(names.includes(expected), `${expected} is missing from alerts.yml`);
  }
  const tests = parse(await Deno.readTextFile(`${GRAFANA}alerts_test.yml`)).tests as {
    alert_rule_test: { alertname: string; exp_alerts?: unknown[] }[];
  }[];
  const cases = tests.flatMap((t) => t.alert_rule_test);
  for (const rule of rules) {
    assert.match(rule.for ?? "", /^\d+[smh]$/, `${rule.alert}: for`);
    assert.match(
      rule.labels?.severity ?? "",
      /^(critical|warning|info)$/,
      `${rule.alert}: severity`,
    );
    assert.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    assert.ok(rule.annotations?.description, `${rule.alert}: description`);
    const own = cases.filter((c) => c.alertname === rule.alert);
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length > 0),
      `${rule.alert} never fires in a test`,
    );
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length === 0),
      `${rule.alert} is never tested quiet`,
    );
  }
});

/** Grafana variables replaced by values PromQL accepts. */
function withoutGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)/g, "5m")
    .replace(/\$\{?\w+\}?/g, ".*");
}

/** `promtool check rules` of one recording rule per expression: it parses each as PromQL. */
async function checkPromql(expressions: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "mp-promql-" });
  try {
    const rules = {
      groups: [{
        name: "dashboard",
        rules: expressions.map((expr, i) => ({ record: `dashboard:expression_${i}`, expr })),
      }],
    };
    await Deno.writeTextFile(`${dir}/rules.yml`, JSON.stringify(rules, null, 2));
    return await promtool(["check", "rules", `${dir}/rules.yml`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every PromQL expression of the Grafana dashboard parses", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(`${GRAFANA}dashboards/marketpipe.json`));
  const expressions: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
    p.targets.map((t) => withoutGrafanaVariables(t.expr))
  );
  // Template variables: label_values(METRIC, LABEL) is Grafana's; METRIC is PromQL.
  for (const variable of dashboard.templating.list as { definition: string }[]) {
    const match = /^label_values\((.+),\s*\w+\)$/.exec(variable.definition);
    assert.ok(match, `unexpected variable query ${variable.definition}`);
    expressions.push(withoutGrafanaVariables(match[1]));
  }
  assert.ok(expressions.length >= 12, `${expressions.length} expressions`);
  const { code, output } = await checkPromql(expressions);
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${expressions.length} rules found`));
  // The same check refuses a broken expression, so it does parse.
  const broken = await checkPromql([
    'sum by (provider (rate(mp_requests_total{provider=~".*"}[5m]))',
  ]);
  assert.notEqual(broken.code, 0, broken.output);
});

Deno.test("every metric and label the alerts query exists in a real scrape after an ingest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-alerts-" });
  try {
    const ingest = await runCli(["ingest", ...AAPL_TWO_DAYS, "--data-dir", dir]);
    assert.equal(ingest.code, 0, ingest.stderr);
    const telemetry = await openTelemetry(dir, { flushEveryMs: 60_000 });
    let text: string;
    try {
      // As `serve` does for the schedules of its config (cli/serve.ts).
      initialiseScheduleSeries(telemetry.metrics, ["nightly"]);
      text = await telemetry.scrape();
    } finally {
      await telemetry.close();
    }
    const families = new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
    const labelsOf = (family: string) =>
      new Set(
        [...text.matchAll(new RegExp(`^${family}\\{([^}]*)\\}`, "gm"))].flatMap((m) =>
          [...m[1].matchAll(/(\w+)="/g)].map((l) => l[1])
        ),
      );
    for (const rule of await alertRules()) {
      const metrics = [...rule.expr.matchAll(/\b((?:mp|marketpipe)_[a-z_]+)/g)].map((m) => m[1]);
      if (rule.alert === "MarketPipeDown") continue; // `up` is Prometheus's own
      assert.ok(metrics.length > 0, `${rule.alert}: no MarketPipe metric in ${rule.expr}`);
      const used = [
        ...[...rule.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) =>
          m[1].split(",").map((l) => l.trim())
        ),
        ...[...rule.expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) =>
          [...m[1].matchAll(/(\w+)\s*=~?/g)].map((l) => l[1])
        ),
        ...Object.values(rule.annotations ?? {}).flatMap((a) =>
          [...a.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1])
        ),
      ].filter((l) => l !== "instance" && l !== "job"); // added by Prometheus when it scrapes
      for (const metric of metrics) {
        assert.ok(families.has(metric), `${rule.alert}: ${metric} is not in the scrape`);
        const labels = labelsOf(metric);
        for (const label of used) {
          if (metrics.every((m) => m === metric)) {
            assert.ok(labels.has(label), `${rule.alert}: label ${label} is not on ${metric}`);
          }
        }
      }
    }
    // The stale-data alert's series exists once data is stored, and counts sessions.
    assert.match(text, /^mp_data_sessions_behind\{timeframe="1m"\} \d+$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
