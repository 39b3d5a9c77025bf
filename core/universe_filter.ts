/**
 * The filter language of filter universes: a small expression over symbol master fields,
 * parsed here and evaluated in TypeScript against {@link SymbolVersion} rows. It is never turned
 * into SQL, so nothing a user writes reaches a database.
 *
 * ```
 * exchange in ('XNAS', 'XNYS') and asset_class = 'etf' and not (status = 'delisted')
 * ```
 *
 * - fields: {@link FILTER_FIELDS};
 * - comparisons `= != <> < <= > >=`, `[not] in (v, ...)`, `[not] like 'pat'` (`%` any run, `_` one
 *   character, case-sensitive), `is [not] null`;
 * - `and` binds tighter than `or`; `not` and parentheses; keywords in any case;
 * - values: single-quoted strings (`''` is a quote) or numbers (compared with the field read as a
 *   number, for `cik = 320193`).
 *
 * Values of fields that have one case are normalised: `ticker` and `exchange` upper-case,
 * `asset_class`, `status` and `source` lower-case (so `asset_class = 'ETF'` works), and compared
 * with those the values must be known ones. Date fields take `YYYY-MM-DD`. A comparison of a
 * null field is unknown, as in SQL: neither it nor its `not` matches; only `is null` does.
 *
 * @module
 */
import { isValidDate } from "./calendar.ts";
import { didYouMean, UsageError } from "./errors.ts";
import {
  ASSET_CLASSES,
  REFERENCE_SOURCES,
  SYMBOL_STATUSES,
  type SymbolVersion,
} from "./reference.ts";

/** The fields a filter can name, as written in filters (and in the `symbols` SQL view). */
export const FILTER_FIELDS = [
  "ticker",
  "name",
  "exchange",
  "asset_class",
  "status",
  "list_date",
  "delist_date",
  "figi",
  "cusip",
  "cik",
  "source",
] as const;

/** One of {@link FILTER_FIELDS}. */
export type FilterField = typeof FILTER_FIELDS[number];

/** A literal of a filter: a string or a number. */
export type FilterValue = string | number;

/** Comparison operators; `<>` is read as `!=`. */
export type FilterComparison = "=" | "!=" | "<" | "<=" | ">" | ">=";

/** A parsed filter expression (see the module docs). */
export type Filter =
  | { op: "and" | "or"; left: Filter; right: Filter }
  | { op: "not"; operand: Filter }
  | { op: FilterComparison; field: FilterField; value: FilterValue }
  | { op: "in" | "not in"; field: FilterField; values: FilterValue[] }
  | { op: "like" | "not like"; field: FilterField; pattern: string }
  | { op: "is null" | "is not null"; field: FilterField };

/** Longest filter text accepted, in characters. */
export const MAX_FILTER_LENGTH = 4_000;

/** Deepest nesting of parentheses and `not` accepted. */
const _MAX_DEPTH = 64;

const _KEYS: Record<FilterField, keyof SymbolVersion> = {
  ticker: "ticker",
  name: "name",
  exchange: "exchange",
  asset_class: "assetClass",
  status: "status",
  list_date: "listDate",
  delist_date: "delistDate",
  figi: "figi",
  cusip: "cusip",
  cik: "cik",
  source: "source",
};

const _UPPER = new Set<FilterField>(["ticker", "exchange"]);
const _ENUMS: Partial<Record<FilterField, readonly string[]>> = {
  asset_class: ASSET_CLASSES,
  status: SYMBOL_STATUSES,
  source: REFERENCE_SOURCES,
};
const _DATES = new Set<FilterField>(["list_date", "delist_date"]);
const _KEYWORDS = new Set(["and", "or", "not", "in", "like", "is", "null"]);

interface _Token {
  kind: "word" | "string" | "number" | "op" | "punct" | "end";
  /** The token as written (a string's text without quotes and with `''` undone). */
  text: string;
  /** 1-based column of the token's first character. */
  column: number;
  /** Set on a token the tokenizer could not read: thrown when the parser reaches it. */
  error?: { what: string; expected: string };
}

/**
 * Parse a filter expression. Throws a {@link UsageError} naming the offending token and its
 * 1-based column: an unknown field, a function call, a stray `;` or `--`, an unbalanced quote
 * or parenthesis, a value of the wrong kind.
 *
 * @example
 * ```ts
 * const filter = parseFilter("exchange in ('XNAS', 'XNYS') and status = 'active'");
 * matchesFilter(filter, row); // true for an active Nasdaq or NYSE row
 * ```
 */
