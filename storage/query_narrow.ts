/**
 * File pruning before planning: which of a view's files one user statement can read, found from
 * its syntax tree (DuckDB's own parser, `json_serialize_sql`), so that a point query over a store
 * of many small files plans over the few that can hold its rows.
 *
 * DuckDB prunes a `read_parquet` list by its hive keys, but only after expanding the whole list
 * while planning, at a cost per file; this cut happens first. It is conservative: a reference to
 * a bar view is narrowed only by conditions that every row it reads must meet (conjuncts of the
 * WHERE of a SELECT whose FROM is that view alone), and a statement with anything this module
 * does not understand (a table function, a sample, a node type it does not know, a table other
 * than the engine's own, such as the catalog's) is not narrowed at all.
 *
 * @module
 */
import { isValidDate } from "../core/calendar.ts";
import type { Timeframe } from "../core/types.ts";

/** A live file of a bar view, with what its path and the manifest say it holds. */
export interface ViewFile {
  path: string;
  timeframe: Timeframe;
  symbol: string;
  /** First and last trading date of its rows, `YYYY-MM-DD`. */
  firstDate: string;
  lastDate: string;
  /** Its rows, and the first and last bar start (epoch microseconds), read from it when written. */
  rows: number;
  minTs: number;
  maxTs: number;
}

/** An aggregate {@link statsQuery} answers from the manifest: `count(*)`, `min(ts)`, `max(ts)`. */
export type StatsItem = "count" | "min" | "max";

/**
 * Whether a statement is only aggregates that the manifest's per-file statistics answer exactly
 * (its row counts and ts ranges were read from each file when it was written):
 * `SELECT count(*), min(ts), max(ts) FROM bars_<tf> [WHERE symbol/timeframe = or IN constants]`,
 * with nothing else (no GROUP BY, DISTINCT, FILTER, CTE, LIMIT). Returns the view, the files'
 * predicate and the aggregates in select-list order, or undefined.
 */
export function statsQuery(
  tree: unknown,
  views: ReadonlySet<string>,
): { view: string; predicates: FilePredicate[]; items: StatsItem[] } | undefined {
  if (!_isObject(tree) || tree.error !== false || !Array.isArray(tree.statements)) return;
  if (tree.statements.length !== 1 || !_isObject(tree.statements[0])) return;
  const node = tree.statements[0].node;
  if (!_isObject(node) || node.type !== "SELECT_NODE") return;
  const from = node.from_table;
  const view = _viewName(from, views);
  if (view === undefined || view === "bars" || !_isObject(from)) return;
  if (from.sample || from.at_clause || !_isEmpty(from.column_name_alias)) return;
  if (
    !_isEmpty(node.modifiers) || !_isObject(node.cte_map) || !_isEmpty(node.cte_map.map) ||
    !_isEmpty(node.group_expressions) || !_isEmpty(node.group_sets) || node.having !== null ||
    node.qualify !== null || node.sample !== null ||
    node.aggregate_handling !== "STANDARD_HANDLING" || !Array.isArray(node.select_list) ||
    node.select_list.length === 0
  ) {
    return;
  }
  const qualifier = String(from.alias || from.table_name).toLowerCase();
  const predicates: FilePredicate[] = [];
  for (const conjunct of _conjuncts(node.where_clause)) {
    // Only conditions true of every row of a file or of none: symbol and timeframe are its keys.
    if (!_isObject(conjunct) || !/^(COMPARE_EQUAL|COMPARE_IN)$/.test(String(conjunct.type))) return;
    const subject = conjunct.type === "COMPARE_IN"
      ? (conjunct.children as unknown[])[0]
      : _column(conjunct.left, qualifier)
      ? conjunct.left
      : conjunct.right;
    if (_column(subject, qualifier) === "trading_date") return;
    const predicate = _predicate(conjunct, qualifier);
    if (predicate === undefined) return;
    predicates.push(predicate);
  }
  const items: StatsItem[] = [];
  for (const item of node.select_list) {
    const kind = _statsItem(item, qualifier);
    if (kind === undefined) return;
    items.push(kind);
  }
  return { view, predicates, items };
}

