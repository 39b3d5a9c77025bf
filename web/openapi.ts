/**
 * The OpenAPI 3.1 document of every route the server answers: the REST API, health and metrics,
 * the dashboard pages, htmx partials and assets. A test checks it against the app's routes.
 *
 * @module
 */
import { JOB_KINDS, JOB_STATUSES } from "../core/jobs.ts";
import { ASSET_CLASSES, REFERENCE_SOURCES, SYMBOL_STATUSES } from "../core/reference.ts";
import { BAR_COLUMNS, EXPORT_FORMATS } from "../storage/mod.ts";
import { BAR_MEDIA_TYPES, BARS_ARROW_SCHEMA } from "./bars.ts";
import {
  DATE_SCHEMA,
  QUERY_PARAMS,
  type QueryParam,
  SYMBOL_SCHEMA,
  TIMEFRAME_SCHEMA,
} from "./queries.ts";

type Json = Record<string, unknown>;

const _ref = (schema: string): Json => ({ $ref: `#/components/schemas/${schema}` });

const _error = (description: string): Json => ({
  description,
  content: { "application/json": { schema: _ref("Error") } },
});

const _ERRORS: Json = {
  "400": _error("A parameter is invalid; the message names it"),
  "401": _error("A token is required (`Authorization: Bearer <MARKETPIPE_API_TOKEN>`)"),
  "403": _error("Cross-origin or foreign-host request refused"),
  "404": _error("Not found"),
  "429": _error("Too many wrong tokens from this address; retry after `Retry-After` seconds"),
  "503": _error("Too many heavy requests; retry after `Retry-After` seconds"),
};

const _ARROW_COLUMNS = `Arrow IPC, one record batch per chunk of up to 2,048 bars; columns: ${
  BARS_ARROW_SCHEMA.fields.map((field) =>
    `${field.name} ${field.type}${field.nullable ? " (nullable)" : ""}`
  ).join(", ")
}`;

const _SYMBOLS: Json = { type: "array", items: SYMBOL_SCHEMA };

const _nullable = (schema: Json): Json => ({ oneOf: [schema, { type: "null" }] });

/** The symbol master's fields of a ticker (all null when the master does not know it). */
const _MASTER_FIELDS: Record<string, Json> = {
  name: { type: ["string", "null"] },
  exchange: { type: ["string", "null"], description: "ISO 10383 MIC of the primary listing" },
  asset_class: _nullable({ type: "string", enum: [...ASSET_CLASSES] }),
  status: _nullable({ type: "string", enum: [...SYMBOL_STATUSES] }),
  list_date: _nullable(DATE_SCHEMA),
  delist_date: _nullable(DATE_SCHEMA),
  figi: { type: ["string", "null"] },
  source: _nullable({ type: "string", enum: [...REFERENCE_SOURCES] }),
};

const _JOB_STARTED: Json = {
  type: "object",
  properties: { status: { const: "started" }, job: _ref("Job") },
};

const _JOBS_STARTED: Json = {
  type: "object",
  properties: {
    status: { type: "string", enum: ["started", "up-to-date"] },
    jobs: { type: "array", items: _ref("Job") },
  },
};

const _json = (description: string, schema: Json = { type: "object" }): Json => ({
  description,
  content: { "application/json": { schema } },
});

/** An array of objects with these `properties`. */
const _arrayOf = (properties: Record<string, Json>): Json => ({
  type: "array",
  items: { type: "object", properties },
});

/** `{ <key>: [<schema>] }`: what a list endpoint answers. */
const _listOf = (key: string, schema: Json): Json => ({
  type: "object",
  properties: { [key]: { type: "array", items: schema } },
});

/** A request body of exactly these `properties`. */
const _request = (properties: Record<string, Json>, required?: string[]): Json => ({
  type: "object",
  ...(required && { required }),
  additionalProperties: false,
  properties,
});

/** The 409 and 415 of a POST that starts ingest jobs. */
const _INGEST_CONFLICTS: Json = {
  "409": _error("A running job writes the same partitions"),
  "415": _error("Body is not JSON"),
};

