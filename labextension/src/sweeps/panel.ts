/**
 * The Sweep panel: a main-area widget beside a notebook. Its bar picks one of the notebook's
 * sweeps or "New sweep…"; its body is the setup form (sweeps/setup.ts) or the chosen sweep,
 * live while it runs (polled every 1.5 s, not in a hidden tab): header and trials table
 * (sweeps/trials.ts), optimization history, parallel coordinates and importances (sweeps/plots.ts).
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  ACTIVE_SWEEP_STATES,
  api,
  ApiError,
  errorText,
  IBackends,
  IParameter,
  ISweepListItem,
  ISweepState,
  sweepApi
} from '../api';
import { el, htmlSelect, selectBox } from '../util/dom';
import { createPoll, pollNow } from '../util/poll';
import { historyPlot, importanceBars, parallelCoordinates } from './plots';
import { loggedMetrics, SweepSetupForm } from './setup';
import { doneCount, ISweepViewActions, sweepHeader, trialsTable } from './trials';

export interface ISweepWidgetOptions {
  path: string;
  sweepId?: string | null;
  /** Sources of the open notebook's code cells (objective suggestions), when it is open. */
  notebookSources: () => string[];
  openTrial: (jobId: string, finished: boolean) => void;
  applyBest: (state: ISweepState) => Promise<void>;
}

export class SweepWidget extends Widget {
  constructor(options: ISweepWidgetOptions) {
    super();
    this.addClass('jp-offload-Sweep');
    this.id = `jp-offload-sweep-${Math.random().toString(36).slice(2)}`;
    this._opts = options;
    this.path = options.path;
    this.sweepId = options.sweepId ?? null;
    this.title.label = `Sweep: ${this.path.split('/').pop()}`;
    this.title.closable = true;
    this._bar = el('div', { class: 'jp-offload-sweep-bar-top' });
    this._body = el('div', { class: 'jp-offload-sweep-body' });
    this.node.append(this._bar, this._body);
    this.node.tabIndex = -1;
    void this.reload();
  }

  readonly path: string;
  sweepId: string | null;
  /** Called when the shown sweep changes (for the layout restorer). */
  onSweepChanged: () => void = () => undefined;
  /** Called when the notebook is gone and it has no sweep (a panel restored after it was removed). */
  onGone: () => void = () => undefined;
  /** Called once a sweep has been started from this panel (the sweep-finished watch). */
  onSweepStarted: () => void = () => undefined;
  /** Called when the shown sweep, or its state, changes (the toolbar's Stop follows it). */
  onStateChanged: () => void = () => undefined;
  /** Whether the shown sweep may still start trials (Stop applies). */
  get running(): boolean {
    return !!this.sweepId && !!this._state && this._state.summary.id === this.sweepId && ['created', 'running'].includes(this._state.summary.state);
  }
  get state(): ISweepState | null {
    return this._state;
  }

  /** Re-read this notebook's sweeps; show the chosen one, or the setup form when there is none. */
  async reload(): Promise<void> {
    try {
      this._list = (await sweepApi.list(this.path)).sweeps;
    } catch (err) {
      this._list = [];
      this._body.textContent = '';
      this._body.append(el('p', { class: 'jp-offload-field-error' }, `Cannot list sweeps: ${errorText(err)}`));
    }
    if (this.sweepId && !this._list.some(s => s.id === this.sweepId)) {
      this.sweepId = null;
    }
    this._renderBar();
    if (this.sweepId) {
      await this.refresh();
    } else if (this._list.length && !this._forceNew) {
      this.showSweep(this._list[0].id);
    } else {
      await this._renderSetup();
    }
  }

  showSweep(id: string | null): void {
    this._forceNew = id === null;
    this.sweepId = id;
    this._state = null;
    this.onSweepChanged();
    this.onStateChanged();
    this._renderBar();
    if (id) {
      this._body.textContent = '';
      this._body.append(el('p', { class: 'jp-offload-muted' }, 'Loading\u2026'));
      void this.refresh();
    } else {
      void this._renderSetup();
    }
  }

  /** Read the shown sweep now (after Stop, Resume, a choice in the bar); resolves once shown. */
  async refresh(): Promise<void> {
    await pollNow(this._poll);
  }

  async stop(): Promise<void> {
    if (!this.sweepId) {
      return;
    }
    const id = this.sweepId;
    const state = this._state?.summary.id === id ? this._state.summary.state : null;
    if (state && !ACTIVE_SWEEP_STATES.includes(state)) {
      Notification.info(`Sweep ${id.slice(-6)} has already ended (${state}); nothing to stop.`, { autoClose: 4000 });
      return;
    }
    Notification.info(`Stopping sweep ${id.slice(-6)}: running trials are cancelled\u2026`, { autoClose: 4000 });
    try {
      await sweepApi.stop(id);
    } catch (err) {
      Notification.error(`Stop failed: ${errorText(err)}`);
    }
    await this.refresh();
  }

