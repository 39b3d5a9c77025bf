/**
 * Schedules of `marketpipe serve`: the config file's `schedules:` list and `notify:` webhook,
 * checked into plain {@link Schedule} values, and the pure arithmetic of when each fires: cron
 * expressions in a time zone (croner) and calendar triggers relative to each NYSE session
 * (`after-close: 30m`, `before-open: 15m`; early closes followed, holidays never fire).
 *
 * @module
 */
import { Cron } from "croner";
import { EXCHANGE_TIME_ZONE, exchangeDate, isTradingDay, nextTradingDay } from "./calendar.ts";
import { addDays, CALENDAR_YEARS, tradingSession } from "./calendar.ts";
import { isMapping, parseConfigYaml } from "./config.ts";
import { didYouMean, UsageError } from "./errors.ts";
import { zoneParts } from "./format.ts";

/** Commands a schedule may run, as typed after `marketpipe`. */
export const SCHEDULABLE_COMMANDS = [
  "update",
  "backfill",
  "aggregate",
  "validate",
  "prune",
  "symbols update",
  "compact",
] as const;

/** A command a schedule may run. */
export type SchedulableCommand = typeof SCHEDULABLE_COMMANDS[number];

/** What a schedule does when its next time comes while its previous run still goes. */
export type OverlapPolicy = "skip" | "queue";

/** Which of the runs missed while `serve` was down are run at start. */
export type CatchUpPolicy = "latest" | "all" | "none";

/** When a schedule fires. */
export type Trigger =
  | {
    kind: "cron";
    /** Five-field cron expression (minute hour day-of-month month day-of-week) or `@daily`. */
    cron: string;
    /** IANA time zone the expression is read in; default America/New_York. */
    tz: string;
    /** Fire only when the New York date of the fire time is a trading day. */
    tradingDaysOnly: boolean;
  }
  | {
    kind: "after-close" | "after-post" | "before-open";
    /**
     * Milliseconds after the close (16:00 ET, 13:00 on early closes), after the end of the
     * after-hours session (`after-post`: 20:00 ET, 17:00 on early closes; when intraday bars of
     * the day count as complete) or before the open (09:30 ET) of each trading session.
     */
    offsetMs: number;
  };

/** One checked entry of the config file's `schedules:` list. */
export interface Schedule {
  /** Unique name, letters, digits, `-`, `_` and `.`. */
  name: string;
  command: SchedulableCommand;
  /** Arguments after the command, as on the command line (`["--timeframe", "1m"]`). */
  args: string[];
  when: Trigger;
  /** Default `skip`. */
  overlap: OverlapPolicy;
  /** Default `latest`. */
  catchUp: CatchUpPolicy;
  /** Further attempts after a failed run before alerting; default 2. */
  retries: number;
  /** Wait before the first retry, doubled for each further one (at most 1 h); default 5 min. */
  backoffMs: number;
}

/** Where failed runs and stale series are reported: `notify: {url: ...}`. */
export interface NotifyConfig {
  /** `http:` or `https:` URL that receives a JSON POST. */
  url: string;
  /** Extra request headers (e.g. an authorization token; masked in logs). */
  headers: Record<string, string>;
  /** Further attempts after a failed delivery; default 3. */
  retries: number;
}

/** The schedule part of a config file. */
export interface SchedulesConfig {
  schedules: Schedule[];
  notify?: NotifyConfig;
}

/** Longest `after-close` / `before-open` offset: a fire time stays on its session's day. */
export const MAX_SESSION_OFFSET_MS = 6 * 3_600_000;

/** Longest `after-post` offset: after 20:00 New York, a fire time stays before midnight. */
export const MAX_POST_OFFSET_MS = 3 * 3_600_000 + 59 * 60_000;

/** Most runs {@link missedRuns} lists, so a per-minute cron after a month down stays small. */
export const MAX_MISSED_RUNS = 1_000;

const _MAX_BACKOFF_MS = 3_600_000;
const _SCHEDULE_KEYS = [
  "name",
  "command",
  "args",
  "when",
  "overlap",
  "catch-up",
  "retries",
  "backoff",
] as const;
const _WHEN_KEYS = [
  "cron",
  "tz",
  "trading-days-only",
  "after-close",
  "after-post",
  "before-open",
] as const;
const _NOTIFY_KEYS = ["url", "headers", "retries"] as const;