/** What a prune or delete answers without `confirm`. */
const _DRY_RUN: Json = _json("Dry run: what would go; nothing changed", {
  type: "object",
  properties: { dry_run: { const: true }, plan: _ref("PrunePlan") },
});

/** A GET tagged `tag` with its responses and path parameters. */
const _get = (tag: string, summary: string, responses: Json, parameters: Json[] = []): Json => ({
  get: { tags: [tag], summary, parameters, responses },
});

/** A read of the REST API: its `200` answer, the common errors, then `more` (a 409, a 504). */
const _apiGet = (
  summary: string,
  ok: Json,
  { parameters = [], more = {} }: { parameters?: Json[]; more?: Json } = {},
): Json => _get("api", summary, { "200": ok, ..._ERRORS, ...more }, parameters);

/**
 * A POST of the REST API with a JSON body of `schema`, behind the token: `ok` (its 2xx answers),
 * the common errors, then `more` (by default the 415 of a body that is not JSON).
 */
const _apiPost = (
  summary: string,
  schema: string,
  ok: Json,
  more: Json = { "415": _error("Body is not JSON") },
): Json => ({
  post: {
    tags: ["api"],
    summary,
    security: [{ bearer: [] }],
    requestBody: { required: true, content: { "application/json": { schema: _ref(schema) } } },
    responses: { ...ok, ..._ERRORS, ...more },
  },
});

/** A dashboard button's POST on one job: `ok` is the fragment it answers, `conflict` its 409. */
const _jobAction = (summary: string, ok: string, conflict: string): Json => ({
  post: {
    tags: ["partials"],
    summary,
    security: [{ bearer: [] }],
    parameters: [_path("id", "Job id")],
    responses: { "200": _html(ok), "409": _html(conflict) },
  },
});

const _html = (description: string): Json => ({
  description,
  content: { "text/html": { schema: { type: "string" } } },
});

const _path = (name: string, description: string, schema: Json = { type: "string" }): Json => ({
  name,
  in: "path",
  required: true,
  description,
  schema,
});

