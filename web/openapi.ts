/**
 * The OpenAPI 3.1 document of every route the server answers: the REST API, health and metrics,
 * the dashboard pages, htmx partials and assets. A test checks it against the app's routes.
 *
 * @module
 */
import { JOB_STATUSES } from "../core/jobs.ts";
import { BAR_MEDIA_TYPES, BARS_ARROW_SCHEMA } from "./bars.ts";
import {
  DATE_SCHEMA,
  QUERY_PARAMS,
  type QueryParam,
  SYMBOL_SCHEMA,
  TIMEFRAME_SCHEMA,
} from "./queries.ts";

type Json = Record<string, unknown>;

const _error = (description: string): Json => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
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

const _json = (description: string, schema: Json = { type: "object" }): Json => ({
  description,
  content: { "application/json": { schema } },
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
  const page = (summary: string, parameters: Json[] = []): Json => ({
    get: {
      tags: ["dashboard"],
      summary,
      parameters,
      responses: { "200": _html("The page"), "400": _html("Invalid parameter") },
    },
  });
  const partial = (summary: string, parameters: Json[] = []): Json => ({
    get: {
      tags: ["partials"],
      summary,
      parameters,
      responses: { "200": _html("An HTML fragment for htmx"), "400": _html("Invalid parameter") },
    },
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "MarketPipe",
      version,
      description:
        'Market data stored by MarketPipe: bars, coverage, ingest jobs and read-only SQL. JSON by default; errors are `{"error": {"code", "message"}}`. POST and DELETE need `Authorization: Bearer <token>` when the server has MARKETPIPE_API_TOKEN (always when it listens beyond loopback); with --auth-reads, reads too.',
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
            status: {
              type: "string",
              enum: [...JOB_STATUSES],
            },
            provider: { type: "string" },
            timeframe: TIMEFRAME_SCHEMA,
            symbols: { type: "array", items: { type: "string" } },
            start: DATE_SCHEMA,
            end: DATE_SCHEMA,
            bars_written: { type: "integer" },
            aggregating: {
              type: "boolean",
              description: "the job's bars are being aggregated in this server",
            },
          },
        },
        IngestRequest: {
          type: "object",
          additionalProperties: false,
          properties: {
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
          },
        },
      },
    },
    paths: _withQueryParams({
      "/api/symbols": {
        get: {
          tags: ["api"],
          summary: "Stored symbols with their timeframes, rows, first and last bar and bytes",
          parameters: [],
          responses: { "200": _json("Symbols"), ..._ERRORS },
        },
      },
      "/api/symbols/{symbol}": {
        get: {
          tags: ["api"],
          summary: "One stored symbol: timeframes, rows and recorded coverage",
          parameters: [_path("symbol", "Ticker", SYMBOL_SCHEMA)],
          responses: { "200": _json("The symbol"), ..._ERRORS },
        },
      },
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
                      bars: { type: "array", items: { $ref: "#/components/schemas/Bar" } },
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
      "/api/coverage": {
        get: {
          tags: ["api"],
          summary: "Coverage calendar: per date full, partial, empty, missing, holiday or weekend",
          parameters: [],
          responses: { "200": _json("Coverage"), ..._ERRORS },
        },
      },
      "/api/jobs": {
        get: {
          tags: ["api"],
          summary: "Jobs, newest first",
          parameters: [],
          responses: {
            "200": _json("Jobs", {
              type: "object",
              properties: { jobs: { type: "array", items: { $ref: "#/components/schemas/Job" } } },
            }),
            ..._ERRORS,
          },
        },
        post: {
          tags: ["api"],
          summary: "Start an ingest in the server (the same service as `marketpipe ingest`)",
          security: [{ bearer: [] }],
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/IngestRequest" } },
            },
          },
          responses: {
            "202": _json("Started: the job id and where to poll it"),
            "200": _json("Nothing to do: every day is already stored"),
            ..._ERRORS,
            "409": _error("A running job writes the same partitions"),
            "413": _error("Body too large"),
            "415": _error("Body is not JSON"),
          },
        },
      },
      "/api/jobs/{id}": {
        get: {
          tags: ["api"],
          summary: "A job with its tasks and per-symbol progress",
          parameters: [_path("id", "Job id or unique prefix")],
          responses: { "200": _json("The job"), ..._ERRORS },
        },
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
      "/api/validation/reports": {
        get: {
          tags: ["api"],
          summary: "Validation reports, newest first (empty when validation stores none)",
          parameters: [],
          responses: { "200": _json("Reports"), ..._ERRORS },
        },
      },
      "/api/validation/reports/{id}": {
        get: {
          tags: ["api"],
          summary: "One validation report: per-rule counts and offending bars",
          parameters: [_path("id", "Report id")],
          responses: { "200": _json("The report"), ..._ERRORS },
        },
      },
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
                schema: {
                  type: "object",
                  required: ["sql"],
                  additionalProperties: false,
                  properties: {
                    sql: { type: "string" },
                    limit: { type: "integer", minimum: 1, maximum: 10_000, default: 1000 },
                    timeout_ms: { type: "integer", minimum: 1 },
                  },
                },
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
      "/api/openapi.json": {
        get: {
          tags: ["api"],
          summary: "This document",
          parameters: [],
          responses: { "200": _json("OpenAPI 3.1") },
        },
      },
      "/healthz": {
        get: {
          tags: ["ops"],
          summary: "Liveness: the process answers",
          parameters: [],
          responses: { "200": _json("ok") },
        },
      },
      "/readyz": {
        get: {
          tags: ["ops"],
          summary: "Readiness: SQLite and DuckDB answer and the server is not shutting down",
          parameters: [],
          responses: { "200": _json("ready"), "503": _json("not ready") },
        },
      },
      "/metrics": {
        get: {
          tags: ["ops"],
          summary: "Prometheus metrics: totals of all processes on the data directory",
          parameters: [],
          responses: {
            "200": {
              description: "Exposition",
              content: { "text/plain": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/": page("Overview: stored data, recent jobs, data quality"),
      "/symbols": page("Symbol search"),
      "/symbols/{symbol}": page("Symbol: chart, coverage calendar, latest bars", [
        _path("symbol", "Ticker", SYMBOL_SCHEMA),
      ]),
      "/jobs": page("Jobs with live status and the start form"),
      "/jobs/{id}": page("Job detail with per-symbol progress", [_path("id", "Job id")]),
      "/validation": page("Validation reports"),
      "/validation/{id}": page("Validation report", [_path("id", "Report id")]),
      "/query": page("Read-only SQL console"),
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
      "/partials/jobs": {
        ...partial("Jobs table"),
        post: {
          tags: ["partials"],
          summary: "Start an ingest from the form",
          security: [{ bearer: [] }],
          requestBody: {
            content: {
              "application/x-www-form-urlencoded": {
                schema: { $ref: "#/components/schemas/IngestRequest" },
              },
            },
          },
          responses: { "200": _html("Started"), "400": _html("Invalid input") },
        },
      },
      "/partials/jobs/{id}": partial("Job detail fragment", [_path("id", "Job id")]),
      "/partials/jobs/{id}/cancel": {
        post: {
          tags: ["partials"],
          summary: "Cancel a job from its page",
          security: [{ bearer: [] }],
          parameters: [_path("id", "Job id")],
          responses: { "200": _html("The job detail"), "409": _html("Not running here") },
        },
      },
      "/partials/query": {
        post: {
          tags: ["partials"],
          summary: "Run the console's SQL",
          security: [{ bearer: [] }],
          requestBody: {
            content: {
              "application/x-www-form-urlencoded": {
                schema: { type: "object", properties: { sql: { type: "string" } } },
              },
            },
          },
          responses: { "200": _html("Result table"), "400": _html("SQL error") },
        },
      },
      "/assets/{name}": {
        get: {
          tags: ["assets"],
          summary: "Embedded asset (htmx, lightweight-charts, app.js, app.css, favicon.svg)",
          parameters: [
            _path("name", "Asset name"),
          ],
          responses: {
            "200": { description: "The asset" },
            "404": { description: "No such asset" },
          },
        },
      },
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
