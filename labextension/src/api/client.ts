/**
 * The REST client for the server extension (jupyter_ext, /offload/api/...).
 *
 * Everything the lab side knows about jobs comes through here; the server is the only thing
 * that talks to the store and the backends.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ICompare,
  IGallery,
  IInspection,
  IBackends,
  IJobDetail,
  IJobPage,
  IJobQuery,
  ILogChunk,
  IMergePlan,
  IMetricRecord,
  ISubmitRequest
} from './models';

/** An error answer of the API: message, the request field it is about, a hint. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null,
    readonly hint: string | null = null
  ) {
    super(message);
  }
  get text(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** The message to show for any error: the API's message and hint, or the error's message. */
export function errorText(err: unknown): string {
  return err instanceof ApiError ? err.text : String((err as Error)?.message ?? err);
}

export const API_PREFIX = 'offload/api';

export function apiUrl(...parts: string[]): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, API_PREFIX, ...parts);
}

export async function request<T>(
  path: string,
  init: RequestInit = {},
  query: Record<string, string | number | undefined | null> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const params = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const url = URLExt.join(settings.baseUrl, API_PREFIX, path) + (params ? `?${params}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (err) {
    throw new ApiError(0, `cannot reach the Jupyter server: ${err}`);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      (data && data.message) || `${response.status} ${response.statusText}`,
      data ? data.field : null,
      data ? data.hint : null
    );
  }
  return data as T;
}

export function post<T>(path: string, body: any): Promise<T> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body ?? {}) });
}

export const api = {
  backends: () => request<IBackends>('backends'),
  inspect: (path: string) => request<IInspection>('notebook', {}, { path }),
  submit: (req: ISubmitRequest) => post<IJobDetail>('jobs', req),
  /** One page of jobs, newest first; pass the previous page's next_cursor for the next one. */
  jobs: (q: IJobQuery = {}) => request<IJobPage>('jobs', {}, { ...q }),
  job: (id: string) => request<IJobDetail>(`jobs/${id}`),
  log: (id: string, cursor: number) =>
    request<ILogChunk>(`jobs/${id}/log`, {}, { cursor }),
  metrics: (id: string) =>
    request<{ records: IMetricRecord[]; last: Record<string, any> }>(
      `jobs/${id}/metrics`
    ),
  cancel: (id: string) => post<{ id: string }>(`jobs/${id}/cancel`, {}),
  rerun: (id: string, parameters?: Record<string, any>) =>
    post<IJobDetail>(`jobs/${id}/rerun`, parameters ? { parameters } : {}),
  executed: (id: string) => request<any>(`jobs/${id}/notebook`),
  mergePlan: (id: string, cells: { id: string; source: string }[]) =>
    post<IMergePlan>(`jobs/${id}/merge-plan`, { cells }),
  mergeFile: (id: string, path?: string) =>
    post<any>(`jobs/${id}/merge`, path ? { path } : {}),
  gallery: (q: IJobQuery & { sort?: string; order?: string }) =>
    request<IGallery>('gallery', {}, { ...q }),
  compare: (a: string, b: string) => request<ICompare>('compare', {}, { a, b }),
  thumbnailUrl: (id: string) => apiUrl('jobs', id, 'thumbnail')
};