export function parseFilter(text: string): Filter {
  if (text.length > MAX_FILTER_LENGTH) {
    throw new UsageError(
      `Invalid filter: ${text.length} characters, more than the limit of ${MAX_FILTER_LENGTH}`,
    );
  }
  return new _Parser(text).parse();
}

/** Whether `row` satisfies `filter` (an unknown result, from a null field, does not). */
export function matchesFilter(filter: Filter, row: SymbolVersion): boolean {
  return _evaluate(filter, row) === true;
}

/** Three-valued evaluation: null is SQL's unknown. */
function _evaluate(filter: Filter, row: SymbolVersion): boolean | null {
  switch (filter.op) {
    case "and": {
      const left = _evaluate(filter.left, row);
      if (left === false) return false;
      const right = _evaluate(filter.right, row);
      if (right === false) return false;
      return left === null || right === null ? null : true;
    }
    case "or": {
      const left = _evaluate(filter.left, row);
      if (left === true) return true;
      const right = _evaluate(filter.right, row);
      if (right === true) return true;
      return left === null || right === null ? null : false;
    }
    case "not": {
      const operand = _evaluate(filter.operand, row);
      return operand === null ? null : !operand;
    }
    case "is null":
      return _fieldOf(row, filter.field) === null;
    case "is not null":
      return _fieldOf(row, filter.field) !== null;
    case "in":
    case "not in": {
      const value = _fieldOf(row, filter.field);
      if (value === null) return null;
      let unknown = false;
      for (const item of filter.values) {
        const order = _compare(value, item);
        if (order === 0) return filter.op === "in";
        if (order === null) unknown = true;
      }
      return unknown ? null : filter.op === "not in";
    }
    case "like":
    case "not like": {
      const value = _fieldOf(row, filter.field);
      if (value === null) return null;
      const matched = _likePattern(filter.pattern).test(value);
      return filter.op === "like" ? matched : !matched;
    }
    default: {
      const value = _fieldOf(row, filter.field);
      if (value === null) return null;
      const order = _compare(value, filter.value);
      return order === null ? null : _COMPARISONS[filter.op](order);
    }
  }
}

/** Whether an order (negative, 0, positive) of field against literal satisfies the operator. */
const _COMPARISONS: Record<FilterComparison, (order: number) => boolean> = {
  "=": (order) => order === 0,
  "!=": (order) => order !== 0,
  "<": (order) => order < 0,
  "<=": (order) => order <= 0,
  ">": (order) => order > 0,
  ">=": (order) => order >= 0,
};

function _fieldOf(row: SymbolVersion, field: FilterField): string | null {
  const value = row[_KEYS[field]];
  return value === null || value === undefined ? null : String(value);
}

/** Order of a field value against a literal; a number compares with the value read as one. */
function _compare(value: string, literal: FilterValue): number | null {
  if (typeof literal === "string") return value < literal ? -1 : value > literal ? 1 : 0;
  const number = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(number)) return null;
  return number < literal ? -1 : number > literal ? 1 : 0;
}

const _likeCache = new Map<string, RegExp>();

function _likePattern(pattern: string): RegExp {
  let regex = _likeCache.get(pattern);
  if (regex === undefined) {
    const source = [...pattern].map((c) =>
      c === "%" ? "[\\s\\S]*" : c === "_" ? "[\\s\\S]" : c.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&")
    ).join("");
    regex = new RegExp(`^${source}$`, "u");
    if (_likeCache.size > 1_000) _likeCache.clear();
    _likeCache.set(pattern, regex);
  }
  return regex;
}

class _Parser {
  #text: string;
  #tokens: _Token[];
  #at = 0;
  #depth = 0;

  constructor(text: string) {
    this.#text = text;
    this.#tokens = this.#tokenize();
  }