function _statsItem(item: unknown, qualifier: string): StatsItem | undefined {
  if (!_isObject(item) || item.class !== "FUNCTION" || item.type !== "FUNCTION") return;
  if (item.schema || item.catalog || item.distinct !== false || item.filter !== null) return;
  if (item.export_state !== false || item.is_operator !== false) return;
  const orders = _isObject(item.order_bys) ? item.order_bys.orders : undefined;
  if (!Array.isArray(orders) || orders.length !== 0 || !Array.isArray(item.children)) return;
  const name = String(item.function_name).toLowerCase();
  if (name === "count_star" && item.children.length === 0) return "count";
  if (item.children.length !== 1 || _columnName(item.children[0], qualifier) !== "ts") return;
  return name === "min" || name === "max" ? name : undefined;
}

/** Whether a file may hold rows a condition keeps. */
type FilePredicate = (file: ViewFile) => boolean;

/**
 * For each bar view a statement references (lower-case name), one list of predicates per
 * reference: a file is needed when it meets every predicate of at least one reference. `bars`
 * (the union of every timeframe) is returned under its own name. Returns undefined when the
 * statement cannot be narrowed safely (see the module notes).
 *
 * `tree` is the parsed output of `json_serialize_sql`; `views` the lower-case names of the bar
 * views, `bars` included; `tables` those of the other tables a statement may read (a view is
 * narrowed on one connection only, which the catalog tables would show).
 */
export function viewScopes(
  tree: unknown,
  views: ReadonlySet<string>,
  tables: ReadonlySet<string>,
): Map<string, FilePredicate[][]> | undefined {
  if (!_isObject(tree) || tree.error !== false || !Array.isArray(tree.statements)) {
    return undefined;
  }
  const scopes = new Map<string, FilePredicate[][]>();
  const handled = new Set<object>();
  const add = (view: string, predicates: FilePredicate[]) => {
    let list = scopes.get(view);
    if (!list) scopes.set(view, list = []);
    list.push(predicates);
  };
  // Every object is visited once: SELECT nodes over one bar view record their WHERE's
  // predicates for it, and any other reference of a bar view reads all of it. `known` holds the
  // other tables and the common table expressions in scope (those of the enclosing nodes).
  const visit = (value: unknown, known: ReadonlySet<string>): boolean => {
    if (Array.isArray(value)) return value.every((item) => visit(item, known));
    if (!_isObject(value)) return true;
    if (value.sample !== undefined && value.sample !== null) return false;
    if (value.at_clause !== undefined && value.at_clause !== null) return false;
    const type = value.type;
    if (typeof type === "string" && !("class" in value) && !_KNOWN_NODES.test(type)) return false;
    const ctes = _cteNames(value);
    if (ctes.length > 0) known = new Set([...known, ...ctes]);
    if (type === "SELECT_NODE") {
      const from = value.from_table;
      const view = _viewName(from, views);
      // Renamed columns (`bars_1m AS t(a, b)`) may leave `symbol` to bind elsewhere.
      if (view !== undefined && _isObject(from) && _isEmpty(from.column_name_alias)) {
        handled.add(from);
        const qualifier = String(from.alias || from.table_name).toLowerCase();
        add(view, _conditions(value.where_clause, qualifier));
      }
    }
    if (type === "BASE_TABLE" && !handled.has(value)) {
      const view = _viewName(value, views);
      if (view !== undefined) add(view, []);
      else if (
        value.schema_name || value.catalog_name ||
        !known.has(String(value.table_name).toLowerCase())
      ) {
        // A qualified name (`temp.bars_1m`, `main.symbols`), a catalog table or one unknown.
        return false;
      }
    }
    return Object.values(value).every((item) => visit(item, known));
  };
  return visit(tree.statements, tables) ? scopes : undefined;
}

/**
 * Which of `files` (those of one timeframe's view) the references in `scopes` can read: the
 * references of the view itself and those of `bars`. Returns undefined when some reference reads
 * them all, or none is made.
 */
