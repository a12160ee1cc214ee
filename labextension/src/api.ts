/**
 * The one way the panel talks to the server: `requestAPI` over mlnb's REST API
 * under `{base_url}mlnb/api/` (docs/rest-api.md).
 *
 * `ServerConnection` adds the base URL, the token and the XSRF header, so the
 * panel works behind JupyterHub and any proxy JupyterLab itself works behind.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, errorFromResponse, isObject } from './records';

export * from './records';

/**
 * Call `endpoint` (relative to `mlnb/api/`) and return its JSON object.
 *
 * Parameters
 * ----------
 * endpoint: the path under `mlnb/api/`, e.g. `models/toy/versions`.
 * init: fetch options; a POST passes `method` and a JSON `body`.
 *
 * Raises
 * ------
 * ApiError: on a non-2xx answer (with the server's `error` and `message`),
 * when the server cannot be reached, or when the answer is not a JSON object.
 */
export async function requestAPI<T>(endpoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlnb/api', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (err) {
    throw new ApiError(0, 'NetworkError', errorText(err));
  }
  const text = await response.text();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined; // an HTML error page: errorFromResponse uses the status
    }
  }
  if (!response.ok) {
    throw errorFromResponse(response.status, response.statusText, body);
  }
  if (!isObject(body)) {
    throw new ApiError(response.status, 'InvalidResponse', `${endpoint} did not answer a JSON object`);
  }
  return body as T;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
