/**
 * Secret masking: API keys and tokens never reach logs, errors, printed URLs, job records or
 * metric labels. Every provider error message passes through {@link redact} or
 * {@link redactError} with the provider's secrets before it leaves the provider.
 *
 * @module
 */

/** What replaces a secret: `****` plus at most its last 4 characters. */
export const MASK = "****";

/** Secrets shorter than this are never shown, not even their last characters. */
const _SHOW_TAIL_FROM = 12;
/** Shorter values are not searched for: replacing every "ab" in a message would garble it. */
const _MIN_SECRET_LENGTH = 4;

/** Query parameter names that carry credentials in the providers' URLs (case-insensitive). */
export const SECRET_PARAMS: readonly string[] = [
  "apikey",
  "api_key",
  "token",
  "access_token",
  "key",
  "secret",
];

/**
 * `****` plus the last 4 characters of `secret` (only `****` for secrets under 12 characters).
 *
 * @example
 * ```ts
 * maskSecret("AKXXXXXXXXXXXXXXWXYZ"); // "****WXYZ"
 * ```
 */
export function maskSecret(secret: string): string {
  return secret.length >= _SHOW_TAIL_FROM ? `${MASK}${secret.slice(-4)}` : MASK;
}

/**
 * `text` with every occurrence of each secret (raw and percent-encoded) replaced by its mask,
 * and credential query parameters and userinfo passwords of any URL in it masked.
 */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  // Longest first, so a secret that contains another is replaced whole.
  const sorted = secrets
    .filter((s): s is string => typeof s === "string" && s.length >= _MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  for (const secret of sorted) {
    const mask = maskSecret(secret);
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      if (out.includes(form)) out = out.split(form).join(mask);
    }
  }
  return _maskQueryParams(out);
}

/** A URL as text with credential query parameters and a userinfo password replaced by `****`. */
export function redactUrl(url: string | URL): string {
  return _maskQueryParams(String(url));
}

/**
 * A copy of `error` safe to print: its message, stack and whole `cause` chain redacted. Errors
 * keep their class name; non-errors become strings.
 */
export function redactError(error: unknown, secrets: readonly (string | undefined)[]): unknown {
  return _redactError(error, secrets, 0);
}

function _redactError(
  error: unknown,
  secrets: readonly (string | undefined)[],
  depth: number,
): unknown {
  if (!(error instanceof Error)) {
    return error === undefined ? undefined : redact(String(error), secrets);
  }
  const cause = depth < 8 && error.cause !== undefined
    ? _redactError(error.cause, secrets, depth + 1)
    : undefined;
  const copy = new Error(redact(error.message, secrets), cause === undefined ? {} : { cause });
  copy.name = error.name;
  copy.stack = error.stack === undefined ? undefined : redact(error.stack, secrets);
  return copy;
}

const _PARAM_PATTERN = new RegExp(
  `([?&](?:${SECRET_PARAMS.join("|")})=)[^&#\\s)"']*`,
  "gi",
);

// `scheme://user:password@host`: the password of a proxy or base URL.
const _USERINFO_PATTERN = /(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^/\s@]+@/gi;

function _maskQueryParams(text: string): string {
  return text.replace(_PARAM_PATTERN, `$1${MASK}`).replace(_USERINFO_PATTERN, `$1${MASK}@`);
}
