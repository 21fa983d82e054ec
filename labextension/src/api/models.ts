/**
 * What the REST API of the server extension (jupyter_ext, /offload/api/...) answers and accepts:
 * backends and machines, notebook inspection, jobs, logs, metrics, merge plans, the gallery.
 */

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
  /** This month's spend against the monthly budgets (null: none set). */
  spend?: ISpend | null;
  store: string;
}

export interface ISpend {
  month: string;
  total: number;
  monthly: number | null;
  backends: Record<string, { spent: number; monthly: number | null }>;
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
    unresolved: { module: string; where?: string; optional?: boolean; why?: string }[];
    /** Where the files that ship are relative to (API path; '.' is the server root). */
    project_root?: string | null;
    /** Files the notebook reads by literal paths: ship, large (suggested), missing, outside. */
    data_files?: { path: string; status: string; size: number | null; where: string; call: string }[];
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
  /** Phase timings in seconds (provision_s, boot_s, env_s, data_s, kernel_s, first_cell_s...). */
  timings?: Record<string, number | null>;
  /** Where the isolated environment came from: hit, built or miss (null: the kernel's own). */
  env_cache?: string | null;
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
  /** Every notebook and numeric metric among all cards (not only this page), for the filters. */
  notebooks: string[];
  metrics: string[];
  /** null on the last page */
  next_cursor: string | null;
  total: number;
}

/** What GET /jobs and GET /gallery are filtered and paged by (the server does both). */
export interface IJobQuery {
  notebook?: string;
  /** one state or several separated by commas */
  state?: string;
  kind?: string;
  /** 1-500, default 50 */
  limit?: number;
  cursor?: string;
}

export interface IJobPage {
  jobs: IJobSummary[];
  /** null on the last page */
  next_cursor: string | null;
  /** jobs matching the filters, all pages together */
  total: number;
  /** jobs queued, provisioning or running */
  active: number;
  seq: number;
  watcher_error: string | null;
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
  budget?: number | null;
  cap_runtime_to_budget?: boolean;
  stop_if_idle?: string | null;
}

export const ACTIVE_STATES = ['queued', 'provisioning', 'running'];
export const FINAL_STATES = ['succeeded', 'failed', 'cancelled', 'preempted', 'lost'];

export function isActive(state: string): boolean {
  return ACTIVE_STATES.includes(state);
}