/**
 * The `schedules:` and `notify:` keys of a config file's text (other keys are left to
 * `parseConfigFile`), checked. Errors name the schedule and the field:
 * `Invalid schedules[2].when.cron "61 * * * *" in config file c.yaml: ...`.
 *
 * @example
 * ```ts
 * const { schedules } = readSchedulesConfig(
 *   "schedules:\n  - {name: daily, command: update, when: {after-close: 30m}}\n",
 *   "marketpipe.yaml",
 * );
 * nextRuns(schedules[0], Date.now(), 3);
 * ```
 */
export function readSchedulesConfig(text: string, path: string): SchedulesConfig {
  const parsed = parseConfigYaml(text, path);
  if (parsed === null || parsed === undefined) return { schedules: [] };
  if (!isMapping(parsed)) {
    throw new UsageError(
      `Invalid config file ${path}: expected a mapping of option names to values`,
    );
  }
  const doc = _normalizeKeys(parsed);
  return parseSchedulesConfig(
    { schedules: doc.schedules, notify: doc.notify },
    `config file ${path}`,
  );
}

/**
 * Check the values of `schedules:` and `notify:` (already parsed from YAML); `source` names
 * where they came from in errors (`config file marketpipe.yaml`).
 */
export function parseSchedulesConfig(
  input: { schedules?: unknown; notify?: unknown },
  source: string,
): SchedulesConfig {
  const where = `in ${source}`;
  const schedules: Schedule[] = [];
  if (input.schedules !== undefined && input.schedules !== null) {
    if (!Array.isArray(input.schedules)) {
      throw new UsageError(`Invalid schedules ${where}: expected a list of schedules`);
    }
    const names = new Set<string>();
    input.schedules.forEach((entry, i) => {
      const schedule = _parseSchedule(entry, `schedules[${i}]`, where);
      if (names.has(schedule.name)) {
        throw new UsageError(
          `Invalid schedules[${i}].name "${schedule.name}" ${where}: another schedule has this name`,
        );
      }
      names.add(schedule.name);
      schedules.push(schedule);
    });
  }
  const notify = input.notify === undefined || input.notify === null
    ? undefined
    : _parseNotify(input.notify, where);
  return notify === undefined ? { schedules } : { schedules, notify };
}

/**
 * The next `count` fire times of `schedule` strictly after `after` (epoch ms), ascending.
 * Calendar triggers fire once per trading session; cron ones as croner reads the expression in
 * the schedule's time zone (a wall time skipped by a DST switch fires at the next valid one).
 * Fewer than `count` when the calendar (ending 2100) runs out.
 */
export function nextRuns(schedule: Pick<Schedule, "when">, after: number, count: number): number[] {
  const out: number[] = [];
  const when = schedule.when;
  if (count <= 0) return out;
  if (when.kind === "cron") {
    const cron = _cronOf(when.cron, when.tz);
    let cursor = after;
    while (out.length < count) {
      const next = cron.nextRun(new Date(cursor))?.getTime();
      if (next === undefined || new Date(next).getUTCFullYear() > CALENDAR_YEARS.last) break;
      cursor = next;
      if (when.tradingDaysOnly && !isTradingDay(exchangeDate(next))) continue;
      out.push(next);
    }
    return out;
  }
  // Offsets stay within 6 h, so a session's fire time is on its own day or the one after.
  let date = addDays(exchangeDate(after), -1);
  if (!isTradingDay(date)) date = nextTradingDay(date);
  while (out.length < count) {
    const at = _sessionFireTime(date, when);
    if (at > after) out.push(at);
    try {
      date = nextTradingDay(date);
    } catch (error) {
      if (error instanceof RangeError) break;
      throw error;
    }
  }
  return out;
}

/**
 * Fire times of `schedule` in `(from, to]` (epoch ms), ascending: the runs missed while nothing
 * ran them. At most `limit` (default {@link MAX_MISSED_RUNS}), the latest ones kept.
 */
export function missedRuns(
  schedule: Pick<Schedule, "when">,
  from: number,
  to: number,
  limit: number = MAX_MISSED_RUNS,
): number[] {
  const out: number[] = [];
  let cursor = from;
  while (cursor < to) {
    const batch = nextRuns(schedule, cursor, 64);
    for (const at of batch) {
      if (at > to) return out;
      out.push(at);
      if (out.length > limit) out.shift();
    }
    if (batch.length < 64) break;
    cursor = batch[batch.length - 1];
  }
  return out;
}

