/**
 * The REST client for the server extension (jupyter_ext, /offload/api/...).
 *
 * Everything the lab side knows about jobs comes through here; the server is the only thing
 * that talks to the store and the backends.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IMachine {
  name: string;
  gpu: string | null;
  gpu_count: number;
  vcpus: number | null;
  memory_gb: number | null;
  price_per_hour: number | null;
  spot_price_per_hour: number | null;
  description: string;
}

export interface IBackend {
  name: string;
  available: boolean;
  machines: IMachine[];
  error: string | null;
}

export interface IBackends {
  backends: IBackend[];
  default_backend: string;
  default_machine: string | null;
  max_runtime: string;
  budget: number | null;
  store: string;
}

export interface IParameter {
  name: string;
  default: any;
  type: string;
  source: string;
  help: string;
}

export interface IInspection {
  path: string;
  has_parameters_cell: boolean;
  parameters: IParameter[];
  deps: {
    python: string;
    packages: {
      name: string;
      version: string | null;
      spec: string;
      optional: boolean;
      reasons: string[];
    }[];
    local_modules: any[];
    unresolved: { module: string; where?: string }[];
    notes: string[];
  } | null;
  files: { path: string; size: number }[];
  excluded: { path: string; why: string }[];
  total_bytes: number;
  notes: string[];
}

export interface IJobSummary {
  id: string;
  notebook: string;
  source_path: string | null;
  kind: string;
  backend: string;
  state: string;
  reason: string | null;
  cell: number | null;
  n_cells: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  parameters: Record<string, any>;
  metrics: Record<string, any>;
  labels: Record<string, string>;
  cost: number | null;
  elapsed_s?: number | null;
}

export interface IJobDetail extends IJobSummary {
  progress: { cell: number | null; n_cells: number | null };
  resources: {
    gpu: string | null;
    machine: string | null;
    spot: boolean;
    max_runtime_s: number;
  };
  parent: string | null;
  status: Record<string, any>;
  spec: Record<string, any>;
  env: Record<string, any> | null;
  handle: Record<string, any> | null;
  zones_tried: Record<string, any>[];
  error: { ename?: string; evalue?: string; traceback?: string[] } | null;
  has_output: boolean;
  outputs: string[];
  cli: string;
  stale_heartbeat_s?: number | null;
}

export interface ILogChunk {
  text: string;
  cursor: number;
  state: string;
  done: boolean;
}

export interface IMetricRecord {
  name: string;
  value: number;
  step: number | null;
  ts: number;
  cell_id?: string | null;
}

export interface IMergePlan {
  job_id: string;
  state: string;
  merged: { id: string; outputs: any[]; execution_count: number | null }[];
  edited: string[];
  deleted: string[];
  provenance: Record<string, any>;
}

export interface IGalleryCard {
  id: string;
  notebook: string;
  source_path: string | null;
  state: string;
  parameters: Record<string, any>;
  metrics: Record<string, any>;
  cost: number | null;
  created_at: number;
  finished_at: number | null;
  backend: string;
  has_output: boolean;
  thumbnail: string | null;
}

export interface IGallery {
  cards: IGalleryCard[];
  notebooks: string[];
  metrics: string[];
}

export interface ICompare {
  a: IJobDetail;
  b: IJobDetail;
  parameters: { name: string; a: any; b: any; a_default?: boolean; b_default?: boolean; same: boolean }[];
  metrics: { name: string; a: any; b: any; delta: number | null }[];
  outputs: {
    cell_id: string;
    source: string;
    a_text: string;
    b_text: string;
    same: boolean;
    a_image: string | null;
    b_image: string | null;
  }[];
}

export interface ISubmitRequest {
  path: string;
  parameters?: Record<string, any>;
  backend?: string;
  machine?: string | null;
  gpu?: string | null;
  spot?: boolean;
  max_runtime?: string;
  data?: string[];
  include?: string[];
}

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

function post<T>(path: string, body: any): Promise<T> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body ?? {}) });
}

export const api = {
  backends: () => request<IBackends>('backends'),
  inspect: (path: string) => request<IInspection>('notebook', {}, { path }),
  submit: (req: ISubmitRequest) => post<IJobDetail>('jobs', req),
  jobs: (notebook?: string) =>
    request<{ jobs: IJobSummary[]; seq: number; watcher_error: string | null }>(
      'jobs',
      {},
      { notebook }
    ),
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
  gallery: (q: { notebook?: string; state?: string; sort?: string; order?: string }) =>
    request<IGallery>('gallery', {}, q),
  compare: (a: string, b: string) => request<ICompare>('compare', {}, { a, b }),
  thumbnailUrl: (id: string) => apiUrl('jobs', id, 'thumbnail')
};

export const ACTIVE_STATES = ['queued', 'provisioning', 'running'];
export const FINAL_STATES = ['succeeded', 'failed', 'cancelled', 'preempted', 'lost'];

export function isActive(state: string): boolean {
  return ACTIVE_STATES.includes(state);
}

export function formatDuration(s: number | null | undefined): string {
  if (s === null || s === undefined) {
    return '–';
  }
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}

export function formatMoney(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `$${v.toFixed(2)}`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

export function formatValue(v: any): string {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}
