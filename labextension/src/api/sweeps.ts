/**
 * The sweeps part of the REST API (/offload/api/sweeps): search spaces, sweep state with its
 * trials, history and importances, and the client calls (list, start, state, stop, resume,
 * apply best).
 */
import { post, request } from './client';

export interface IHistoryPoint {
  number: number;
  value: number;
  best: number;
  finished_at: number | null;
}

export interface ISpaceEntry {
  type: string;
  low?: number;
  high?: number;
  log?: boolean;
  step?: number | null;
  choices?: any[];
  value?: any;
}

export interface ITrialRow {
  number: number;
  state: string;
  params: Record<string, any>;
  values: number[] | null;
  value: number | null;
  job_id: string | null;
  error: string | null;
  requeued: boolean;
  started_at: number | null;
  finished_at: number | null;
  duration_s: number | null;
  cost: number | null;
  job_state: string | null;
}

export interface ISweepSummary {
  id: string;
  notebook: string;
  source_path: string | null;
  objectives: string[];
  directions: string[];
  space: Record<string, ISpaceEntry>;
  trials: number;
  parallel: number;
  per_gpu: number;
  sampler: string;
  pruner: string | null;
  state: string;
  error: string | null;
  created_at: number;
  counts: Partial<Record<'n_complete' | 'n_pruned' | 'n_fail' | 'n_running' | 'n_waiting' | 'n_requeued', number>>;
  best: ITrialRow | null;
  pareto: ITrialRow[];
}

export interface ISweepState {
  summary: ISweepSummary;
  trials: ITrialRow[];
  history: IHistoryPoint[];
  importances: Record<string, number>;
  total_cost: number;
}

export interface ISweepListItem {
  id: string;
  notebook: string;
  source_path: string | null;
  objective: string;
  state: string;
  done: number;
  trials: number;
  created_at: number;
}

export interface ISweepRequest {
  path: string;
  space: Record<string, ISpaceEntry>;
  objective: string;
  direction: string;
  trials: number;
  parallel: number;
  per_gpu: number;
  sampler: string;
  pruner: string | null;
  seed: number | null;
  backend: string;
  machine: string | null;
  spot: boolean;
  max_runtime: string;
}

export const sweepApi = {
  list: (notebook?: string) => request<{ sweeps: ISweepListItem[] }>('sweeps', {}, { notebook }),
  start: (req: ISweepRequest) => post<ISweepState>('sweeps', req),
  state: (id: string) => request<ISweepState>(`sweeps/${id}`),
  stop: (id: string) => post<{ id: string; state: string }>(`sweeps/${id}/stop`, {}),
  resume: (id: string) => post<ISweepState>(`sweeps/${id}/resume`, {}),
  applyBest: (id: string, body: { source?: string; path?: string; trial?: number }) =>
    post<{ params: Record<string, any>; trial: number | null; source: string | null; written: string | null }>(
      `sweeps/${id}/apply-best`,
      body
    )
};

/** Sweep states in which its driver may still start or finish trials (the panel polls). */
export const ACTIVE_SWEEP_STATES = ['created', 'running', 'stopping'];
