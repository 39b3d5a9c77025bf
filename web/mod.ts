/**
 * The web server: dashboard pages with htmx partials, the REST API, `/metrics`, health
 * endpoints and embedded assets, built by {@link createApp}.
 *
 * @module
 */
export { createApp } from "./app.ts";
export { BAR_FORMATS, type BarFormat, barsPage, formatFromAccept } from "./bars.ts";
export {
  type AppDeps,
  type AppLimits,
  DEFAULT_LIMITS,
  type ValidationSource,
  type WebContext,
} from "./context.ts";
export { type DataSource, type DataSourceOptions, openDataSource } from "./data.ts";
export { HttpError } from "./errors.ts";
export {
  createJobRunner,
  type JobRunner,
  type JobRunnerOptions,
  type StartResult,
} from "./jobs.ts";
export {
  createMetricsApp,
  listen,
  type ListenOptions,
  type MetricsAppOptions,
} from "./metrics_server.ts";
export { openApiDocument } from "./openapi.ts";
export { createLimiter, isLoopback, type Limiter, type LimiterOptions } from "./security.ts";
export { openWebServer, type WebServer, type WebServerOptions } from "./server.ts";
