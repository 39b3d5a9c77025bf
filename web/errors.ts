/**
 * An HTTP error with a status and a machine-readable code; `app.onError` renders it as
 * `{"error": {"code", "message"}}` under `/api` and as an HTML message elsewhere.
 */
export class HttpError extends Error {
  /** HTTP status, e.g. 400. */
  readonly status: number;
  /** Stable code such as `bad_request` or `not_found`. */
  readonly code: string;
  /** Extra response headers, e.g. `Retry-After` or `Allow`. */
  readonly headers: Record<string, string>;

  /** Creates the error; `options.cause` chains the original error. */
  constructor(
    status: number,
    code: string,
    message: string,
    options: { headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = options.headers ?? {};
  }
}

/** 400 naming the bad parameter. */
export function badRequest(message: string, cause?: unknown): HttpError {
  return new HttpError(400, "bad_request", message, { cause });
}

/** 404. */
export function notFound(message: string): HttpError {
  return new HttpError(404, "not_found", message);
}

/** 409: the request conflicts with the job or schedule it names. */
export function conflict(message: string, cause?: unknown): HttpError {
  return new HttpError(409, "conflict", message, { cause });
}

/** 503 with `Retry-After`: the server is at a capacity limit. */
export function busy(message: string, retryAfterSeconds = 1): HttpError {
  return new HttpError(503, "busy", message, {
    headers: { "Retry-After": String(retryAfterSeconds) },
  });
}