/**
 * Which missed fire times run at start under the schedule's catch-up policy: the latest, all
 * of them, or none.
 */
export function catchUpRuns(policy: CatchUpPolicy, missed: readonly number[]): number[] {
  if (policy === "none" || missed.length === 0) return [];
  return policy === "latest" ? [missed[missed.length - 1]] : [...missed];
}

/** Wait before retry number `retry` (1 = the first retry): the backoff doubled per retry, at most 1 h. */
export function retryDelay(schedule: Pick<Schedule, "backoffMs">, retry: number): number {
  return Math.min(_MAX_BACKOFF_MS, schedule.backoffMs * 2 ** Math.max(0, retry - 1));
}

/** The trigger in words, as `schedule list` shows it: `30m after the close`, `cron "0 6 * * *" (Europe/London)`. */
export function describeTrigger(when: Trigger): string {
  if (when.kind === "cron") {
    const days = when.tradingDaysOnly ? ", trading days only" : "";
    return `cron "${when.cron}" (${when.tz}${days})`;
  }
  const offset = _formatOffset(when.offsetMs);
  return when.kind === "after-close"
    ? `${offset} after the close`
    : when.kind === "after-post"
    ? `${offset} after the after-hours session`
    : `${offset} before the open`;
}

/** `YYYY-MM-DD HH:MM` in New York time (or `tz`), with its zone abbreviation, e.g. `2024-07-03 13:30 EDT`. */
export function formatZoned(ms: number, tz: string = EXCHANGE_TIME_ZONE): string {
  const parts = zoneParts(ms, tz);
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}

function _sessionFireTime(
  date: string,
  when: { kind: "after-close" | "after-post" | "before-open"; offsetMs: number },
): number {
  const session = tradingSession(date)!;
  return when.kind === "after-close"
    ? session.close + when.offsetMs
    : when.kind === "after-post"
    ? session.postClose + when.offsetMs
    : session.open - when.offsetMs;
}

