/**
 * What the CLI prints, as a user at a terminal sees it: the progress bar in a pseudo-terminal
 * (`script`), help, tables and times as fixed-width golden text, the serve access log.
 */
import assert from "node:assert/strict";
import { progressReporter } from "../cli/format.ts";
import { shellCommand } from "../core/format.ts";
import { cliEnv, MAIN, runCli, spawnCli } from "./_cli.ts";

const INGEST = ["ingest", "--provider", "fake", "--symbols", "AAPL", "--start", "2024-03-04"];

/** A data directory with two jobs of the fake provider (their ids share the date prefix). */
async function withJobs(fn: (dir: string, ids: string[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mp-cli-output-" });
  try {
    const ids: string[] = [];
    for (const end of ["2024-03-05", "2024-03-06"]) {
      const run = await runCli([...INGEST, "--end", end, "--force", "--data-dir", dir, "--json"]);
      assert.equal(run.code, 0, run.stderr);
      ids.push(JSON.parse(run.stdout).job.id);
    }
    await fn(dir, ids);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Run `marketpipe args...` in a pseudo-terminal; returns what the terminal received. */
async function runInTerminal(args: string[], env: Record<string, string> = {}): Promise<string> {
  const command = shellCommand([Deno.execPath(), "run", "-A", "--quiet", MAIN, ...args]);
  const output = await new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    env: cliEnv({ TERM: "xterm", ...env }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, text + new TextDecoder().decode(output.stderr));
  return text;
}

Deno.test("ingest in a terminal ends its progress bar with a newline before the summary", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-cli-output-" });
  try {
    const text = await runInTerminal([...INGEST, "--end", "2024-03-08", "--data-dir", dir]);
    // The bar is redrawn in place (\r + erase line), and its final state stays on a line of its own.
    const shown = text.replaceAll("\x1b[2K", "<erase>");
    assert.match(shown, /\r<erase>\[#{24}\] 1\/1 symbols, [\d,]+ bars, [\d,]+ bars\/s\r?\n/, text);
    assert.match(text, /\r?\nsymbol {2}new bars {2}updated/, text);
    assert.ok(!/bars\/ssymbol/.test(text), text);
    assert.ok(!/ETA [^\r\n]*\r?\nsymbol/.test(text), "the final line has no ETA");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an interrupted ingest says its final count and how to resume it with --data-dir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-cli-output-" });
  try {
    const child = spawnCli([
      "ingest",
      "--provider",
      "fake",
      "--symbols",
      "AAPL,MSFT,SPY,QQQ,IBM,TSLA",
      "--start",
      "2022-01-03",
      "--end",
      "2024-06-28",
      "--data-dir",
      dir,
    ]);
    const stdout = new Response(child.stdout).text();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "";
    // The first progress line: the job is running (it takes seconds, the signal comes now).
    while (!/\n +\d+% /.test(err)) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    assert.equal((await child.status).code, 130, err);
    const out = await stdout;
    const id = /Starting job (\S+):/.exec(err)![1];
    // The log's last line is the count where it stopped, without an ETA.
    const progress = err.split("\n").filter((l) => /^ *\d+% /.test(l));
    assert.match(progress.at(-1)!, /^ *\d+% \d\/6 symbols, [\d,]+ bars, [\d,]+ bars\/s$/, err);
    assert.ok(out.includes(`Job ${id} was interrupted. `), out);
    assert.ok(
      out.split("\n").includes(`Resume it: marketpipe ingest --resume ${id} --data-dir ${dir}`),
      out,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validate shows progress on a terminal, not when piped", async () => {
  await withJobs(async (dir) => {
    const args = ["validate", "--symbols", "AAPL", "--start", "2024-03-04", "--end", "2024-03-06"];
    const text = await runInTerminal([...args, "--data-dir", dir]);
    const shown = text.replaceAll("\x1b[2K", "<erase>");
    assert.match(shown, /<erase>\[#{24}\] 1\/1 symbols, [\d,]+ bars checked\r?\n/, text);
    assert.match(text, /\r?\nsymbol +bars +errors/, text);
    const piped = await runCli([...args, "--data-dir", dir]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.ok(!/bars checked|\[#/.test(piped.stderr + piped.stdout), piped.stderr);
    // Report times in the zone asked for, named.
    const list = await runCli(["validate", "--list", "--data-dir", dir]);
    assert.match(
      list.stdout,
      /^v\S+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ET\s+-\s+1m\s+AAPL/m,
      list.stdout,
    );
    const utc = await runCli(["validate", "--list", "--tz", "utc", "--data-dir", dir]);
    assert.match(utc.stdout, /^v\S+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+-\s+1m/m, utc.stdout);
  });
});

Deno.test("progressReporter().finish() leaves an interrupted run's final count on its own line", () => {
  const drawn: string[] = [];
  const lines: string[] = [];
  let now = 1_000;
  const report = progressReporter({
    status: (text) => drawn.push(text),
    err: (line) => lines.push(line),
    now: () => now,
  });
  report(1, 10, "1/10 tasks", 1_000);
  now = 1_050; // within the redraw interval: not drawn, but remembered
  report(3, 10, "3/10 tasks", 3_000);
  report.finish();
  assert.deepEqual(drawn, ["[##......................] 1/10 tasks ETA 9.0s"]);
  // Through err (which clears the bar and ends the line), the last count, without an ETA.
  assert.deepEqual(lines, ["[#######.................] 3/10 tasks"]);
  report.finish();
  assert.equal(lines.length, 1, "a second finish() prints nothing");

  // Without a terminal: a line per 10%, and finish() adds the count only when it is new.
  const log: string[] = [];
  const plain = progressReporter({ err: (line) => log.push(line) });
  plain(10, 10, "10/10 tasks", 1_000);
  plain.finish();
  assert.deepEqual(log, ["100% 10/10 tasks"]);
  const cut: string[] = [];
  const interrupted = progressReporter({ err: (line) => cut.push(line) });
  interrupted(20, 100, "20/100", 100);
  interrupted(25, 100, "25/100", 150); // same decile: not logged
  interrupted.finish();
  assert.deepEqual(cut, [" 20% 20/100 ETA 0.4s", " 25% 25/100"]);
});

Deno.test("--help keeps its columns apart at 80 columns (golden)", async () => {
  const run = await runCli(["serve", "--help"]);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split("\n");
  const at = lines.findIndex((l) => l.startsWith("      --query-timeout SECONDS"));
  assert.deepEqual(lines.slice(at - 3, at + 4), [
    "      --max-heavy N           DuckDB-backed requests at once; 64 more wait,",
    "                              beyond that 503 (default: 4)",
    "      --max-jobs N            Ingest jobs the server runs at once (default: 2)",
    "      --query-timeout SECONDS",
    "                              Longest a query or bars read may run (default: 30)",
    "  -q, --quiet                 No access log line per request on stderr",
    "      --memory-limit SIZE     Memory the query engine may use, e.g. 4GB or 25%",
  ]);
  for (const command of [["--help"], ["ingest", "--help"], ["query", "--help"]]) {
    const help = (await runCli(command)).stdout;
    const options = help.split("\n").filter((l) => /^ {2}(-\w, | {4})--/.test(l));
    assert.ok(options.length > 3, command.join(" "));
    for (const line of options) {
      assert.ok(line.length <= 80, `${command.join(" ")}: ${line}`);
      // The description starts at column 30 after at least two spaces, or on the next line.
      assert.ok(line.length <= 28 || /^.{28} {2}\S/.test(line) || !/ {2}/.test(line.trim()), line);
    }
  }
});

Deno.test("jobs show numbers tasks from 1 and prints params as text; --tz names the zone", async () => {
  await withJobs(async (dir, [id]) => {
    const show = await runCli(["jobs", "show", id, "--data-dir", dir]);
    assert.equal(show.code, 0, show.stderr);
    const lines = show.stdout.split("\n");
    assert.ok(lines.includes("  params:     seed=0, gapRate=0.01"), show.stdout);
    assert.ok(!show.stdout.includes("{"), "no JSON in the text output");
    const header = lines.findIndex((l) => /^#\s+symbol\s+dates/.test(l));
    assert.match(lines[header + 2], /^1\s+AAPL\s+2024-03-04\.\.2024-03-05\s+2\s+done/);
    assert.match(lines.find((l) => l.startsWith("  created:"))!, / \d\d:\d\d:\d\d ET$/);

    const utc = await runCli(["jobs", "show", id, "--tz", "utc", "--data-dir", dir]);
    assert.match(utc.stdout, /^ {2}created: {4}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/m);
    const list = await runCli(["jobs", "list", "--tz", "utc", "--data-dir", dir]);
    assert.match(list.stdout, /^\S+\s+succeeded\s+fake\s+1m\s+AAPL\s+.* UTC\s+\S+$/m, list.stdout);
    const bad = await runCli(["jobs", "list", "--tz", "mars", "--data-dir", dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --tz "mars": expected one of exchange, utc, local/);
  });
});

Deno.test("an ambiguous job id prefix lists the jobs it matches", async () => {
  await withJobs(async (dir, ids) => {
    const prefix = ids[0].slice(0, 4);
    assert.ok(ids[1].startsWith(prefix));
    for (
      const args of [
        ["jobs", "show", prefix],
        ["validate", prefix],
        ["ingest", "--resume", prefix],
      ]
    ) {
      const run = await runCli([...args, "--data-dir", dir]);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      const listed =
        /^error: Ambiguous job "(\w+)": 2 job ids start with it \((\S+), (\S+)\); give more of the id$/m
          .exec(run.stderr);
      assert.ok(listed, `${args.join(" ")}: ${run.stderr}`);
      assert.equal(listed[1], prefix);
      assert.deepEqual([listed[2], listed[3]].sort(), [...ids].sort());
    }
    const none = await runCli(["jobs", "show", "nope", "--data-dir", dir]);
    assert.match(none.stderr, /^error: No job "nope" in .*; see marketpipe jobs list$/m);
  });
});

Deno.test("query prints each price column with one number of decimals and times in --tz", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mp-cli-output-" });
  try {
    const sql = "SELECT * FROM (VALUES (TIMESTAMPTZ '2024-03-04 14:30:00+00', 187.5::DOUBLE, 3), " +
      "(TIMESTAMPTZ '2024-07-01 13:30:00+00', 187.125::DOUBLE, 12), " +
      "(TIMESTAMPTZ '2024-07-01 13:31:00+00', 0.123456789::DOUBLE, 5)) t(ts, close, n)";
    const table = await runCli(["query", sql, "--data-dir", dir]);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(
      table.stdout,
      [
        "ts                         close   n",
        "----------------------  --------  --",
        "2024-03-04 09:30:00 ET  187.5000   3",
        "2024-07-01 09:30:00 ET  187.1250  12",
        "2024-07-01 09:31:00 ET    0.1235   5",
        "(3 rows)",
        "",
      ].join("\n"),
    );
    const utc = await runCli(["query", sql, "--tz", "utc", "--data-dir", dir]);
    assert.match(utc.stdout, /^2024-03-04 14:30:00 UTC +187\.5000 +3$/m, utc.stdout);
    const local = await runCli(["query", sql, "--tz", "local", "--data-dir", dir], {
      env: { TZ: "Asia/Tokyo" },
    });
    assert.match(local.stdout, /^2024-03-04 23:30:00 GMT\+9 /m, local.stdout);
    // CSV keeps ISO UTC for programs unless a zone is asked for; then ISO with its offset.
    const csv = await runCli(["query", sql, "--format", "csv", "--data-dir", dir]);
    assert.match(csv.stdout, /^2024-03-04T14:30:00\.000Z,187\.5,3$/m, csv.stdout);
    const csvEt = await runCli(["query", sql, "-f", "csv", "--tz", "exchange", "--data-dir", dir]);
    assert.match(csvEt.stdout, /^2024-03-04T09:30:00\.000-05:00,187\.5,3$/m, csvEt.stdout);
    assert.match(csvEt.stdout, /^2024-07-01T09:30:00\.000-04:00,187\.125,12$/m, csvEt.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve writes an access log line per request on stderr, none with --quiet", async () => {
  await withJobs(async (dir) => {
    for (const quiet of [false, true]) {
      const child = spawnCli([
        "serve",
        "--port",
        "0",
        "--data-dir",
        dir,
        ...(quiet ? ["--quiet"] : []),
      ]);
      const stderr = new Response(child.stderr).text();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!/http:\/\/127\.0\.0\.1:(\d+)\//.test(out)) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      const port = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out)![1];
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(await health.text(), '{"status":"ok"}');
      const api = await fetch(`http://127.0.0.1:${port}/api/jobs?token=s3cret&limit=1`);
      await api.body?.cancel();
      const missing = await fetch(`http://127.0.0.1:${port}/nope`);
      await missing.body?.cancel();
      child.kill("SIGINT");
      while (!(await reader.read()).done) { /* drain stdout */ }
      const result = { code: (await child.status).code, stderr: await stderr };
      assert.equal(result.code, 0, result.stderr);
      const log = result.stderr.split("\n").filter((l) => /^(GET|POST) /.test(l));
      if (quiet) {
        assert.deepEqual(log, [], result.stderr);
        continue;
      }
      assert.equal(log.length, 3, result.stderr);
      assert.match(log[0], /^GET \/healthz 200 15B \d+ms$/);
      assert.match(log[1], /^GET \/api\/jobs\?token=\*\*\*&limit=1 \d{3} \d+B \d+ms$/);
      assert.ok(!result.stderr.includes("s3cret"), "the query's secret is not logged");
      assert.match(log[2], /^GET \/nope 404 \d+B \d+ms$/);
    }
  });
});

Deno.test("metrics --plot draws one line per label set with a legend", async () => {
  await withJobs(async (dir) => {
    const validate = await runCli([
      "validate",
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-04",
      "--end",
      "2024-03-06",
      "--data-dir",
      dir,
    ]);
    assert.equal(validate.code, 0, validate.stderr);
    const run = await runCli(
      ["metrics", "--metric", "mp_processing_time_seconds", "--plot", "--data-dir", dir],
      { env: { COLUMNS: "72" } },
    );
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n").filter((l) => l !== "");
    const legend = lines.at(-1)!;
    assert.match(
      legend,
      /^ {2}● \{operation="ingest"\} {2}○ \{operation="validate"\}$/,
      run.stdout,
    );
    const chart = lines.filter((l) => l.includes("┤")).join("\n");
    assert.ok(chart.includes("●") && chart.includes("○"), run.stdout);
    // The x axis names its times; every line fits the width.
    const axis = lines[lines.findIndex((l) => l.includes("└")) + 1];
    assert.match(axis, /\d\d-\d\d \d\d:\d\d/);
    const plot = lines.slice(lines.findIndex((l) => l.includes("┤")));
    assert.ok(plot.every((l) => [...l].length <= 72), run.stdout);
    // The fake provider sends no HTTP requests: nothing of it in the request metrics.
    const requests = await runCli(["metrics", "--metric", "mp_requests_total", "--data-dir", dir]);
    assert.ok(!requests.stdout.includes('provider="fake"'), requests.stdout);
  });
});