export function filesInScope(
  files: readonly ViewFile[],
  own: readonly FilePredicate[][] | undefined,
  union: readonly FilePredicate[][] | undefined,
): ViewFile[] | undefined {
  const references = [...own ?? [], ...union ?? []];
  if (references.length === 0 || references.some((predicates) => predicates.length === 0)) {
    return undefined;
  }
  return files.filter((file) => references.some((predicates) => predicates.every((p) => p(file))));
}

/**
 * Table references, query nodes, result modifiers and sort orders whose meaning the walk knows
 * (expressions carry a `class` as well). `SUBQUERY`, `JOIN` and `CTE` refs are walked
 * through; any other type (`TABLE_FUNCTION`, `PIVOT`, `SHOW_REF`, ...) stops the narrowing.
 */
const _KNOWN_NODES = new RegExp(
  "^(SELECT_NODE|SET_OPERATION_NODE|RECURSIVE_CTE_NODE|CTE_NODE|BASE_TABLE|SUBQUERY|JOIN|" +
    "EXPRESSION_LIST|EMPTY|EMPTY_FROM|CTE|[A-Z_]+_MODIFIER|ASCENDING|DESCENDING|ORDER_DEFAULT)$",
);

/** The lower-case names of the common table expressions a query node defines itself. */
function _cteNames(node: Record<string, unknown>): string[] {
  const map = _isObject(node.cte_map) ? node.cte_map.map : undefined;
  if (!Array.isArray(map)) return [];
  return map.filter(_isObject).map((entry) => String(entry.key).toLowerCase());
}

/**
 * The bar view an unqualified table reference names (lower case). A qualified one is not taken
 * for a view: `temp.bars_1m` would find the narrowed view that the statement alone cannot see.
 */
function _viewName(ref: unknown, views: ReadonlySet<string>): string | undefined {
  if (
    !_isObject(ref) || ref.type !== "BASE_TABLE" || typeof ref.table_name !== "string" ||
    ref.schema_name || ref.catalog_name
  ) {
    return undefined;
  }
  const name = ref.table_name.toLowerCase();
  return views.has(name) ? name : undefined;
}

/**
 * The predicates a WHERE clause implies for the files of its one table (`qualifier`: its alias,
 * or its name): conjuncts on `symbol`, `timeframe` and `trading_date` against constants, and ORs
 * whose every branch implies one. Conjuncts it does not understand are left out, which only
 * widens what is read.
 */
function _conditions(where: unknown, qualifier: string): FilePredicate[] {
  const predicates: FilePredicate[] = [];
  for (const conjunct of _conjuncts(where)) {
    const predicate = _predicate(conjunct, qualifier);
    if (predicate) predicates.push(predicate);
  }
  return predicates;
}

function _conjuncts(expression: unknown): unknown[] {
  if (_isObject(expression) && expression.type === "CONJUNCTION_AND") {
    return (expression.children as unknown[]).flatMap(_conjuncts);
  }
  return expression === null || expression === undefined ? [] : [expression];
}

function _predicate(expression: unknown, qualifier: string): FilePredicate | undefined {
  if (!_isObject(expression)) return undefined;
  const type = expression.type;
  if (type === "CONJUNCTION_OR") {
    const branches = (expression.children as unknown[]).map((child) =>
      _conditions(child, qualifier)
    );
    if (branches.some((branch) => branch.length === 0)) return undefined;
    return (file) => branches.some((branch) => branch.every((p) => p(file)));
  }
  if (type === "COMPARE_IN" && Array.isArray(expression.children)) {
    const [subject, ...values] = expression.children as unknown[];
    const column = _column(subject, qualifier);
    if (column === undefined || values.length === 0) return undefined;
    const texts = values.map((value) => _constant(value, column));
    if (texts.some((text) => text === undefined)) return undefined;
    const set = new Set(texts as string[]);
    return column === "trading_date"
      ? (file) => [...set].some((date) => file.firstDate <= date && date <= file.lastDate)
      : (file) => set.has(file[column]);
  }
  if (type === "COMPARE_BETWEEN") {
    if (_column(expression.input, qualifier) !== "trading_date") return undefined;
    const lower = _constant(expression.lower, "trading_date");
    const upper = _constant(expression.upper, "trading_date");
    if (lower === undefined || upper === undefined) return undefined;
    return (file) => file.lastDate >= lower && file.firstDate <= upper;
  }
  const operator = _COMPARISONS[type as string];
  if (operator === undefined) return undefined;
  let column = _column(expression.left, qualifier);
  let other = expression.right;
  let op = operator;
  if (column === undefined) {
    column = _column(expression.right, qualifier);
    other = expression.left;
    op = _FLIPPED[operator];
  }
  if (column === undefined) return undefined;
  const value = _constant(other, column);
  if (value === undefined) return undefined;
  if (column !== "trading_date") {
    return op === "=" ? (file) => file[column] === value : undefined;
  }
  switch (op) {
    case "=":
      return (file) => file.firstDate <= value && value <= file.lastDate;
    case ">=":
      return (file) => file.lastDate >= value;
    case ">":
      return (file) => file.lastDate > value;
    case "<=":
      return (file) => file.firstDate <= value;
    case "<":
      return (file) => file.firstDate < value;
  }
}