/** The OpenAPI document; `version` is the server's version. */
export function openApiDocument(version: string): Json {
  const page = (summary: string, parameters: Json[] = []): Json =>
    _get("dashboard", summary, {
      "200": _html("The page"),
      "400": _html("Invalid parameter"),
    }, parameters);
  const partial = (summary: string, parameters: Json[] = []): Json =>
    _get("partials", summary, {
      "200": _html("An HTML fragment for htmx"),
      "400": _html("Invalid parameter"),
    }, parameters);
  /** A form POST of a partial; `schema` names a component or is the schema itself. */
  const formPost = (
    summary: string,
    schema: string | Json,
    ok = "An HTML fragment for htmx",
    invalid = "Invalid input",
  ): Json => ({
    post: {
      tags: ["partials"],
      summary,
      security: [{ bearer: [] }],
      requestBody: {
        content: {
          "application/x-www-form-urlencoded": {
            schema: typeof schema === "string" ? _ref(schema) : schema,
          },
        },
      },
      responses: { "200": _html(ok), "400": _html(invalid) },
    },
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "MarketPipe",
      version,
      description:
        'Market data stored by MarketPipe: bars, coverage, symbols and universes, jobs (ingest, update, backfill, prune, delete, export) and read-only SQL. JSON by default, times in it ISO 8601 UTC (fields named *_exchange give New York time); errors are `{"error": {"code", "message"}}`. POST and DELETE need `Authorization: Bearer <token>` when the server has MARKETPIPE_API_TOKEN (always when it listens beyond loopback); with --auth-reads, reads too.',
    },
    servers: [{ url: "/" }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: { code: { type: "string" }, message: { type: "string" } },
            },
          },
        },
        Bar: {
          type: "object",
          properties: {
            ts: { type: "string", format: "date-time", description: "bar start, UTC" },
            open: { type: "number" },
            high: { type: "number" },
            low: { type: "number" },
            close: { type: "number" },
            volume: { type: "number" },
            vwap: { type: ["number", "null"] },
            trade_count: { type: ["integer", "null"] },
            trading_date: { type: "string", format: "date" },
            session: { type: "string", enum: ["pre", "regular", "post"] },
          },
        },
        Job: {
          type: "object",
          properties: {
            id: { type: "string" },
            kind: { type: "string", enum: [...JOB_KINDS] },
            status: {
              type: "string",
              enum: [...JOB_STATUSES],
            },
            provider: { type: "string", description: '"" for prune, delete and export' },
            timeframe: {
              ..._nullable(TIMEFRAME_SCHEMA),
              description: "null for a prune or delete of every timeframe",
            },
            symbols: { type: "array", items: { type: "string" } },
            start: _nullable(DATE_SCHEMA),
            end: _nullable(DATE_SCHEMA),
            params: { type: "object", description: "provider options, or the job's options" },
            bars_written: { type: "integer" },
            result: {
              type: ["object", "null"],
              description:
                "what a succeeded prune or delete removed (a PrunePlan) or an export wrote ({file, format, rows, bytes})",
            },
            cancellable: { type: "boolean", description: "this server runs the job" },
            aggregating: {
              type: "boolean",
              description: "the job's bars are being aggregated in this server",
            },
            progress: _nullable(_ref("JobProgress")),
            aggregation: {
              type: ["object", "null"],
              description:
                "whether this server aggregated the job's bars afterwards: {state, detail}; null when unknown here",
            },
          },
        },
        Symbol: {
          type: "object",
          properties: {
            symbol: SYMBOL_SCHEMA,
            ..._MASTER_FIELDS,
            rows: { type: "integer" },
            bytes: { type: "integer" },
            timeframes: _arrayOf({
              timeframe: TIMEFRAME_SCHEMA,
              rows: { type: "integer" },
              first: { type: "string", format: "date-time" },
              last: { type: "string", format: "date-time" },
              first_exchange: {
                type: "string",
                description: "first in New York time with its offset",
              },
              last_exchange: {
                type: "string",
                description: "last in New York time with its offset",
              },
              files: { type: "integer" },
              bytes: { type: "integer" },
            }),
          },
        },
        UniverseCoverage: {
          type: "object",
          description: "Stored bars of the members: per timeframe, how many have bars and when",
          properties: {
            members: { type: "integer" },
            with_bars: { type: "integer", description: "members with bars of any timeframe" },
            timeframes: _arrayOf({
              timeframe: TIMEFRAME_SCHEMA,
              symbols: { type: "integer" },
              first_date: DATE_SCHEMA,
              last_date: DATE_SCHEMA,
            }),
          },
        },
        ScheduleRun: {
          type: "object",
          properties: {
            id: { type: "integer" },
            schedule: { type: "string" },
            command: { type: "string" },
            trigger: { type: "string", enum: ["schedule", "catch-up", "retry", "manual"] },
            status: {
              type: "string",
              enum: ["running", "succeeded", "partial", "failed", "skipped", "cancelled"],
            },
            attempt: { type: "integer", minimum: 1 },
            planned_at: { type: "string", format: "date-time" },
            started_at: { type: ["string", "null"], format: "date-time" },
            finished_at: { type: ["string", "null"], format: "date-time" },
            job_ids: { type: "array", items: { type: "string" } },
            pid: { type: ["integer", "null"] },
            error: { type: ["string", "null"] },
          },
        },
        Universe: {
          type: "object",
          properties: {
            name: { type: "string", pattern: "^[a-z][a-z0-9_-]{0,63}$" },
            kind: { type: "string", enum: ["list", "filter"] },
            filter: {
              type: ["string", "null"],
              description: "the filter expression (kind filter)",
            },
            description: { type: ["string", "null"] },
            members: { type: "integer", description: "members today (detail: on as_of)" },
            created_at: { type: "string", format: "date-time" },
            updated_at: { type: "string", format: "date-time" },
            coverage: _ref("UniverseCoverage"),
          },
        },
        UniverseDetail: {
          allOf: [_ref("Universe"), {
            type: "object",
            properties: {
              as_of: DATE_SCHEMA,
              member_count: { type: "integer", description: "members on as_of" },
              members: _arrayOf({
                symbol: SYMBOL_SCHEMA,
                ..._MASTER_FIELDS,
                stored_as: {
                  ...SYMBOL_SCHEMA,
                  description: "the ticker its bars are stored under (its current one)",
                },
                coverage: _arrayOf({
                  timeframe: TIMEFRAME_SCHEMA,
                  rows: { type: "integer" },
                  first_date: DATE_SCHEMA,
                  last_date: DATE_SCHEMA,
                }),
              }),
            },
          }],
        },
        JobProgress: {
          type: "object",
          required: ["done", "total", "unit"],
          properties: {
            done: { type: "integer" },
            total: { type: "integer" },
            unit: { type: "string", enum: ["tasks", "partitions", "bars"] },
          },
        },
        PrunePlan: {
          type: "object",
          properties: {
            partitions: _arrayOf({
              tree: { type: "string", enum: ["bars", "quarantine"] },
              timeframe: TIMEFRAME_SCHEMA,
              symbol: { type: "string" },
              year: { type: "integer" },
              first_date: DATE_SCHEMA,
              last_date: DATE_SCHEMA,
              bars_removed: { type: "integer" },
              bars_kept: { type: "integer" },
              files_removed: { type: "integer" },
              files_rewritten: { type: "integer" },
            }),
            bars: { type: "integer", description: "bars removed from bars/" },
            days: { type: "integer", description: "ingested-day records forgotten" },
          },
        },
        UpdateRequest: _request({
          symbols: _SYMBOLS,
          timeframe: { ...TIMEFRAME_SCHEMA, description: "default: every stored timeframe" },
        }),
        BackfillRequest: _request({
          symbols: _SYMBOLS,
          timeframe: { ...TIMEFRAME_SCHEMA, default: "1m" },
          start: { ...DATE_SCHEMA, description: "judge these dates (default: each series' own)" },
          end: DATE_SCHEMA,
          before: {
            ...DATE_SCHEMA,
            description: "also fetch from this date up to each series' first stored session",
          },
        }),
        PruneRequest: _request({
          before: { ...DATE_SCHEMA, description: "first trading date kept; not after today" },
          timeframe: { ...TIMEFRAME_SCHEMA, description: "default: every timeframe" },
          symbols: _SYMBOLS,
          provider: { type: "string" },
          dry_run: { type: "boolean", default: true },
        }, ["before"]),
        DeleteRequest: _request({
          symbols: _SYMBOLS,
          timeframe: { ...TIMEFRAME_SCHEMA, description: "default: every timeframe" },
          provider: { type: "string" },
          dry_run: { type: "boolean", default: true },
        }, ["symbols"]),
        ExportRequest: _request({
          symbols: _SYMBOLS,
          timeframe: TIMEFRAME_SCHEMA,
          start: DATE_SCHEMA,
          end: { ...DATE_SCHEMA, description: "default: start" },
          format: { type: "string", enum: [...EXPORT_FORMATS] },
          columns: {
            type: "array",
            items: { type: "string", enum: BAR_COLUMNS.map((column) => column.name) },
          },
          tz: { type: "string", description: "csv only: ts as local time in this IANA zone" },
        }, ["symbols", "timeframe", "start", "format"]),
        IngestRequest: _request({
          provider: { type: "string", default: "fake" },
          symbols: {
            oneOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
          },
          start: DATE_SCHEMA,
          end: DATE_SCHEMA,
          timeframe: { ...TIMEFRAME_SCHEMA, default: "1m" },
          workers: { type: "integer", minimum: 1, maximum: 64, default: 4 },
          batch_size: { type: "integer", minimum: 1, maximum: 50_000 },
          rate_limit: { type: "integer", minimum: 1 },
          feed: { type: "string" },
          adjustment: { type: "string" },
          force: { type: "boolean", default: false },
          aggregate: {
            type: "boolean",
            description:
              "after the ingest, roll the 1m bars up to 5m ... 1d as `marketpipe ingest --aggregate` does (1m ingests only); default: the server's config `aggregate`, else false",
          },
          resume: { type: "string", description: "resume this job instead" },
          fake_seed: { type: "integer" },
          fake_gap_rate: { type: "number" },
        }),
      },
    },
    paths: _withQueryParams({
      "/api/symbols": _apiGet(
        "Stored symbols with the symbol master's fields, their timeframes, rows, first and last bar and bytes",
        _json("Symbols", _listOf("symbols", _ref("Symbol"))),
      ),
      "/api/symbols/{symbol}": _apiGet(
        "One stored symbol: the symbol master's fields, timeframes, rows and recorded coverage",
        _json("The symbol", {
          allOf: [_ref("Symbol"), {
            type: "object",
            properties: {
              coverage: _arrayOf({
                timeframe: TIMEFRAME_SCHEMA,
                first_day: DATE_SCHEMA,
                last_day: DATE_SCHEMA,
                days_with_bars: { type: "integer" },
              }),
            },
          }],
        }),
        { parameters: [_path("symbol", "Ticker", SYMBOL_SCHEMA)] },
      ),
      "/api/universes": _apiGet(
        "Universes with their definition, members today and stored coverage",
        _json("Universes, by name", _listOf("universes", _ref("Universe"))),
      ),
      "/api/universes/{name}": _apiGet(
        "One universe: its members on a date (point in time) with listing dates and stored coverage",
        _json("The universe", _ref("UniverseDetail")),
        { parameters: [_path("name", "Universe name (case-insensitive)")] },
      ),
      "/api/bars": {
        get: {
          tags: ["api"],
          summary: "Bars of one symbol and timeframe, one keyset page at a time (streamed)",
          description:
            "Follow `next_cursor` (JSON body), the `X-Next-Cursor` header or the `Link: rel=next` header until it is absent. The format comes from `format` or else from `Accept`: `arrow` is the Arrow IPC stream, `arrow-file` the Arrow IPC file (`pyarrow.ipc.open_file`, `pandas.read_feather`). JSON and CSV carry the bar columns; Arrow and Parquet every stored column.",
          parameters: [],
          responses: {
            "200": {
              description: "One page of bars",
              headers: {
                "X-Next-Cursor": {
                  schema: { type: "string" },
                  description: "Present when more pages follow",
                },
                Link: { schema: { type: "string" }, description: '`<url>; rel="next"`' },
              },
              content: {
                [BAR_MEDIA_TYPES.json]: {
                  schema: {
                    type: "object",
                    properties: {
                      symbol: { type: "string" },
                      timeframe: TIMEFRAME_SCHEMA,
                      next_cursor: { type: ["string", "null"] },
                      bars: { type: "array", items: _ref("Bar") },
                    },
                  },
                },
                [BAR_MEDIA_TYPES.csv]: { schema: { type: "string" } },
                [BAR_MEDIA_TYPES.arrow]: {
                  schema: { type: "string", format: "binary", description: _ARROW_COLUMNS },
                },
                [BAR_MEDIA_TYPES["arrow-file"]]: {
                  schema: { type: "string", format: "binary", description: _ARROW_COLUMNS },
                },
                [BAR_MEDIA_TYPES.parquet]: { schema: { type: "string", format: "binary" } },
              },
            },
            ..._ERRORS,
            "504": _error("The read timed out"),
          },
        },
      },
      "/api/coverage": _apiGet(
        "Coverage calendar: per date full, partial, empty, missing, holiday or weekend",
        _json("Coverage"),
      ),
      "/api/jobs": {
        ..._apiGet("Jobs, newest first", _json("Jobs of every kind", _listOf("jobs", _ref("Job")))),
        ..._apiPost(
          "Start an ingest in the server (the same service as `marketpipe ingest`)",
          "IngestRequest",
          {
            "202": _json("Started: the job id and where to poll it"),
            "200": _json("Nothing to do: every day is already stored"),
          },
          { ..._INGEST_CONFLICTS, "413": _error("Body too large") },
        ),
      },
      "/api/jobs/{id}": {
        ..._apiGet("A job with its tasks and per-symbol progress", _json("The job"), {
          parameters: [_path("id", "Job id or unique prefix")],
        }),
        delete: {
          tags: ["api"],
          summary: "Cancel a job running in this server (it stays resumable)",
          security: [{ bearer: [] }],
          parameters: [_path("id", "Job id")],
          responses: {
            "202": _json("Cancelling: tasks in flight finish, then the job is cancelled"),
            ..._ERRORS,
            "409": _error("The job is not running in this server"),
          },
        },
      },
      "/api/schedules": _apiGet(
        "The config's schedules in this server: trigger, policies, next run, last run, alerts",
        _json("Schedules, and whether this server holds the schedule lease", {
          type: "object",
          properties: {
            holds_lease: { type: "boolean" },
            schedules: _arrayOf({
              name: { type: "string" },
              command: { type: "string" },
              when: { type: "string" },
              overlap: { type: "string", enum: ["skip", "queue"] },
              catch_up: { type: "string", enum: ["latest", "all", "none"] },
              retries: { type: "integer" },
              next: { type: ["string", "null"], format: "date-time" },
              busy: { type: "boolean" },
              queued: { type: "array", items: { type: "string", format: "date-time" } },
              retry_at: { type: ["string", "null"], format: "date-time" },
              last_run: _nullable(_ref("ScheduleRun")),
            }),
            alerts: { type: "array", items: { type: "object" } },
          },
        }),
      ),
      "/api/schedules/runs": _apiGet(
        "Recorded schedule runs, newest first",
        _json("Runs", _listOf("runs", _ref("ScheduleRun"))),
      ),
      "/api/schedules/{name}/run": {
        post: {
          tags: ["api"],
          summary: "Run a schedule now (recorded like a scheduled run, one attempt)",
          security: [{ bearer: [] }],
          parameters: [_path("name", "Schedule name")],
          responses: {
            "202": _json("Started", {
              type: "object",
              properties: { status: { const: "started" }, run: _ref("ScheduleRun") },
            }),
            ..._ERRORS,
            "409": _error("The schedule is already running"),
          },
        },
      },
      "/api/status": _apiGet(
        "Freshness of every stored series against the last expected session, and failing schedules (as `marketpipe status`)",
        _json("Status", {
          type: "object",
          properties: {
            at: { type: "string", format: "date-time" },
            stale: { type: "integer", description: "stale series" },
            series: { type: "array", items: { type: "object" } },
            schedules: { type: "array", items: { type: "object" } },
            scheduler: { type: ["object", "null"] },
          },
        }),
      ),
      "/api/schema": _apiGet(
        "Tables and views the SQL console can read, with their columns and DuckDB types",
        _json("Bar views by timeframe, bars, then the reference tables", {
          type: "object",
          properties: {
            tables: _arrayOf({
              name: { type: "string" },
              kind: { type: "string", enum: ["view", "table"] },
              columns: _arrayOf({ name: { type: "string" }, type: { type: "string" } }),
            }),
          },
        }),
      ),
      "/api/update": _apiPost(
        "Bring stored series up to the last completed session (ingest jobs, as `marketpipe update`)",
        "UpdateRequest",
        {
          "202": _json("Started: the ingest jobs", _JOBS_STARTED),
          "200": _json(
            "Up to date: every series ends at the last completed session",
            _JOBS_STARTED,
          ),
        },
        _INGEST_CONFLICTS,
      ),
      "/api/backfill": _apiPost(
        "Fetch the missing and partial days of the gap report (ingest jobs, as `marketpipe backfill`)",
        "BackfillRequest",
        {
          "202": _json("Started: the ingest jobs", _JOBS_STARTED),
          "200": _json("Nothing to fill", _JOBS_STARTED),
        },
        _INGEST_CONFLICTS,
      ),
      "/api/prune": _apiPost(
        "Remove the bars of trading dates before a date (as `marketpipe prune`); a dry run by default",
        "PruneRequest",
        { "200": _DRY_RUN, "202": _json("Started: the prune job", _JOB_STARTED) },
      ),
      "/api/delete": _apiPost(
        "Remove every stored bar of symbols (as `marketpipe delete`); a dry run by default",
        "DeleteRequest",
        { "200": _DRY_RUN, "202": _json("Started: the delete job", _JOB_STARTED) },
      ),
      "/api/exports": _apiPost(
        "Export stored bars to one file (as `marketpipe export`), written by a job; download it from /api/exports/{id}",
        "ExportRequest",
        { "202": _json("Started: the export job", _JOB_STARTED) },
      ),
      "/api/exports/{id}": _apiGet(
        "Download the file of a succeeded export job",
        {
          description: "The file, as an attachment",
          content: Object.fromEntries(
            ["application/vnd.apache.parquet", "text/csv", "application/vnd.apache.arrow.file"]
              .map((type) => [type, { schema: { type: "string", format: "binary" } }]),
          ),
        },
        {
          parameters: [_path("id", "Export job id")],
          more: { "409": _error("The export is still running, failed or was cancelled") },
        },
      ),
      "/api/validation/reports": _apiGet(
        "Validation reports, newest first (empty when validation stores none)",
        _json("Reports"),
      ),
      "/api/validation/reports/{id}": _apiGet(
        "One validation report: per-rule counts and offending bars",
        _json("The report"),
        { parameters: [_path("id", "Report id")] },
      ),
      "/api/query": {
        post: {
          tags: ["api"],
          summary: "Run read-only SQL (same sandbox as `marketpipe query`)",
          security: [{ bearer: [] }],
          parameters: [],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: _request({
                  sql: { type: "string" },
                  limit: { type: "integer", minimum: 1, maximum: 10_000, default: 1000 },
                  timeout_ms: { type: "integer", minimum: 1 },
                }, ["sql"]),
              },
              "application/x-www-form-urlencoded": {
                schema: { type: "object", properties: { sql: { type: "string" } } },
              },
            },
          },
          responses: {
            "200": _json("Columns and rows (or CSV)"),
            ..._ERRORS,
            "413": _error("Body too large"),
            "415": _error("Unsupported body type"),
            "504": _error("The query timed out"),
          },
        },
      },
      "/api/openapi.json": _get("api", "This document", { "200": _json("OpenAPI 3.1") }),
      "/healthz": _get("ops", "Liveness: the process answers", { "200": _json("ok") }),
      "/readyz": _get(
        "ops",
        "Readiness: SQLite and DuckDB answer and the server is not shutting down",
        { "200": _json("ready"), "503": _json("not ready") },
      ),
      "/metrics": _get("ops", "Prometheus metrics: totals of all processes on the data directory", {
        "200": {
          description: "Exposition",
          content: { "text/plain": { schema: { type: "string" } } },
        },
      }),
      "/": page("Overview: stored data, recent jobs, data quality"),
      "/symbols": page("Symbol search"),
      "/symbols/{symbol}": page("Symbol: chart, coverage calendar, latest bars", [
        _path("symbol", "Ticker", SYMBOL_SCHEMA),
      ]),
      "/universes": page("Universes with their members and stored coverage"),
      "/universes/{name}": page("Universe: members on a date, listing dates, coverage", [
        _path("name", "Universe name"),
      ]),
      "/jobs": page("Jobs with live status and the start form"),
      "/schedules": page("Schedules: next runs, last runs, alerts, run now"),
      "/jobs/{id}": page("Job detail with per-symbol progress", [_path("id", "Job id")]),
      "/validation": page("Validation reports"),
      "/validation/{id}": page("Validation report", [_path("id", "Report id")]),
      "/query": page("Read-only SQL console"),
      "/data": page("Data: prune, delete (dry run first) and export forms"),
      "/login": {
        ...page("Log in with the API token (sets an HttpOnly session cookie)"),
        post: {
          tags: ["dashboard"],
          summary: "Check the token and set the session cookie",
          requestBody: {
            content: {
              "application/x-www-form-urlencoded": {
                schema: { type: "object", properties: { token: { type: "string" } } },
              },
            },
          },
          responses: { "303": { description: "Logged in" }, "401": _html("Wrong token") },
        },
      },
      "/logout": {
        post: {
          tags: ["dashboard"],
          summary: "Clear the session cookie",
          responses: { "303": { description: "Logged out" } },
        },
      },
      "/partials/symbols": partial("Symbol search results"),
      "/partials/chart": partial("Chart panel of a symbol"),
      "/partials/universes/{name}": partial("Members of a universe on a date", [
        _path("name", "Universe name"),
      ]),
      "/partials/jobs": {
        ...partial("Jobs table"),
        ...formPost("Start an ingest from the form", "IngestRequest", "Started"),
      },
      "/partials/jobs/{id}": partial("Job detail fragment", [_path("id", "Job id")]),
      "/partials/update": formPost(
        "Bring stored series up to date (as POST /api/update)",
        "UpdateRequest",
      ),
      "/partials/backfill": formPost(
        "Backfill the missing days of a series (as POST /api/backfill)",
        "BackfillRequest",
      ),
      "/partials/prune": formPost(
        "The prune plan, or with confirm=true the started prune (as POST /api/prune)",
        "PruneRequest",
      ),
      "/partials/delete": formPost(
        "The delete plan, or with confirm=true the started delete (as POST /api/delete)",
        "DeleteRequest",
      ),
      "/partials/exports": formPost("Start an export (as POST /api/exports)", "ExportRequest"),
      "/partials/exports/{id}": partial("Export status with its download link when done", [
        _path("id", "Export job id"),
      ]),
      "/partials/jobs/{id}/cancel": _jobAction(
        "Cancel a job from its page",
        "The job detail",
        "Not running here",
      ),
      "/partials/jobs/{id}/resume": _jobAction(
        "Resume a cancelled, failed or partial ingest (the same job)",
        "The job detail",
        "Not an ingest, or running or succeeded",
      ),
      "/partials/jobs/{id}/retry": _jobAction(
        "Run a cancelled, failed or partial ingest's request again as a new, forced job",
        "The new job's detail",
        "Not an ingest, or running or succeeded",
      ),
      "/partials/series": partial("Overview's stored data: symbols filtered by q, 50 a page"),
      "/partials/schema": partial("Schema browser of the SQL console"),
      "/settings/tz": {
        get: {
          tags: ["dashboard"],
          summary: "Set the dashboard's time zone (cookie mp_tz) and go back to next",
          responses: { "303": { description: "Set" }, "400": _html("Invalid tz") },
        },
      },
      "/partials/query": formPost(
        "Run the console's SQL",
        { type: "object", properties: { sql: { type: "string" } } },
        "Result table",
        "SQL error",
      ),
      "/assets/{name}": _get(
        "assets",
        "Embedded asset (htmx, lightweight-charts, app.js, app.css, favicon.svg)",
        { "200": { description: "The asset" }, "404": { description: "No such asset" } },
        [_path("name", "Asset name")],
      ),
    }),
  };
}

/** Adds to each operation the query parameters {@link QUERY_PARAMS} gives its route. */
function _withQueryParams(paths: Record<string, Json>): Json {
  const table: Record<string, Record<string, QueryParam>> = QUERY_PARAMS;
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item as Record<string, Json>)) {
      const query = table[`${method.toUpperCase()} ${path}`];
      if (query === undefined) continue;
      operation.parameters = [
        ...(operation.parameters as Json[] | undefined ?? []),
        ...Object.entries(query).map(([name, param]) => ({
          name,
          in: "query",
          required: param.required ?? false,
          description: param.description,
          schema: param.schema,
        })),
      ];
    }
  }
  return paths;
}
