/**
 * JobsModel: the live list of jobs, polled from the server, with a signal per change and one
 * per state transition (used for the finish notification and the automatic merge).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { api, IJobSummary, isActive } from '../api';

export interface ITransition {
  job: IJobSummary;
  from: string;
  to: string;
}

export class JobsModel {
  constructor(options: { interval?: number } = {}) {
    this._interval = options.interval ?? 1500;
  }

  get jobs(): IJobSummary[] {
    return this._jobs;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get transitioned(): ISignal<this, ITransition> {
    return this._transitioned;
  }

  get error(): string | null {
    return this._error;
  }

  /** Ids submitted from this browser session: their success merges into the open notebook. */
  readonly submittedHere = new Set<string>();

  start(): void {
    if (this._timer === null) {
      void this.refresh();
    }
  }

  dispose(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** Poll now; fast while something is active, slower when all is quiet or hidden. */
  async refresh(): Promise<void> {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    try {
      const data = await api.jobs();
      this._error = data.watcher_error;
      this._absorb(data.jobs);
    } catch (err) {
      this._error = String((err as Error).message ?? err);
      this._changed.emit();
    }
    const busy = this._jobs.some(j => isActive(j.state));
    const delay = document.hidden ? 10000 : busy ? this._interval : 5000;
    this._timer = window.setTimeout(() => void this.refresh(), delay);
  }

  private _absorb(jobs: IJobSummary[]): void {
    const before = new Map(this._jobs.map(j => [j.id, j.state]));
    this._jobs = jobs;
    if (this._loaded) {
      for (const j of jobs) {
        const prev = before.get(j.id);
        if (prev !== undefined && prev !== j.state) {
          this._transitioned.emit({ job: j, from: prev, to: j.state });
        } else if (prev === undefined && !isActive(j.state) && this.submittedHere.has(j.id)) {
          // submitted and finished between two polls
          this._transitioned.emit({ job: j, from: 'queued', to: j.state });
        }
      }
    }
    this._loaded = true;
    this._changed.emit();
  }

  private _jobs: IJobSummary[] = [];
  private _loaded = false;
  private _error: string | null = null;
  private _interval: number;
  private _timer: number | null = null;
  private _changed = new Signal<this, void>(this);
  private _transitioned = new Signal<this, ITransition>(this);
}