function _parseSchedule(entry: unknown, field: string, where: string): Schedule {
  if (!isMapping(entry)) {
    throw new UsageError(
      `Invalid ${field} ${where}: expected a mapping with name, command and when`,
    );
  }
  const raw = _normalizeKeys(entry);
  // An unknown key names the schedule when its name reads as one.
  const named = typeof raw.name === "string" && raw.name.trim() !== ""
    ? `for schedule "${raw.name}" ${where}`
    : where;
  _checkKeys(raw, _SCHEDULE_KEYS, field, named);
  for (const key of ["name", "command", "when"] as const) {
    if (raw[key] === undefined || raw[key] === null) {
      throw new UsageError(`Missing ${field}.${key} ${where}`);
    }
  }
  const name = raw.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new UsageError(
      `Invalid ${field}.name ${
        _shown(name)
      } ${where}: expected up to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  // Later errors name the schedule too: `schedules[2].when.cron ... for schedule "nightly"`.
  const w = `for schedule "${name}" ${where}`;
  const command = raw.command;
  if (
    typeof command !== "string" ||
    !(SCHEDULABLE_COMMANDS as readonly string[]).includes(command.trim().replace(/\s+/g, " "))
  ) {
    throw new UsageError(
      `Invalid ${field}.command ${_shown(command)} ${w}${
        typeof command === "string" ? didYouMean(command, SCHEDULABLE_COMMANDS) : ""
      }: expected one of ${SCHEDULABLE_COMMANDS.join(", ")}`,
    );
  }
  return {
    name,
    command: command.trim().replace(/\s+/g, " ") as SchedulableCommand,
    args: _parseArgs(raw.args, `${field}.args`, w),
    when: _parseWhen(raw.when, `${field}.when`, w),
    overlap: _parseChoice(raw.overlap, ["skip", "queue"], "skip", `${field}.overlap`, w),
    catchUp: _parseChoice(
      raw["catch-up"],
      ["latest", "all", "none"],
      "latest",
      `${field}.catch-up`,
      w,
    ),
    retries: _parseCount(raw.retries, 2, 10, `${field}.retries`, w),
    backoffMs: raw.backoff === undefined
      ? 300_000
      : _parseOffset(raw.backoff, `${field}.backoff`, w, 1_000, _MAX_BACKOFF_MS),
  };
}

function _parseWhen(value: unknown, field: string, where: string): Trigger {
  if (typeof value === "string") {
    // `when: "30 16 * * 1-5"` is shorthand for `when: {cron: ...}`.
    return _parseWhen({ cron: value }, field, where);
  }
  if (!isMapping(value)) {
    throw new UsageError(
      `Invalid ${field} ${where}: expected {cron: "30 16 * * 1-5", tz: ...}, {after-close: 30m}, {after-post: 15m} or {before-open: 15m}`,
    );
  }
  const raw = _normalizeKeys(value);
  _checkKeys(raw, _WHEN_KEYS, field, where);
  const kinds = (["cron", "after-close", "after-post", "before-open"] as const).filter((k) =>
    raw[k] !== undefined
  );
  if (kinds.length !== 1) {
    throw new UsageError(
      `Invalid ${field} ${where}: expected exactly one of cron, after-close, after-post, before-open${
        kinds.length > 1 ? `, got ${kinds.join(" and ")}` : ""
      }`,
    );
  }
  const kind = kinds[0];
  if (kind !== "cron") {
    for (const key of ["tz", "trading-days-only"]) {
      if (raw[key] !== undefined) {
        throw new UsageError(
          `Invalid ${field}.${key} ${where}: only a cron trigger takes it (${kind} follows the NYSE calendar in New York time)`,
        );
      }
    }
    return {
      kind,
      offsetMs: _parseOffset(
        raw[kind],
        `${field}.${kind}`,
        where,
        0,
        kind === "after-post" ? MAX_POST_OFFSET_MS : MAX_SESSION_OFFSET_MS,
      ),
    };
  }
  const tz = raw.tz ?? EXCHANGE_TIME_ZONE;
  if (typeof tz !== "string" || !_isTimeZone(tz)) {
    throw new UsageError(
      `Invalid ${field}.tz ${
        _shown(tz)
      } ${where}: expected an IANA time zone such as America/New_York`,
    );
  }
  const cron = raw.cron;
  if (typeof cron !== "string") {
    throw new UsageError(`Invalid ${field}.cron ${_shown(cron)} ${where}: expected a string`);
  }
  const fields = cron.trim().split(/\s+/);
  if (!(cron.trim().startsWith("@") ? fields.length === 1 : fields.length === 5)) {
    throw new UsageError(
      `Invalid ${field}.cron "${cron}" ${where}: expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`,
    );
  }
  try {
    _cronOf(cron.trim(), tz).nextRun();
  } catch (error) {
    throw new UsageError(
      `Invalid ${field}.cron "${cron}" ${where}: ${
        String((error as Error).message).replace(/^CronPattern: /, "")
      }`,
      { cause: error },
    );
  }
  const tradingDaysOnly = raw["trading-days-only"] ?? false;
  if (typeof tradingDaysOnly !== "boolean") {
    throw new UsageError(
      `Invalid ${field}.trading-days-only ${
        _shown(tradingDaysOnly)
      } ${where}: expected true or false`,
    );
  }
  return { kind: "cron", cron: cron.trim(), tz, tradingDaysOnly };
}

/** `args` as a list of strings, or a mapping of flags (`{timeframe: 1m, aggregate: true}`). */
function _parseArgs(value: unknown, field: string, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) {
    return value.map((item, i) => {
      if (typeof item === "string" || (typeof item === "number" && Number.isFinite(item))) {
        return String(item);
      }
      throw new UsageError(`Invalid ${field}[${i}] ${_shown(item)} ${where}: expected a string`);
    });
  }
  if (!isMapping(value)) {
    throw new UsageError(
      `Invalid ${field} ${where}: expected a list of arguments or a mapping of flags to values`,
    );
  }
  const args: string[] = [];
  for (const [rawKey, item] of Object.entries(value)) {
    const key = rawKey.replaceAll("_", "-");
    if (!/^[a-z][a-z0-9-]*$/.test(key)) {
      throw new UsageError(`Invalid ${field} key "${rawKey}" ${where}: expected a flag name`);
    }
    if (item === true) args.push(`--${key}`);
    else if (item === false) args.push(`--no-${key}`);
    else if (typeof item === "string") args.push(`--${key}`, item);
    else if (typeof item === "number" && Number.isFinite(item)) args.push(`--${key}`, String(item));
    else if (item instanceof Date) args.push(`--${key}`, item.toISOString().slice(0, 10));
    else if (
      Array.isArray(item) && item.every((v) => typeof v === "string" || typeof v === "number")
    ) {
      args.push(`--${key}`, item.join(","));
    } else {
      throw new UsageError(
        `Invalid ${field}.${rawKey} ${where}: expected a string, number, boolean or list`,
      );
    }
  }
  return args;
}

function _parseNotify(value: unknown, where: string): NotifyConfig {
  if (!isMapping(value)) {
    throw new UsageError(`Invalid notify ${where}: expected {url: https://...}`);
  }
  const raw = _normalizeKeys(value);
  _checkKeys(raw, _NOTIFY_KEYS, "notify", where);
  const protocol = typeof raw.url === "string" ? URL.parse(raw.url)?.protocol : undefined;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new UsageError(
      `Invalid notify.url ${_shown(raw.url, true)} ${where}: expected an http or https URL`,
    );
  }
  const headers: Record<string, string> = {};
  if (raw.headers !== undefined) {
    if (!isMapping(raw.headers)) {
      throw new UsageError(
        `Invalid notify.headers ${where}: expected a mapping of names to values`,
      );
    }
    for (const [name, item] of Object.entries(raw.headers)) {
      if (typeof item !== "string" || !/^[A-Za-z0-9-]+$/.test(name)) {
        throw new UsageError(
          `Invalid notify.headers.${name} ${where}: expected a header name with a string value`,
        );
      }
      headers[name] = item;
    }
  }
  return {
    url: String(raw.url),
    headers,
    retries: _parseCount(raw.retries, 3, 10, "notify.retries", where),
  };
}