  parse(): Filter {
    if (this.#peek().kind === "end") {
      this.#fail("an empty filter", "expected a condition such as status = 'active'");
    }
    const filter = this.#or();
    const next = this.#peek();
    if (next.kind !== "end") {
      this.#fail(
        _describe(next),
        this.#isPunct(")", next) ? "no ( to close" : "expected and, or or the end of the filter",
        next.column,
      );
    }
    return filter;
  }

  #or(): Filter {
    let left = this.#and();
    while (this.#isWord("or")) {
      this.#at++;
      left = { op: "or", left, right: this.#and() };
    }
    return left;
  }

  #and(): Filter {
    let left = this.#not();
    while (this.#isWord("and")) {
      this.#at++;
      left = { op: "and", left, right: this.#not() };
    }
    return left;
  }

  #not(): Filter {
    if (this.#isWord("not")) {
      const token = this.#next();
      return { op: "not", operand: this.#nested(token, () => this.#not()) };
    }
    const token = this.#peek();
    if (this.#isPunct("(", token)) {
      this.#at++;
      const inner = this.#nested(token, () => this.#or());
      const close = this.#peek();
      if (!this.#isPunct(")", close)) {
        this.#fail(
          _describe(close),
          `expected ) to close the ( at column ${token.column}`,
          close.column,
        );
      }
      this.#at++;
      return inner;
    }
    return this.#predicate();
  }

  #nested(token: _Token, parse: () => Filter): Filter {
    if (++this.#depth > _MAX_DEPTH) {
      this.#fail(_describe(token), `nesting deeper than ${_MAX_DEPTH} levels`, token.column);
    }
    try {
      return parse();
    } finally {
      this.#depth--;
    }
  }

  #predicate(): Filter {
    const token = this.#next();
    if (token.kind !== "word" || _KEYWORDS.has(token.text.toLowerCase())) {
      this.#fail(_describe(token), "expected a field name such as status", token.column);
    }
    this.#refuseCall(token);
    const field = token.text.toLowerCase() as FilterField;
    if (!(FILTER_FIELDS as readonly string[]).includes(field)) {
      this.#fail(
        `unknown field "${token.text}"`,
        `expected one of ${FILTER_FIELDS.join(", ")}${didYouMean(token.text, FILTER_FIELDS)}`,
        token.column,
      );
    }
    const operator = this.#next();
    if (operator.kind === "op") {
      const op = operator.text === "<>" ? "!=" : operator.text as FilterComparison;
      return { op, field, value: this.#value(field, op) };
    }
    const word = operator.kind === "word" ? operator.text.toLowerCase() : "";
    if (word === "is") {
      const negated = this.#isWord("not");
      if (negated) this.#at++;
      const null_ = this.#next();
      if (!(null_.kind === "word" && null_.text.toLowerCase() === "null")) {
        this.#fail(
          _describe(null_),
          `expected null after "is${negated ? " not" : ""}"`,
          null_.column,
        );
      }
      return { op: negated ? "is not null" : "is null", field };
    }
    const negated = word === "not";
    const verb = negated ? this.#next() : operator;
    const verbWord = verb.kind === "word" ? verb.text.toLowerCase() : "";
    if (verbWord === "in") {
      const open = this.#next();
      if (!this.#isPunct("(", open)) {
        this.#fail(_describe(open), "expected ( after in", open.column);
      }
      const values = [this.#value(field, "in")];
      while (this.#isPunct(",")) {
        this.#at++;
        values.push(this.#value(field, "in"));
      }
      const close = this.#next();
      if (!this.#isPunct(")", close)) {
        this.#fail(
          _describe(close),
          `expected , or ) to close the list at column ${open.column}`,
          close.column,
        );
      }
      return { op: negated ? "not in" : "in", field, values };
    }
    if (verbWord === "like") {
      const pattern = this.#next();
      if (pattern.kind !== "string") {
        this.#fail(_describe(pattern), "expected a quoted pattern after like", pattern.column);
      }
      return { op: negated ? "not like" : "like", field, pattern: _normalise(field, pattern.text) };
    }
    this.#fail(
      _describe(verb),
      negated
        ? "expected in or like after not"
        : `expected an operator after ${field} (= != <> < <= > >= in, not in, like, is null)`,
      verb.column,
    );
  }

  #value(field: FilterField, op: string): FilterValue {
    const token = this.#next();
    if (token.kind === "number") {
      if (_ENUMS[field] || _DATES.has(field)) {
        this.#fail(
          _describe(token),
          `expected a quoted ${_DATES.has(field) ? "YYYY-MM-DD date" : "value"} for ${field}`,
          token.column,
        );
      }
      return Number(token.text);
    }
    if (token.kind === "word") this.#refuseCall(token);
    if (token.kind !== "string") {
      this.#fail(
        _describe(token),
        `expected a quoted string or a number after ${op}`,
        token.column,
      );
    }
    const value = _normalise(field, token.text);
    const known = _ENUMS[field];
    if (known && !known.includes(value)) {
      this.#fail(
        `unknown ${field} '${token.text}'`,
        `expected one of ${known.join(", ")}${didYouMean(value, known)}`,
        token.column,
      );
    }
    if (_DATES.has(field) && !isValidDate(value)) {
      this.#fail(`invalid date '${token.text}'`, `expected YYYY-MM-DD for ${field}`, token.column);
    }
    return value;
  }

  /** Fail when the word `token` is followed by `(`. */
  #refuseCall(token: _Token): void {
    if (this.#isPunct("(")) {
      this.#fail(
        `function call "${token.text}("`,
        "functions are not supported; compare a field with a value",
        token.column,
      );
    }
  }

  #isPunct(text: string, token = this.#peek()): boolean {
    return token.kind === "punct" && token.text === text;
  }

  #peek(): _Token {
    const token = this.#tokens[this.#at];
    if (token.error) this.#fail(token.error.what, token.error.expected, token.column);
    return token;
  }

  #next(): _Token {
    const token = this.#peek();
    if (token.kind !== "end") this.#at++;
    return token;
  }

  #isWord(word: string): boolean {
    const token = this.#peek();
    return token.kind === "word" && token.text.toLowerCase() === word;
  }

  #fail(what: string, expected: string, column = 1): never {
    const shown = this.#text.length > 200 ? `${this.#text.slice(0, 200)}...` : this.#text;
    throw new UsageError(`Invalid filter "${shown}": ${what} at column ${column}; ${expected}`);
  }

  /** Tokens up to the end, or up to and including the first one that cannot be read. */
  #tokenize(): _Token[] {
    const text = this.#text;
    const tokens: _Token[] = [];
    const bad = (what: string, expected: string, column: number) => {
      tokens.push({ kind: "end", text: "", column, error: { what, expected } });
      return tokens;
    };
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      const column = i + 1;
      if (/\s/.test(c)) {
        i++;
      } else if (/[A-Za-z_]/.test(c)) {
        const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))![0];
        tokens.push({ kind: "word", text: match, column });
        i += match.length;
      } else if (/[0-9]/.test(c) || (c === "-" && /[0-9]/.test(text[i + 1] ?? ""))) {
        const match = /^-?[0-9]+(?:\.[0-9]+)?/.exec(text.slice(i))![0];
        if (/[A-Za-z_.]/.test(text[i + match.length] ?? "")) {
          return bad(
            `unexpected "${text.slice(i, i + match.length + 1)}"`,
            "expected a number such as 42 or 1.5",
            column,
          );
        }
        tokens.push({ kind: "number", text: match, column });
        i += match.length;
      } else if (c === "'") {
        let value = "";
        let j = i + 1;
        for (;;) {
          if (j >= text.length) {
            return bad("an unclosed quote", "end the string with '", column);
          }
          if (text[j] === "'") {
            if (text[j + 1] === "'") {
              value += "'";
              j += 2;
              continue;
            }
            break;
          }
          value += text[j++];
        }
        tokens.push({ kind: "string", text: value, column });
        i = j + 1;
      } else if (c === "(" || c === ")" || c === ",") {
        tokens.push({ kind: "punct", text: c, column });
        i++;
      } else {
        const match = /^(?:<=|>=|<>|!=|=|<|>)/.exec(text.slice(i));
        if (match === null) {
          const what = text.startsWith("--", i)
            ? `"--"`
            : c === '"'
            ? `'"'`
            : `"${String.fromCodePoint(text.codePointAt(i)!)}"`;
          return bad(
            `unexpected ${what}`,
            c === '"'
              ? "quote strings with ' (single quotes)"
              : "expected only fields, operators, 'quoted' values, numbers, commas and parentheses",
            column,
          );
        }
        tokens.push({ kind: "op", text: match[0], column });
        i += match[0].length;
      }
    }
    tokens.push({ kind: "end", text: "", column: text.length + 1 });
    return tokens;
  }
}

/** Values of fields with one case, in that case. */
function _normalise(field: FilterField, value: string): string {
  if (_UPPER.has(field)) return value.toUpperCase();
  if (_ENUMS[field]) return value.toLowerCase();
  return value;
}

function _describe(token: _Token): string {
  switch (token.kind) {
    case "end":
      return "unexpected end of the filter";
    case "string":
      return `unexpected '${token.text.replaceAll("'", "''")}'`;
    default:
      return `unexpected "${token.text}"`;
  }
}
