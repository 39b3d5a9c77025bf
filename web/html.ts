/**
 * HTML built with one tagged template that escapes every interpolated value: the only way a
 * value reaches a page is through {@link html}, so user input is always text, never markup.
 *
 * @module
 */

/** Markup that is already safe: the result of {@link html}. */
export class Html {
  /** The markup. */
  readonly value: string;
  /** Wraps markup produced by {@link html}; do not call with user text. */
  constructor(value: string) {
    this.value = value;
  }
  /** The markup. */
  toString(): string {
    return this.value;
  }
}

/** A value {@link html} accepts: text (escaped), markup, numbers, lists, or nothing. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const _ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for use in element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => _ESCAPES[char]);
}

/**
 * Builds markup: interpolated strings and numbers are escaped, {@link Html} is inserted as is,
 * lists are joined, `null`, `undefined` and `false` render nothing. Attribute values must be
 * quoted in the template.
 *
 * @example
 * ```ts
 * const row = html`<tr><td>${symbol}</td><td>${count}</td></tr>`;
 * ```
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0];
  for (let index = 0; index < values.length; index++) {
    out += _render(values[index]) + strings[index + 1];
  }
  return new Html(out);
}

function _render(value: HtmlValue): string {
  if (value instanceof Html) return value.value;
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(_render).join("");
  return escapeHtml(String(value));
}

/** A same-origin URL: `path` plus the defined query parameters, percent-encoded. */
export function href(
  path: string,
  params: Record<string, string | number | undefined | null> = {},
): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const query = search.toString();
  return query === "" ? path : `${path}?${query}`;
}