type _Operator = "=" | ">=" | ">" | "<=" | "<";

const _COMPARISONS: Record<string, _Operator> = {
  COMPARE_EQUAL: "=",
  COMPARE_GREATERTHANOREQUALTO: ">=",
  COMPARE_GREATERTHAN: ">",
  COMPARE_LESSTHANOREQUALTO: "<=",
  COMPARE_LESSTHAN: "<",
};

/** `X op column` read as `column op' X`. */
const _FLIPPED: Record<_Operator, _Operator> = {
  "=": "=",
  ">=": "<=",
  ">": "<",
  "<=": ">=",
  "<": ">",
};

type _Column = "symbol" | "timeframe" | "trading_date";

/** The column (lower case) a reference names on this SELECT's one table, bare or qualified. */
function _columnName(expression: unknown, qualifier: string): string | undefined {
  if (!_isObject(expression) || expression.type !== "COLUMN_REF") return undefined;
  const names = expression.column_names;
  if (!Array.isArray(names) || names.length === 0 || names.length > 2) return undefined;
  if (names.length === 2 && String(names[0]).toLowerCase() !== qualifier) return undefined;
  return String(names.at(-1)).toLowerCase();
}

/** The column a reference names when it is one the files can be judged by. */
function _column(expression: unknown, qualifier: string): _Column | undefined {
  const name = _columnName(expression, qualifier);
  return name === "symbol" || name === "timeframe" || name === "trading_date" ? name : undefined;
}

/**
 * The text of a constant compared with `column`: a string for `symbol` and `timeframe` (compared
 * as VARCHAR, exactly), a `YYYY-MM-DD` string or `DATE '...'` for `trading_date`.
 */
function _constant(expression: unknown, column: _Column): string | undefined {
  if (!_isObject(expression)) return undefined;
  let value: unknown = expression;
  if (column === "trading_date" && expression.type === "OPERATOR_CAST") {
    const castType = expression.cast_type;
    if (!_isObject(castType) || castType.id !== "DATE" || expression.try_cast === true) {
      return undefined;
    }
    value = expression.child;
  }
  if (!_isObject(value) || value.type !== "VALUE_CONSTANT" || !_isObject(value.value)) {
    return undefined;
  }
  const constant = value.value;
  const typeId = _isObject(constant.type) ? constant.type.id : undefined;
  if (typeId !== "VARCHAR" || constant.is_null !== false || typeof constant.value !== "string") {
    return undefined;
  }
  if (column === "trading_date" && !_isDate(constant.value)) return undefined;
  return constant.value;
}

/**
 * Whether `text` is a calendar date as `YYYY-MM-DD` from year 1000 on. Anything else
 * (`2024-02-30`, `2024-1-5`) is left to DuckDB, which may refuse it: pruning must not hide that.
 */
function _isDate(text: string): boolean {
  return /^[1-9]/.test(text) && isValidDate(text);
}

function _isEmpty(value: unknown): boolean {
  return Array.isArray(value) && value.length === 0;
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
