/** Human-readable numbers, durations, times and sizes for terminals and pages. */

/** `12,345` style integer formatting. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Seconds or minutes, e.g. `1.2s`, `3m 04s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return minutes < 60
    ? `${minutes}m ${String(seconds).padStart(2, "0")}s`
    : `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * Where printed times are shown: `exchange` (America/New_York, the default of the CLI), `utc`,
 * or `local` (the zone of the process, from `TZ`).
 */
export type TimeZoneSetting = "exchange" | "utc" | "local";

/** Every {@link TimeZoneSetting}, the values of `--tz`. */
export const TIME_ZONE_SETTINGS: readonly TimeZoneSetting[] = Object.freeze(
  [
    "exchange",
    "utc",
    "local",
  ] as const,
);

const _EXCHANGE_ZONE = "America/New_York";
const _zoneFormats = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock fields {@link zoneParts} returns. */
export type ZonePart = "year" | "month" | "day" | "hour" | "minute" | "second" | "timeZoneName";

/**
 * The wall-clock fields of an instant in an IANA `zone` (default: the process's zone), two
 * digits each (hours 00-23, the year four), and the zone's short name (`EST`, `GMT+1`): the one
 * place that asks `Intl` for them, so every server-side time text reads the same clock.
 */
export function zoneParts(ms: number, zone?: string): Record<ZonePart, string> {
  const part: Record<string, string> = {};
  for (const { type, value } of _zoneFormat(zone).formatToParts(ms)) part[type] = value;
  return part as Record<ZonePart, string>;
}

/**
 * An instant as ISO 8601 in exchange (New York) time with its offset,
 * `2024-03-04T09:30:00-05:00`: the API's times are ISO UTC, and this field says the same
 * instant as the exchange's clock reads it.
 */
export function exchangeIso(ms: number): string {
  const part = zoneParts(ms, _EXCHANGE_ZONE);
  const wall = `${part.year}-${part.month}-${part.day}T${part.hour}:${part.minute}:${part.second}`;
  const offset = Math.round((Date.parse(`${wall}Z`) - Math.floor(ms / 1000) * 1000) / 60_000);
  return wall + _offsetText(offset);
}

/** A UTC offset of `minutes` as `+HH:MM` / `-HH:MM`. */
function _offsetText(minutes: number): string {
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  return `${minutes < 0 ? "-" : "+"}${hh}:${String(abs % 60).padStart(2, "0")}`;
}

function _zoneFormat(zone: string | undefined): Intl.DateTimeFormat {
  const key = zone ?? "";
  let format = _zoneFormats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    _zoneFormats.set(key, format);
  }
  return format;
}

/**
 * Epoch ms as text with its zone named: without `tz` the legacy `2024-03-04 15:30:12Z`; with it
 * `2024-03-04 10:30:12 ET` (exchange), `2024-03-04 15:30:12 UTC`, or the local time with the
 * zone's short name (`2024-03-04 16:30:12 GMT+1`). `-` for no time.
 *
 * @example
 * ```ts
 * formatTime(Date.parse("2024-03-04T15:30:12Z"), "exchange"); // "2024-03-04 10:30:12 ET"
 * ```
 */
export function formatTime(ms: number | null | undefined, tz?: TimeZoneSetting): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (tz === undefined) return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + "Z";
  if (tz === "utc") return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  const part = zoneParts(ms, tz === "exchange" ? _EXCHANGE_ZONE : undefined);
  const zone = tz === "exchange" ? "ET" : part.timeZoneName;
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${zone}`;
}

/** An ISO-8601 instant (as query results hold TIMESTAMPTZ values) in `tz`; other text unchanged. */
export function formatIsoTime(text: string, tz: TimeZoneSetting): string {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(text)) return text;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return text;
  const formatted = formatTime(ms, tz);
  // Keep sub-second digits when the value has them.
  const fraction = /\.(\d+)Z$/.exec(text)?.[1];
  return fraction && !/^0+$/.test(fraction)
    ? formatted.replace(/^(\S+ \S+)/, `$1.${fraction}`)
    : formatted;
}

/**
 * Numbers of one column (prices), each with as many decimals as the most precise needs, so
 * they line up: `[1, 2.5, 3.125]` -> `["1.000", "2.500", "3.125"]`. At most `maxDecimals`
 * (default 4), except that values below 1 keep 4 significant digits; at least `minDecimals`
 * (default 0). Non-finite values are printed as they are.
 */
export function formatPrices(
  values: readonly number[],
  options: { minDecimals?: number; maxDecimals?: number } = {},
): string[] {
  const max = options.maxDecimals ?? 4;
  const decimals = Math.max(options.minDecimals ?? 0, ...values.map((v) => _decimalsOf(v, max)));
  return values.map((v) => Number.isFinite(v) ? v.toFixed(Math.min(decimals, 20)) : String(v));
}

/** Decimals `value` needs: what rounding to `max` (or 4 significant digits below 1) leaves. */
function _decimalsOf(value: number, max: number): number {
  if (!Number.isFinite(value) || value === 0) return 0;
  const abs = Math.abs(value);
  const cap = abs < 1 ? Math.min(20, Math.max(max, 3 - Math.floor(Math.log10(abs)))) : max;
  const text = abs.toFixed(cap).replace(/0+$/, "");
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

/**
 * An instant as ISO 8601 in `tz`: `2024-03-04T14:30:00.000Z` for utc, with the zone's offset
 * otherwise (`2024-03-04T09:30:00.000-05:00` for exchange time).
 */
export function formatIsoInZone(ms: number, tz: TimeZoneSetting): string {
  const iso = new Date(ms).toISOString();
  if (tz === "utc") return iso;
  const offsetMs = _zoneOffsetMs(ms, tz === "exchange" ? _EXCHANGE_ZONE : undefined);
  const local = new Date(ms + offsetMs).toISOString().slice(0, -1);
  return local + _offsetText(Math.round(offsetMs / 60_000));
}

/** Offset of `zone` (undefined: the process's) from UTC at `ms`, in ms. */
function _zoneOffsetMs(ms: number, zone: string | undefined): number {
  const p = zoneParts(ms, zone);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/** Bytes as `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * One argument as a POSIX shell (and bash with history expansion) reads it back unchanged: as it
 * is when it holds only safe characters, in double quotes when nothing in it expands there, else
 * in single quotes (`it's $HOME` -> `'it'\''s $HOME'`).
 *
 * @example
 * ```ts
 * shellQuote("/data with space"); // "\"/data with space\""
 * shellQuote("$HOME's data"); // "'$HOME'\\''s data'"
 * ```
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  // Double quotes read best for SQL (`"... = 'AAPL'"`) and are safe without $ ` \ " ! in them.
  if (!/["$`\\!]/.test(arg)) return `"${arg}"`;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command line to suggest to the user: each argument quoted with {@link shellQuote}. */
export function shellCommand(args: readonly string[]): string {
  return args.map(shellQuote).join(" ");
}
