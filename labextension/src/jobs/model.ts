/**
 * JobsModel: the live list of the newest jobs (a page of 50, more on demand: the server pages and
 * filters, so 10,000 jobs cost the same as 50), polled from the server (every 1.5 s while a job is active,
 * 5 s when all is quiet, not at all in a hidden tab), with a signal per change and one per state
 * transition (used for the finish notification and the automatic merge).
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { api, IJobPage, IJobSummary, isActive } from '../api';
import { createPoll, pollNow, setPollInterval } from '../util/poll';

export interface ITransition {
  job: IJobSummary;
  from: string;
  to: string;
}

/** Polling interval (ms) while no job is active. */
const IDLE_INTERVAL = 5000;
/** Jobs shown at first, and added by each "Show more"; the server pages at most 500 a request. */
export const PAGE_SIZE = 50;
const MAX_PAGE = 500;

export class JobsModel {
  constructor(options: { interval?: number } = {}) {
    this._interval = options.interval ?? 1500;
    this._poll = createPoll('jobs', this._interval, () => this._fetch());
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

  /** Jobs in the store (all pages); ``jobs`` holds the newest of them. */
  get total(): number {
    return this._total;
  }

  get hasMore(): boolean {
    return this._jobs.length < this._total;
  }

  /** Show the next page of older jobs as well (kept live with the others). */
  loadMore(): Promise<void> {
    this._limit = Math.min(this._jobs.length, this._limit) + PAGE_SIZE;
    return this.refresh();
  }

  /** Ids submitted from this browser session: their success merges into the open notebook. */
  readonly submittedHere = new Set<string>();

  start(): void {
    void this._poll.start();
  }

  dispose(): void {
    this._poll.dispose();
  }

  /** Poll now (after a submit, cancel or rerun); resolves once the list has been read. */
  refresh(): Promise<void> {
    return pollNow(this._poll);
  }

  /** One poll: read the jobs; fast while something is active, slower when all is quiet. */
  private async _fetch(): Promise<void> {
    const seq = ++this._seq;
    let data: IJobPage;
    const jobs: IJobSummary[] = [];
    try {
      // the newest ``_limit`` jobs, a page (at most 500) at a time: the server pages and filters
      let cursor: string | undefined;
      do {
        data = await api.jobs({ limit: Math.min(this._limit - jobs.length, MAX_PAGE), cursor });
        jobs.push(...data.jobs);
        cursor = data.next_cursor ?? undefined;
      } while (cursor && jobs.length < this._limit);
    } catch (err) {
      if (seq === this._seq) {
        this._error = String((err as Error).message ?? err);
        this._changed.emit();
      }
      throw err; // the poll backs off
    }
    if (seq !== this._seq) {
      return; // a newer request was sent meanwhile (refresh): its answer counts
    }
    this._error = data.watcher_error;
    this._total = data.total;
    this._absorb(jobs);
    const busy = data.active > 0 || this._jobs.some(j => isActive(j.state));
    setPollInterval(this._poll, busy ? this._interval : IDLE_INTERVAL);
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
  private _total = 0;
  private _limit = PAGE_SIZE;
  private _loaded = false;
  private _error: string | null = null;
  private _interval: number;
  private _poll: Poll;
  private _seq = 0;
  private _changed = new Signal<this, void>(this);
  private _transitioned = new Signal<this, ITransition>(this);
}