  async resume(): Promise<void> {
    if (!this.sweepId) {
      return;
    }
    const id = this.sweepId;
    try {
      await sweepApi.resume(id);
      Notification.info(`Sweep ${id.slice(-6)} resumed`, { autoClose: 3000 });
    } catch (err) {
      Notification.error(`Resume failed: ${errorText(err)}`);
    }
    await this.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** One poll: the shown sweep's state; stops when there is none or it has ended. */
  private async _load(): Promise<void> {
    const id = this.sweepId;
    if (!id) {
      void this._poll.stop();
      return;
    }
    const seq = ++this._seq;
    let s: ISweepState;
    try {
      s = await sweepApi.state(id);
    } catch (err) {
      if (seq === this._seq && id === this.sweepId) {
        this._body.textContent = '';
        this._body.append(el('p', { class: 'jp-offload-field-error' }, `Cannot read sweep ${id}: ${errorText(err)}`));
      }
      throw err; // the poll backs off
    }
    if (seq !== this._seq || id !== this.sweepId) {
      return; // a newer request, or another sweep, was asked for meanwhile
    }
    const changed = this._state?.summary.state !== s.summary.state || this._state?.summary.id !== s.summary.id;
    this._state = s;
    if (changed) {
      this.onStateChanged();
    }
    const item = this._list.find(x => x.id === s.summary.id);
    const done = doneCount(s.summary.counts);
    if (item && (item.state !== s.summary.state || item.done !== done)) {
      item.state = s.summary.state;
      item.done = done;
      this._renderBar();
    }
    this._renderSweep(s);
    if (!ACTIVE_SWEEP_STATES.includes(s.summary.state)) {
      void this._poll.stop();
    }
  }

  private _renderBar(): void {
    this._bar.textContent = '';
    const select = htmlSelect({ 'aria-label': 'sweep' });
    select.append(el('option', { value: '' }, 'New sweep\u2026'));
    for (const s of this._list) {
      const when = new Date(s.created_at * 1000).toLocaleString();
      select.append(el('option', { value: s.id }, `${s.id.slice(-6)} \u2013 ${s.objective} \u2013 ${s.state} (${s.done}/${s.trials}) \u2013 ${when}`));
    }
    select.value = this.sweepId ?? '';
    select.addEventListener('change', () => this.showSweep(select.value || null));
    this._bar.append(
      el('span', { class: 'jp-offload-sweep-path' }, this.path),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Sweep'), selectBox(select))
    );
  }

  private async _renderSetup(): Promise<void> {
    void this._poll.stop();
    this._body.textContent = '';
    this._body.append(el('p', { class: 'jp-offload-muted' }, 'Reading the notebook\u2026'));
    let backends: IBackends;
    let params: IParameter[];
    try {
      const [b, inspection] = await Promise.all([api.backends(), api.inspect(this.path)]);
      backends = b;
      params = inspection.parameters;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.field === 'path' && !this._list.length) {
        this.onGone(); // restored for a notebook that is gone, with no sweep to show
        return;
      }
      this._body.textContent = '';
      this._body.append(el('p', { class: 'jp-offload-field-error' }, errorText(err)));
      return;
    }
    if (this.sweepId) {
      return; // a sweep was chosen meanwhile
    }
    const form = new SweepSetupForm(this.path, params, backends, loggedMetrics(this._opts.notebookSources()), async req => {
      const s = await sweepApi.start(req);
      Notification.info(`Sweep ${s.summary.id.slice(-6)} started: ${req.trials} trials, ${req.parallel} at a time.`, {
        autoClose: 4000
      });
      this._forceNew = false;
      this.sweepId = s.summary.id;
      this.onSweepChanged();
      this.onSweepStarted();
      await this.reload();
    });
    this._body.textContent = '';
    this._body.append(form.node);
  }

  private _renderSweep(s: ISweepState): void {
    const sum = s.summary;
    const objective = sum.objectives[0];
    const maximize = sum.directions[0] === 'maximize';
    const actions: ISweepViewActions = {
      stop: () => void this.stop(),
      resume: () => void this.resume(),
      applyBest: state => void this._opts.applyBest(state),
      openTrial: (jobId, finished) => this._opts.openTrial(jobId, finished)
    };
    const plots = el(
      'div',
      { class: 'jp-offload-sweep-plots' },
      historyPlot(s.history, objective, maximize),
      parallelCoordinates(s.trials, sum.space, objective, maximize),
      importanceBars(s.importances, sum.counts.n_complete ?? 0)
    );
    const scrollTop = this.node.scrollTop;
    this._body.textContent = '';
    this._body.append(
      sweepHeader(s, actions),
      plots,
      el('h3', { class: 'jp-offload-sweep-h' }, 'Trials'),
      trialsTable(s, actions)
    );
    this.node.scrollTop = scrollTop;
  }

  private _opts: ISweepWidgetOptions;
  private _bar: HTMLElement;
  private _body: HTMLElement;
  private _list: ISweepListItem[] = [];
  private _state: ISweepState | null = null;
  private _poll = createPoll('sweep', 1500, () => this._load());
  private _seq = 0;
  private _forceNew = false;
}