function _parseChoice<T extends string>(
  value: unknown,
  choices: readonly T[],
  fallback: T,
  field: string,
  where: string,
): T {
  if (value === undefined) return fallback;
  if (typeof value === "string" && (choices as readonly string[]).includes(value)) {
    return value as T;
  }
  throw new UsageError(
    `Invalid ${field} ${_shown(value)} ${where}${
      typeof value === "string" ? didYouMean(value, choices) : ""
    }: expected one of ${choices.join(", ")}`,
  );
}

function _parseCount(
  value: unknown,
  fallback: number,
  max: number,
  field: string,
  where: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max) {
    return value;
  }
  throw new UsageError(
    `Invalid ${field} ${_shown(value)} ${where}: expected a whole number from 0 to ${max}`,
  );
}

/** `30m`, `1h`, `90s`, `1h30m`, or a number of minutes. */
function _parseOffset(
  value: unknown,
  field: string,
  where: string,
  min: number,
  max: number,
): number {
  let ms: number | undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) ms = value * 60_000;
  if (typeof value === "string") {
    const match = /^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$/.exec(value.trim());
    if (match && value.trim() !== "") {
      ms = (Number(match[1] ?? 0) * 3_600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0)) *
        1_000;
    }
  }
  if (ms === undefined || ms < min || ms > max) {
    throw new UsageError(
      `Invalid ${field} ${_shown(value)} ${where}: expected a duration from ${
        _formatOffset(min)
      } to ${_formatOffset(max)} such as 30m, 1h or 1h30m`,
    );
  }
  return ms;
}

function _formatOffset(ms: number): string {
  if (ms === 0) return "0m";
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1_000);
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}`;
}

function _checkKeys(
  raw: Record<string, unknown>,
  known: readonly string[],
  field: string,
  where: string,
): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new UsageError(
        `Unknown key "${key}" in ${field} ${where}${didYouMean(key, known)}: expected ${
          known.join(", ")
        }`,
      );
    }
  }
}

function _cronOf(pattern: string, tz: string): Cron {
  // Paused and without a function: croner computes times and never starts a timer.
  return new Cron(pattern, { timezone: tz, paused: true });
}

function _isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Keys with `_` read as `-`, as the rest of the config file does (`catch_up` is `catch-up`). */
function _normalizeKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replaceAll("_", "-"), v]));
}

function _shown(value: unknown, url = false): string {
  if (typeof value === "string") return `"${url ? value.replace(/\?.*$/, "?...") : value}"`;
  if (value === undefined) return "(missing)";
  return JSON.stringify(value) ?? String(value);
}
