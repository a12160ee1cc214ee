/**
 * The records of mlnb's REST API (docs/rest-api.md) and its error type.
 *
 * Kept free of any JupyterLab import so that the panel's state and view, and
 * their unit tests, can use them outside a browser. `api.ts` re-exports all of
 * it next to `requestAPI`.
 */

/** A metric value: a JSON number, or `"nan"`, `"inf"`, `"-inf"` for non-finite ones. */
export type MetricValue = number | 'nan' | 'inf' | '-inf';

/** A model as listed by `GET models`. */
export interface ModelRecord {
  name: string;
  description: string | null;
  versions: number;
  latest: number | null;
  aliases: Record<string, number>;
  created_at: string;
  created_by: string;
  updated_at: string;
  /** The model's main metric, chosen by the server. */
  main_metric: string | null;
  /** The version the main metric is read from (`name:3`). */
  main_ref: string | null;
  main_value: MetricValue | null;
  /** The main value as a person reads it. */
  main_text: string;
}

/** The notebook snippets the server writes for a version. */
export interface Snippets {
  load: string;
  show: string;
}

/** One version of a model, as in `GET models/{name}/versions`. */
export interface VersionRow {
  name: string;
  version: number;
  ref: string;
  status: 'active' | 'retired';
  format: string;
  aliases: string[];
  created_at: string;
  created_by: string;
  description: string | null;
  parent: string | null;
  metrics: Record<string, MetricValue>;
  metrics_text: Record<string, string>;
  /** Metrics where this version holds the best value among active versions. */
  best: string[];
  main_value: MetricValue | null;
  main_text: string;
  snippets: Snippets;
}

/** One stored file of a version. */
export interface FileRecord {
  path: string;
  sha256: string;
  size: number;
  media_type: string;
}

/** A version in full: its row plus params, tags and files. */
export interface VersionDetail extends VersionRow {
  params: Record<string, unknown>;
  tags: Record<string, unknown>;
  files: FileRecord[];
}

/** One lineage edge. */
export interface LineageEdge {
  source: string;
  kind: string;
  target: string;
  details: unknown;
}

/** One evaluation of a version on a data set. */
export interface EvaluationRecord {
  data: string;
  details: unknown;
}

/** One audit log entry. */
export interface AuditRecord {
  id: number;
  at: string;
  user: string;
  action: string;
  model: string | null;
  version: number | null;
  alias: string | null;
  from_version: number | null;
  to_version: number | null;
  reason: string | null;
  details: unknown;
}

/** What every answer carries: the registry's change token. */
export interface TokenReply {
  token: string;
}

/** `GET changes`: only the token. */
export type ChangesReply = TokenReply;

/** `GET status`. */
export interface StatusReply extends TokenReply {
  mlnb: string;
  registry: string;
  storage: string;
  user: string;
}

/** `GET models`. */
export interface ModelsReply extends TokenReply {
  models: ModelRecord[];
}

/** `GET models/{name}/versions`, newest first. */
export interface VersionsReply extends TokenReply {
  model: string;
  main_metric: string | null;
  metrics: string[];
  versions: VersionRow[];
}

/** `GET models/{name}/versions/{n}`. */
export interface DetailReply extends TokenReply {
  version: VersionDetail;
  lineage: LineageEdge[];
  evaluations: EvaluationRecord[];
  audit: AuditRecord[];
}

/** `POST promote`, `retire` and `rollback`: the version concerned, as it is now. */
export interface ActionReply extends TokenReply {
  version: VersionRow;
}

/** `GET audit`. */
export interface AuditReply extends TokenReply {
  entries: AuditRecord[];
}

/**
 * A metric value as a number: `"nan"`, `"inf"` and `"-inf"` (the API's
 * encoding of non-finite values) become `NaN`, `Infinity` and `-Infinity`;
 * a string that is not a number is `NaN`.
 */
export function metricValue(x: number | string): number {
  if (typeof x === 'number') {
    return x;
  }
  if (x === 'nan') {
    return NaN;
  }
  if (x === 'inf') {
    return Infinity;
  }
  if (x === '-inf') {
    return -Infinity;
  }
  // Number('') is 0, which would invent a value.
  return x.trim() === '' ? NaN : Number(x);
}

/**
 * A failed API call: the server's `{"error", "message"}`, or what the client
 * could tell when no such body came back.
 *
 * `message` is what the panel shows, `"NotFound: no model 'x'"`.
 */
export class ApiError extends Error {
  /** The HTTP status, 0 when no answer came back. */
  readonly status: number;
  /** The server's error class (`NotFound`, `Conflict`, ...). */
  readonly error: string;
  /** The server's one-line message, without the class name. */
  readonly detail: string;

  constructor(status: number, error: string, detail: string) {
    const prefix = `${error}: `;
    super(detail.startsWith(prefix) ? detail : prefix + detail);
    this.name = 'ApiError';
    this.status = status;
    this.error = error;
    this.detail = detail.startsWith(prefix) ? detail.slice(prefix.length) : detail;
  }
}

/**
 * The error for a non-2xx answer with status `status` and parsed JSON `body`
 * (`undefined` when the body was not JSON, as a 404 page from Jupyter is).
 */
export function errorFromResponse(status: number, statusText: string, body: unknown): ApiError {
  if (isObject(body) && typeof body.error === 'string') {
    const message = typeof body.message === 'string' ? body.message : statusText;
    return new ApiError(status, body.error, message);
  }
  if (isObject(body) && typeof body.message === 'string') {
    // Jupyter's own JSON errors (403 without XSRF, say) carry only a message.
    return new ApiError(status, `HTTP ${status}`, body.message);
  }
  const text = statusText || 'no answer';
  const hint =
    status === 404
      ? ' (is the mlnb server extension enabled? see `jupyter server extension list`)'
      : '';
  return new ApiError(status, `HTTP ${status}`, text + hint);
}

/** Whether `x` is a plain JSON object. */
export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
