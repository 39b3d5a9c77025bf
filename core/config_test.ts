import assert from "node:assert/strict";
import {
  type OptionSpec,
  parseConfigFile,
  parseDuration,
  parseIntOption,
  parseNumberOption,
  parseRetentionAge,
  parseRetentionPolicy,
  resolveOptions,
  retentionCutoff,
} from "./config.ts";
import { UsageError } from "./errors.ts";

const KEYS = new Set(["data-dir", "symbols", "workers", "force", "start", "fake-gap-rate"]);

const SPECS: OptionSpec[] = [
  { name: "data-dir", type: "string", description: "", env: "MP_DATA_DIR", default: "./data" },
  { name: "workers", type: "string", description: "", env: "MP_WORKERS", default: "4" },
  { name: "symbols", type: "string", description: "" },
  { name: "force", type: "boolean", description: "", env: "MP_FORCE", default: false },
  { name: "verbose", type: "boolean", description: "", default: false },
  { name: "resume", type: "string", description: "", configurable: false },
];

function usageError(message: string | RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

Deno.test("parseConfigFile() reads keys spelled like the long flags", () => {
  const config = parseConfigFile("data-dir: /srv/data\nworkers: 8\nforce: true\n", "mp.yaml", KEYS);
  assert.deepEqual(config, { "data-dir": "/srv/data", workers: "8", force: true });
});

Deno.test("parseConfigFile() leaves the scheduler's schedules and notify keys to it", () => {
  const text = "# settings\ndata-dir: ./d\nschedules:\n  - name: a\nnotify: {url: x}\nworkers: 2\n";
  assert.deepEqual(parseConfigFile(text, "mp.yaml", KEYS), { "data-dir": "./d", workers: "2" });
});

Deno.test("parseConfigFile() accepts snake_case keys as their kebab-case flags", () => {
  const config = parseConfigFile("data_dir: /srv/data\nfake_gap_rate: 0.5\n", "mp.yaml", KEYS);
  assert.deepEqual(config, { "data-dir": "/srv/data", "fake-gap-rate": "0.5" });
});

Deno.test("parseConfigFile() joins lists with commas", () => {
  assert.deepEqual(parseConfigFile("symbols: [AAPL, MSFT, BRK.B]\n", "mp.yaml", KEYS), {
    symbols: "AAPL,MSFT,BRK.B",
  });
  assert.deepEqual(parseConfigFile("symbols:\n  - AAPL\n  - SPY\n", "mp.yaml", KEYS), {
    symbols: "AAPL,SPY",
  });
});

Deno.test("parseConfigFile() keeps a date value as YYYY-MM-DD text", () => {
  assert.deepEqual(parseConfigFile("start: 2024-03-04\n", "mp.yaml", KEYS), {
    start: "2024-03-04",
  });
});

Deno.test("parseConfigFile() returns nothing for an empty file or only comments", () => {
  assert.deepEqual(parseConfigFile("", "mp.yaml", KEYS), {});
  assert.deepEqual(parseConfigFile("# nothing set\n", "mp.yaml", KEYS), {});
});

Deno.test("parseConfigFile() rejects an unknown key naming the closest valid key", () => {
  assert.throws(
    () => parseConfigFile("symbol: AAPL\n", "mp.yaml", KEYS),
    usageError('Unknown key "symbol" in config file mp.yaml (did you mean "symbols"?)'),
  );
});

Deno.test("parseConfigFile() suggests the flag spelling for an unknown snake_case key", () => {
  assert.throws(
    () => parseConfigFile("data_dri: x\n", "mp.yaml", KEYS),
    usageError('Unknown key "data_dri" in config file mp.yaml (did you mean "data-dir"?)'),
  );
});

Deno.test("parseConfigFile() rejects an unknown key without a suggestion when nothing is close", () => {
  assert.throws(
    () => parseConfigFile("backtest: yes\n", "mp.yaml", KEYS),
    usageError('Unknown key "backtest" in config file mp.yaml'),
  );
});

Deno.test("parseConfigFile() rejects a root that is not a mapping", () => {
  for (const text of ["- AAPL\n- MSFT\n", "just text\n", "42\n"]) {
    assert.throws(
      () => parseConfigFile(text, "mp.yaml", KEYS),
      usageError("Invalid config file mp.yaml: expected a mapping of option names to values"),
      text,
    );
  }
});

Deno.test("parseConfigFile() reports a YAML syntax error on one line with the file name", () => {
  assert.throws(
    () => parseConfigFile("symbols: [AAPL, MSFT\nworkers: 2\n", "mp.yaml", KEYS),
    (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(
        error.message,
        /^Cannot parse config file mp\.yaml: .+ at line \d+, column \d+$/,
      );
      assert.ok(
        !error.message.includes("\n"),
        `message spans lines: ${JSON.stringify(error.message)}`,
      );
      assert.ok(error.cause instanceof Error);
      return true;
    },
  );
});

Deno.test("parseConfigFile() rejects nested mappings and empty values naming the key", () => {
  assert.throws(
    () => parseConfigFile("workers:\n  min: 1\n", "mp.yaml", KEYS),
    usageError(
      'Invalid value for "workers" in config file mp.yaml: expected a string, number, boolean or list',
    ),
  );
  assert.throws(
    () => parseConfigFile("data_dir:\n", "mp.yaml", KEYS),
    usageError(/^Invalid value for "data_dir" in config file mp\.yaml/),
  );
});

Deno.test("resolveOptions() prefers flags over env over config over defaults", () => {
  const resolved = resolveOptions(
    SPECS,
    { workers: "16" },
    { MP_WORKERS: "8", MP_DATA_DIR: "/env/data" },
    { workers: "2", "data-dir": "/cfg/data", symbols: "AAPL,MSFT" },
  );
  assert.deepEqual(resolved.values, {
    "data-dir": "/env/data",
    workers: "16",
    symbols: "AAPL,MSFT",
    force: false,
    verbose: false,
    resume: undefined,
  });
  assert.deepEqual(resolved.sources, {
    "data-dir": "env",
    workers: "flag",
    symbols: "config",
    force: "default",
    verbose: "default",
    resume: "default",
  });
});

Deno.test("resolveOptions() takes the config value when neither flag nor env is set", () => {
  const resolved = resolveOptions(SPECS, {}, {}, { workers: "2", force: true });
  assert.equal(resolved.values.workers, "2");
  assert.equal(resolved.sources.workers, "config");
  assert.equal(resolved.values.force, true);
  assert.equal(resolved.sources.force, "config");
});

Deno.test("resolveOptions() treats an empty environment variable as unset", () => {
  const resolved = resolveOptions(SPECS, {}, { MP_DATA_DIR: "" }, { "data-dir": "/cfg" });
  assert.equal(resolved.values["data-dir"], "/cfg");
  assert.equal(resolved.sources["data-dir"], "config");
});

Deno.test("resolveOptions() keeps a false boolean flag over a true env value", () => {
  const resolved = resolveOptions(SPECS, { force: false }, { MP_FORCE: "1" }, {});
  assert.equal(resolved.values.force, false);
  assert.equal(resolved.sources.force, "flag");
});

Deno.test("resolveOptions() ignores config values of options that are not configurable", () => {
  const resolved = resolveOptions(SPECS, {}, {}, { resume: "20240304-120000-abcd" });
  assert.equal(resolved.values.resume, undefined);
  assert.equal(resolved.sources.resume, "default");
});

Deno.test("resolveOptions() parses boolean environment variables", () => {
  for (const text of ["1", "true", "TRUE", "yes", "On"]) {
    const resolved = resolveOptions(SPECS, {}, { MP_FORCE: text }, {});
    assert.equal(resolved.values.force, true, text);
    assert.equal(resolved.sources.force, "env", text);
  }
  for (const text of ["0", "false", "No", "off"]) {
    assert.equal(resolveOptions(SPECS, {}, { MP_FORCE: text }, {}).values.force, false, text);
  }
});

Deno.test("resolveOptions() rejects a boolean environment variable that is not a boolean", () => {
  assert.throws(
    () => resolveOptions(SPECS, {}, { MP_FORCE: "maybe" }, {}),
    usageError('Invalid $MP_FORCE "maybe": expected true or false'),
  );
});

Deno.test("resolveOptions() rejects a boolean option set to text in the config file", () => {
  assert.throws(
    () => resolveOptions(SPECS, {}, {}, { force: "yes" }, "config file mp.yaml"),
    usageError(
      'Invalid value for "force" in config file mp.yaml: expected true or false, got "yes"',
    ),
  );
});

Deno.test("resolveOptions() rejects a string option set to a boolean in the config file", () => {
  assert.throws(
    () => resolveOptions(SPECS, {}, {}, { workers: true }, "config file mp.yaml"),
    usageError('Invalid value for "workers" in config file mp.yaml: expected a value, got true'),
  );
});

Deno.test("parseIntOption() accepts whole numbers within the bounds", () => {
  assert.equal(parseIntOption("1", "--workers", 1, 64), 1);
  assert.equal(parseIntOption("64", "--workers", 1, 64), 64);
  assert.equal(parseIntOption(" 8 ", "--workers", 1, 64), 8);
  assert.equal(parseIntOption("-5", "--offset", -10, 10), -5);
});

Deno.test("parseIntOption() rejects values out of bounds or not whole, naming option and value", () => {
  for (const text of ["0", "65", "1.5", "abc", "", "8x", "1e2", "-1"]) {
    assert.throws(
      () => parseIntOption(text, "--workers", 1, 64),
      usageError(`Invalid --workers "${text}": expected a whole number from 1 to 64`),
      text,
    );
  }
});

Deno.test("parseNumberOption() accepts numbers within inclusive bounds", () => {
  assert.equal(parseNumberOption("0", "--fake-gap-rate", 0, 0.99), 0);
  assert.equal(parseNumberOption("0.99", "--fake-gap-rate", 0, 0.99), 0.99);
  assert.equal(parseNumberOption("0.25", "--fake-gap-rate", 0, 0.99), 0.25);
});

Deno.test("parseNumberOption() rejects the maximum when it is exclusive", () => {
  assert.equal(parseNumberOption("0.5", "--rate", 0, 1, true), 0.5);
  assert.throws(
    () => parseNumberOption("1", "--rate", 0, 1, true),
    usageError('Invalid --rate "1": expected a number from 0 to 1 (exclusive)'),
  );
});

Deno.test("parseNumberOption() rejects text, blanks, infinities and out-of-range values", () => {
  for (const text of ["abc", "", " ", "Infinity", "NaN", "-0.1", "1.5"]) {
    assert.throws(
      () => parseNumberOption(text, "--fake-gap-rate", 0, 0.99),
      usageError(`Invalid --fake-gap-rate "${text}": expected a number from 0 to 0.99`),
      text,
    );
  }
});

Deno.test("parseDuration() converts each unit to milliseconds", () => {
  assert.equal(parseDuration("45s", "--older-than"), 45_000);
  assert.equal(parseDuration("90m", "--older-than"), 90 * 60_000);
  assert.equal(parseDuration("12h", "--older-than"), 12 * 3_600_000);
  assert.equal(parseDuration("30d", "--older-than"), 30 * 86_400_000);
  assert.equal(parseDuration("2w", "--older-than"), 14 * 86_400_000);
  assert.equal(parseDuration(" 7d ", "--older-than"), 7 * 86_400_000);
});

Deno.test("parseDuration() rejects values without a unit or with a fraction, naming the value", () => {
  for (const text of ["30", "d", "1.5h", "-1d", "30y", "", "thirty days"]) {
    assert.throws(
      () => parseDuration(text, "--older-than"),
      usageError(`Invalid --older-than "${text}": expected a duration like 30d, 12h, 90m or 45s`),
      text,
    );
  }
});

Deno.test("parseConfigFile() reads a validation mapping as --validation text", () => {
  const keys = new Set([...KEYS, "validation"]);
  const config = parseConfigFile(
    [
      "workers: 2",
      "validation:",
      "  rules:",
      "    extreme_move: { threshold: 0.3 }",
      "    stale_price:",
      "      enabled: false",
    ].join("\n"),
    "mp.yaml",
    keys,
  );
  assert.deepEqual(config, {
    workers: "2",
    validation: "extreme_move.threshold=0.3,stale_price.enabled=false",
  });
});

Deno.test("parseConfigFile() names the key of a bad validation rule setting", () => {
  const keys = new Set([...KEYS, "validation"]);
  assert.throws(
    () =>
      parseConfigFile(
        "validation:\n  rules:\n    extreme_mov: { threshold: 0.3 }\n",
        "mp.yaml",
        keys,
      ),
    usageError(
      'Unknown key "validation.rules.extreme_mov" in config file mp.yaml (did you mean "validation.rules.extreme_move"?)',
    ),
  );
  assert.throws(
    () =>
      parseConfigFile(
        "validation:\n  rules:\n    extreme_move: { threshold: -1 }\n",
        "mp.yaml",
        keys,
      ),
    usageError(
      'Invalid value for "validation.rules.extreme_move.threshold" in config file mp.yaml: expected a number from 0.001 to 100, got -1',
    ),
  );
});

Deno.test("parseConfigFile() still refuses other nested mappings, and validation where it is unknown", () => {
  const keys = new Set([...KEYS, "validation"]);
  assert.throws(
    () => parseConfigFile("workers: { n: 2 }\n", "mp.yaml", keys),
    usageError(/Invalid value for "workers" in config file mp.yaml/),
  );
  assert.throws(
    () => parseConfigFile("validation:\n  rules: {}\n", "mp.yaml", KEYS),
    usageError('Unknown key "validation" in config file mp.yaml'),
  );
});

Deno.test("parseRetentionAge() reads days, weeks, months and years, and names a bad value", () => {
  assert.deepEqual(parseRetentionAge("30d", "retention"), { count: 30, unit: "d" });
  assert.deepEqual(parseRetentionAge("8w", "retention"), { count: 8, unit: "w" });
  assert.deepEqual(parseRetentionAge("18mo", "retention"), { count: 18, unit: "mo" });
  assert.deepEqual(parseRetentionAge(" 2y ", "retention"), { count: 2, unit: "y" });
  for (const text of ["2x", "0y", "1.5y", "y", "-2y", ""]) {
    assert.throws(
      () => parseRetentionAge(text, "retention for 1m"),
      usageError(
        `Invalid retention for 1m "${text}": expected an age like 30d, 8w, 18mo or 2y (days, weeks, months, years)`,
      ),
    );
  }
  assert.throws(
    () => parseRetentionAge("6m", "retention for 1m"),
    usageError(/"6m": .*m would be minutes, months are mo/),
  );
});

Deno.test("parseRetentionPolicy() reads TF=AGE pairs and refuses unknown timeframes and repeats", () => {
  assert.deepEqual(
    [...parseRetentionPolicy("1m=2y, 5m=5y", "--retention-policy")],
    [["1m", { count: 2, unit: "y" }], ["5m", { count: 5, unit: "y" }]],
  );
  assert.throws(
    () => parseRetentionPolicy("1m=2x", "--retention-policy"),
    usageError(
      'Invalid retention for 1m "2x" in --retention-policy: expected an age like 30d, 8w, 18mo or 2y (days, weeks, months, years)',
    ),
  );
  assert.throws(
    () => parseRetentionPolicy("2m=1y", "--retention-policy"),
    usageError(/unknown timeframe "2m" \(did you mean "1m"\?\)/),
  );
  assert.throws(() => parseRetentionPolicy("1m=1y,1m=2y", "x"), usageError(/given twice/));
  assert.throws(() => parseRetentionPolicy("1m", "x"), usageError(/expected TF=AGE/));
});

Deno.test("retentionCutoff() steps calendar days, weeks, months and years back from today", () => {
  assert.equal(retentionCutoff({ count: 30, unit: "d" }, "2026-03-15"), "2026-02-13");
  assert.equal(retentionCutoff({ count: 2, unit: "w" }, "2026-03-01"), "2026-02-15");
  assert.equal(retentionCutoff({ count: 1, unit: "mo" }, "2026-03-31"), "2026-02-28");
  assert.equal(retentionCutoff({ count: 18, unit: "mo" }, "2026-12-01"), "2025-06-01");
  assert.equal(retentionCutoff({ count: 2, unit: "y" }, "2024-02-29"), "2022-02-28");
  assert.equal(retentionCutoff({ count: 5, unit: "y" }, "2026-12-01"), "2021-12-01");
});

Deno.test("parseConfigFile() reads a retention mapping as --retention-policy text", () => {
  const keys = new Set(["retention", "retention-policy"]);
  assert.deepEqual(parseConfigFile("retention:\n  1m: 2y\n  5m: 5y\n", "c.yaml", keys), {
    "retention-policy": "1m=2y,5m=5y",
  });
  // A plain age stays what it was: the metric history's retention.
  assert.deepEqual(parseConfigFile("retention: 30d\n", "c.yaml", keys), { retention: "30d" });
  assert.throws(
    () => parseConfigFile("retention:\n  1m: 2x\n", "c.yaml", keys),
    usageError(
      'Invalid retention for 1m "2x" in config file c.yaml: expected an age like 30d, 8w, 18mo or 2y (days, weeks, months, years)',
    ),
  );
  assert.throws(
    () => parseConfigFile("retention:\n  1m: [1, 2]\n", "c.yaml", keys),
    usageError(/"retention.1m" in config file c.yaml: expected an age like 2y/),
  );
});
