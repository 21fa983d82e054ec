/**
 * The Sweep panel: a main-area widget opened from a notebook ("Sweep Parameters…", notebook
 * toolbar or palette). Builds the search space from the notebook's parameters cell (ranges, log
 * scale, choices, fixed values), sets objective, direction, budget, parallelism, packing and the
 * machine, starts the sweep on the server (its driver runs detached there), then shows it live:
 * trials table (state, parameters, objective, duration, cost), optimization history, parallel
 * coordinates, importances; opens a trial's executed notebook; applies the best parameters to the
 * open notebook through its model; stops it.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, refreshIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  api,
  formatDuration,
  formatMoney,
  formatValue,
  IBackends,
  IParameter,
  request
} from './api';
import { el, parseDuration, parseParameter } from './dialog';
import { stateBadge } from './panel';
import {
  importanceBars,
  historyPlot,
  IHistoryPoint,
  ISpaceEntry,
  ITrialRow,
  parallelCoordinates
} from './sweepplots';
import { CommandIDs, IOffload } from './tokens';

export namespace SweepCommandIDs {
  export const open = 'offload:sweep';
}

// ---------------------------------------------------------------------------------------------
// REST client for /offload/api/sweeps

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

const post = <T>(path: string, body: any) => request<T>(path, { method: 'POST', body: JSON.stringify(body) });

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

const ACTIVE = ['created', 'running', 'stopping'];

function errorText(err: unknown): string {
  return err instanceof ApiError ? err.text : String((err as Error)?.message ?? err);
}

// ---------------------------------------------------------------------------------------------
// the setup form

interface IParamRow {
  param: IParameter;
  row: HTMLElement;
  mode: HTMLSelectElement;
  low: HTMLInputElement;
  high: HTMLInputElement;
  log: HTMLInputElement;
  step: HTMLInputElement;
  choices: HTMLInputElement;
  fixed: HTMLInputElement;
  error: HTMLElement;
}

function numeric(p: IParameter): boolean {
  return (p.type === 'int' || p.type === 'float') && typeof p.default === 'number';
}

function suggestRange(p: IParameter): { low: number; high: number; log: boolean } {
  const d = p.default as number;
  if (p.type === 'int') {
    if (d > 0) {
      return { low: Math.max(1, Math.floor(d / 2)), high: Math.max(d * 2, 2), log: false };
    }
    return { low: 0, high: 10, log: false };
  }
  if (d > 0) {
    const log = d < 1;
    return { low: +(d / 10).toPrecision(3), high: log ? Math.min(1, +(d * 10).toPrecision(3)) : d * 10, log };
  }
  if (d < 0) {
    return { low: d * 2, high: 0, log: false };
  }
  return { low: 0, high: 1, log: false };
}

function listText(values: any[]): string {
  return values.map(v => (typeof v === 'boolean' ? (v ? 'True' : 'False') : v === null ? 'None' : String(v))).join(', ');
}

/** Metric names the notebook logs (``offload.log_metric("name", ...)``): objective suggestions. */
export function loggedMetrics(sources: string[]): string[] {
  const out = new Set<string>();
  for (const s of sources) {
    for (const m of s.matchAll(/log_metric\(\s*(?:name\s*=\s*)?['"]([^'"]+)['"]/g)) {
      out.add(m[1]);
    }
  }
  return [...out];
}

export class SweepSetupForm {
  constructor(
    readonly path: string,
    params: IParameter[],
    backends: IBackends,
    metrics: string[],
    onStart: (req: ISweepRequest) => Promise<void>
  ) {
    this._backends = backends;
    this._onStart = onStart;
    this.node = el('form', { class: 'jp-offload-sweep-setup', 'aria-label': 'new sweep' });
    this.node.addEventListener('submit', e => {
      e.preventDefault();
      void this._start();
    });

    // search space ----------------------------------------------------------------------------
    const space = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Search space'));
    if (!params.length) {
      space.append(
        el(
          'p',
          { class: 'jp-offload-field-error' },
          'This notebook has no cell tagged "parameters": tag the cell with the defaults, save, and reopen this panel.'
        )
      );
    }
    const table = el('div', { class: 'jp-offload-sweep-space', role: 'table', 'aria-label': 'search space' });
    for (const p of params) {
      table.append(this._paramRow(p));
    }
    space.append(table);

    // objective and budget ------------------------------------------------------------------
    const obj = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Objective and budget'));
    this._objective = el('input', {
      class: 'jp-mod-styled jp-offload-input',
      'aria-label': 'objective metric',
      list: 'jp-offload-sweep-metrics',
      placeholder: 'metric logged with offload.log_metric'
    });
    this._objective.value = metrics[0] ?? '';
    const datalist = el('datalist', { id: 'jp-offload-sweep-metrics' });
    for (const m of metrics) {
      datalist.append(el('option', { value: m }));
    }
    this._direction = el('select', { class: 'jp-mod-styled', 'aria-label': 'direction' });
    this._direction.append(el('option', { value: 'maximize' }, 'maximize'), el('option', { value: 'minimize' }, 'minimize'));
    if (metrics[0] && /loss|err|latency|time|mse|mae|rmse/i.test(metrics[0])) {
      this._direction.value = 'minimize';
    }
    this._trials = this._int('trials', 20);
    this._parallel = this._int('parallel', 2);
    this._perGpu = this._int('trials per GPU', 1);
    this._sampler = el('select', { class: 'jp-mod-styled', 'aria-label': 'sampler' });
    for (const s of ['tpe', 'random', 'grid', 'cmaes', 'gp']) {
      this._sampler.append(el('option', { value: s }, s));
    }
    this._pruner = el('select', { class: 'jp-mod-styled', 'aria-label': 'pruner' });
    for (const s of ['none', 'median', 'percentile', 'hyperband', 'successive-halving']) {
      this._pruner.append(el('option', { value: s }, s));
    }
    this._seed = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'seed', placeholder: 'random' });
    this._objError = el('div', { class: 'jp-offload-field-error', role: 'alert' });
    obj.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Objective'), this._objective, datalist),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Direction'), this._direction),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Trials'), this._trials),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Parallel'), this._parallel),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Trials per GPU'), this._perGpu),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Sampler'), this._sampler),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Pruner'), this._pruner),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Seed'), this._seed),
      this._objError
    );

    // machine ---------------------------------------------------------------------------------
    const machine = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Machine'));
    this._backend = el('select', { class: 'jp-mod-styled', 'aria-label': 'backend' });
    for (const be of backends.backends) {
      const o = el('option', { value: be.name }, be.available ? be.name : `${be.name} (unavailable)`);
      o.disabled = !be.available;
      this._backend.append(o);
    }
    this._backend.value = backends.backends.some(b => b.name === backends.default_backend && b.available)
      ? backends.default_backend
      : backends.backends.find(b => b.available)?.name ?? '';
    this._machine = el('select', { class: 'jp-mod-styled', 'aria-label': 'machine' });
    this._spot = el('input', { type: 'checkbox', 'aria-label': 'spot' });
    this._runtime = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'max runtime per trial' });
    this._runtime.value = backends.max_runtime || '4h';
    this._backend.addEventListener('change', () => this._fillMachines());
    this._fillMachines();
    machine.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Backend'), this._backend),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Machine'), this._machine),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Spot (preemptible)'), this._spot),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Max runtime per trial'), this._runtime)
    );

    this._error = el('div', { class: 'jp-offload-field-error jp-offload-sweep-error', role: 'alert' });
    this._startButton = el(
      'button',
      { type: 'submit', class: 'jp-mod-styled jp-mod-accept jp-offload-sweep-start' },
      'Start sweep'
    );
    this._startButton.disabled = !params.length;
    this.node.append(
      space,
      el('div', { class: 'jp-offload-sweep-setup-side' }, obj, machine, this._startButton, this._error)
    );
  }

  readonly node: HTMLFormElement;

  private _int(label: string, value: number): HTMLInputElement {
    const input = el('input', {
      class: 'jp-mod-styled jp-offload-input jp-offload-sweep-num',
      type: 'number',
      min: '1',
      step: '1',
      'aria-label': label
    });
    input.value = String(value);
    return input;
  }

  private _paramRow(p: IParameter): HTMLElement {
    const isNum = numeric(p);
    const mode = el('select', { class: 'jp-mod-styled', 'aria-label': `${p.name} mode` });
    if (isNum) {
      mode.append(el('option', { value: 'range' }, 'range'));
    }
    mode.append(el('option', { value: 'choices' }, 'choices'), el('option', { value: 'fixed' }, 'fixed'));
    const input = (label: string, cls = '') =>
      el('input', { class: `jp-mod-styled jp-offload-input ${cls}`, 'aria-label': `${p.name} ${label}`, placeholder: label });
    const low = input('low', 'jp-offload-sweep-num');
    const high = input('high', 'jp-offload-sweep-num');
    const step = input('step', 'jp-offload-sweep-num');
    const log = el('input', { type: 'checkbox', 'aria-label': `${p.name} log scale` });
    const choices = input('choices, comma-separated');
    const fixed = input('value');
    fixed.value = p.source;
    const error = el('div', { class: 'jp-offload-field-error', role: 'alert' });
    if (isNum) {
      const r = suggestRange(p);
      low.value = String(r.low);
      high.value = String(r.high);
      log.checked = r.log;
      choices.value = String(p.default);
      mode.value = /seed|epoch|verbose|debug/i.test(p.name) ? 'fixed' : 'range';
    } else {
      choices.value = p.type === 'bool' ? 'True, False' : listText([p.default]);
      mode.value = 'fixed';
    }
    const range = el(
      'span',
      { class: 'jp-offload-sweep-range' },
      low,
      el('span', { class: 'jp-offload-muted' }, '\u2013'),
      high,
      el('label', { class: 'jp-offload-sweep-log' }, log, 'log'),
      step
    );
    const row = el(
      'div',
      { class: 'jp-offload-sweep-param', role: 'row', 'data-param': p.name },
      el('span', { class: 'jp-offload-param-name', role: 'cell', title: p.help || p.name }, p.name),
      el('span', { class: 'jp-offload-param-type', role: 'cell' }, p.type),
      mode,
      el('span', { class: 'jp-offload-sweep-value', role: 'cell' }, range, choices, fixed),
      error
    );
    const show = () => {
      range.style.display = mode.value === 'range' ? '' : 'none';
      choices.style.display = mode.value === 'choices' ? '' : 'none';
      fixed.style.display = mode.value === 'fixed' ? '' : 'none';
      row.dataset.mode = mode.value;
    };
    mode.addEventListener('change', show);
    show();
    const f = { param: p, row, mode, low, high, log, step, choices, fixed, error };
    for (const i of [low, high, step, choices, fixed]) {
      i.addEventListener('input', () => this._check(f));
    }
    log.addEventListener('change', () => this._check(f));
    this._rows.push(f);
    return row;
  }

  /** The space entry of one parameter, or an error message shown under its row. */
  private _check(f: IParamRow): ISpaceEntry | null {
    let out: ISpaceEntry | null = null;
    let err = '';
    const p = f.param;
    if (f.mode.value === 'range') {
      const kind = p.type === 'int' ? 'int' : 'float';
      const lo = parseParameter(f.low.value, kind);
      const hi = parseParameter(f.high.value, kind);
      const st = f.step.value.trim() ? parseParameter(f.step.value, kind) : { value: null };
      if (lo.error || hi.error || st.error) {
        err = `low, high and step ${lo.error ?? hi.error ?? st.error}`;
      } else if (lo.value >= hi.value) {
        err = 'low must be below high';
      } else if (f.log.checked && lo.value <= 0) {
        err = 'a log scale needs low > 0';
      } else if (f.log.checked && st.value !== null) {
        err = 'a log scale cannot have a step';
      } else if (st.value !== null && st.value <= 0) {
        err = 'step must be > 0';
      } else {
        out = { type: kind, low: lo.value, high: hi.value, log: f.log.checked };
        if (st.value !== null) {
          out.step = st.value;
        }
      }
    } else if (f.mode.value === 'choices') {
      const items = f.choices.value
        .split(',')
        .map(s => s.trim())
        .filter(s => s !== '');
      const vals: any[] = [];
      for (const it of items) {
        const r = parseParameter(it, p.type === 'str' ? 'str' : 'any');
        if (r.error) {
          err = `choice ${it} ${r.error}`;
          break;
        }
        vals.push(r.value);
      }
      if (!err && !vals.length) {
        err = 'give at least one choice';
      } else if (!err && new Set(vals.map(v => JSON.stringify(v))).size !== vals.length) {
        err = 'a choice is listed twice';
      } else if (!err) {
        out = { type: 'categorical', choices: vals };
      }
    } else {
      const r = parseParameter(f.fixed.value, p.type);
      if (r.error) {
        err = r.error;
      } else {
        out = { type: 'fixed', value: r.value };
      }
    }
    this._mark(f, err);
    return out;
  }

  private _mark(f: IParamRow, err: string): void {
    f.error.textContent = err ? `${f.param.name}: ${err}` : '';
    f.row.classList.toggle('jp-offload-invalid-row', !!err);
  }

  private _machines() {
    return this._backends.backends.find(b => b.name === this._backend.value)?.machines ?? [];
  }

  private _fillMachines(): void {
    this._machine.textContent = '';
    for (const m of this._machines()) {
      const price = m.price_per_hour !== null ? ` \u2013 ${formatMoney(m.price_per_hour)}/h` : '';
      const gpu = m.gpu ? ` \u2013 ${m.gpu_count}\u00d7 ${m.gpu}` : '';
      this._machine.append(el('option', { value: m.name }, `${m.name}${gpu}${price}`));
    }
    if (this._backends.default_machine && this._machines().some(m => m.name === this._backends.default_machine)) {
      this._machine.value = this._backends.default_machine;
    }
    const m = this._machines().find(x => x.name === this._machine.value);
    this._spot.disabled = !m || m.spot_price_per_hour === null;
  }

  /** The request, or null with every problem shown in place. */
  collect(): ISweepRequest | null {
    let ok = true;
    const space: Record<string, ISpaceEntry> = {};
    for (const f of this._rows) {
      const e = this._check(f);
      if (!e) {
        ok = false;
      } else {
        space[f.param.name] = e;
      }
    }
    const searched = Object.values(space).filter(e => e.type !== 'fixed').length;
    const errs: string[] = [];
    if (ok && !searched) {
      errs.push('Search at least one parameter (a range or choices).');
    }
    if (!this._objective.value.trim()) {
      errs.push('Name the objective: a metric the notebook logs with offload.log_metric.');
    }
    const ints: Record<string, number> = {};
    for (const [k, i] of [
      ['trials', this._trials],
      ['parallel', this._parallel],
      ['per_gpu', this._perGpu]
    ] as [string, HTMLInputElement][]) {
      const v = Number(i.value);
      if (!Number.isInteger(v) || v < 1) {
        errs.push(`${i.getAttribute('aria-label')} must be a whole number >= 1.`);
        i.classList.add('jp-offload-invalid');
      } else {
        i.classList.remove('jp-offload-invalid');
      }
      ints[k] = v;
    }
    let seed: number | null = null;
    if (this._seed.value.trim()) {
      seed = Number(this._seed.value);
      if (!Number.isInteger(seed)) {
        errs.push('seed must be a whole number.');
      }
    }
    if (!parseDuration(this._runtime.value)) {
      errs.push('max runtime: write it like 30m, 4h or 1d.');
    }
    this._objError.textContent = errs.join(' ');
    if (!ok || errs.length) {
      return null;
    }
    return {
      path: this.path,
      space,
      objective: this._objective.value.trim(),
      direction: this._direction.value,
      trials: ints.trials,
      parallel: ints.parallel,
      per_gpu: ints.per_gpu,
      sampler: this._sampler.value,
      pruner: this._pruner.value === 'none' ? null : this._pruner.value,
      seed,
      backend: this._backend.value,
      machine: this._machine.value && this._machine.value !== 'local' ? this._machine.value : null,
      spot: this._spot.checked,
      max_runtime: this._runtime.value.trim()
    };
  }

  private async _start(): Promise<void> {
    this._error.textContent = '';
    const req = this.collect();
    if (!req) {
      return;
    }
    this._startButton.disabled = true;
    try {
      await this._onStart(req);
    } catch (err) {
      // a 400 names the field: space.<name> points at one parameter's row
      const field = err instanceof ApiError ? err.field ?? '' : '';
      const row = field.startsWith('space.') ? this._rows.find(r => r.param.name === field.slice(6)) : undefined;
      if (row) {
        this._mark(row, errorText(err));
      }
      this._error.textContent = errorText(err);
    } finally {
      this._startButton.disabled = false;
    }
  }

  private _backends: IBackends;
  private _onStart: (req: ISweepRequest) => Promise<void>;
  private _rows: IParamRow[] = [];
  private _objective: HTMLInputElement;
  private _direction: HTMLSelectElement;
  private _trials: HTMLInputElement;
  private _parallel: HTMLInputElement;
  private _perGpu: HTMLInputElement;
  private _sampler: HTMLSelectElement;
  private _pruner: HTMLSelectElement;
  private _seed: HTMLInputElement;
  private _objError: HTMLElement;
  private _backend: HTMLSelectElement;
  private _machine: HTMLSelectElement;
  private _spot: HTMLInputElement;
  private _runtime: HTMLInputElement;
  private _error: HTMLElement;
  private _startButton: HTMLButtonElement;
}

// ---------------------------------------------------------------------------------------------
// the widget

export interface ISweepWidgetOptions {
  path: string;
  sweepId?: string | null;
  /** Sources of the open notebook's code cells (objective suggestions), when it is open. */
  notebookSources: () => string[];
  openTrial: (jobId: string, finished: boolean) => void;
  applyBest: (state: ISweepState) => Promise<void>;
}

const TRIAL_STATE: Record<string, string> = {
  COMPLETE: 'succeeded',
  RUNNING: 'running',
  WAITING: 'queued',
  PRUNED: 'cancelled',
  FAIL: 'failed'
};

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
    this._renderBar();
    if (id) {
      this._body.textContent = '';
      this._body.append(el('p', { class: 'jp-offload-muted' }, 'Loading\u2026'));
      void this.refresh();
    } else {
      void this._renderSetup();
    }
  }

  async refresh(): Promise<void> {
    const id = this.sweepId;
    if (!id || this._busy) {
      return;
    }
    this._busy = true;
    try {
      const s = await sweepApi.state(id);
      if (id !== this.sweepId) {
        return;
      }
      this._state = s;
      const item = this._list.find(x => x.id === s.summary.id);
      const c = s.summary.counts;
      const done = (c.n_complete ?? 0) + (c.n_pruned ?? 0) + (c.n_fail ?? 0);
      if (item && (item.state !== s.summary.state || item.done !== done)) {
        item.state = s.summary.state;
        item.done = done;
        this._renderBar();
      }
      this._renderSweep(s);
      this._schedule(ACTIVE.includes(s.summary.state) ? 1500 : 0);
    } catch (err) {
      this._body.textContent = '';
      this._body.append(el('p', { class: 'jp-offload-field-error' }, `Cannot read sweep ${id}: ${errorText(err)}`));
      this._schedule(5000);
    } finally {
      this._busy = false;
    }
  }

  async stop(): Promise<void> {
    if (!this.sweepId) {
      return;
    }
    const id = this.sweepId;
    const state = this._state?.summary.id === id ? this._state.summary.state : null;
    if (state && !ACTIVE.includes(state)) {
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
    window.clearTimeout(this._timer);
    super.dispose();
  }

  private _schedule(ms: number): void {
    window.clearTimeout(this._timer);
    if (ms > 0 && !this.isDisposed) {
      this._timer = window.setTimeout(() => void this.refresh(), document.hidden ? ms * 4 : ms);
    }
  }

  private _renderBar(): void {
    this._bar.textContent = '';
    const select = el('select', { class: 'jp-mod-styled', 'aria-label': 'sweep' });
    select.append(el('option', { value: '' }, 'New sweep\u2026'));
    for (const s of this._list) {
      const when = new Date(s.created_at * 1000).toLocaleString();
      select.append(el('option', { value: s.id }, `${s.id.slice(-6)} \u2013 ${s.objective} \u2013 ${s.state} (${s.done}/${s.trials}) \u2013 ${when}`));
    }
    select.value = this.sweepId ?? '';
    select.addEventListener('change', () => this.showSweep(select.value || null));
    this._bar.append(
      el('span', { class: 'jp-offload-sweep-path' }, this.path),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Sweep'), select)
    );
  }

  private async _renderSetup(): Promise<void> {
    window.clearTimeout(this._timer);
    this._body.textContent = '';
    this._body.append(el('p', { class: 'jp-offload-muted' }, 'Reading the notebook\u2026'));
    let backends: IBackends;
    let params: IParameter[];
    try {
      const [b, inspection] = await Promise.all([api.backends(), api.inspect(this.path)]);
      backends = b;
      params = inspection.parameters;
    } catch (err) {
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
      await this.reload();
    });
    this._body.textContent = '';
    this._body.append(form.node);
  }

  private _renderSweep(s: ISweepState): void {
    const sum = s.summary;
    const objective = sum.objectives[0];
    const maximize = sum.directions[0] === 'maximize';
    const c = sum.counts;
    const done = (c.n_complete ?? 0) + (c.n_pruned ?? 0) + (c.n_fail ?? 0);
    const scrollTop = this.node.scrollTop;
    this._body.textContent = '';

    // header ------------------------------------------------------------------------------------
    const head = el('div', { class: 'jp-offload-sweep-head' });
    const badge = el('span', { class: `jp-offload-state jp-offload-sweep-state-${sum.state}`, 'data-state': sum.state }, sum.state);
    const stop = el('button', { class: 'jp-mod-styled jp-mod-warn', type: 'button' }, 'Stop');
    stop.disabled = !['created', 'running'].includes(sum.state);
    stop.addEventListener('click', () => void this.stop());
    // stopped, interrupted (the driver died) or failed with budget left: a new driver goes on
    const resumable = ['stopped', 'interrupted', 'failed'].includes(sum.state) && done < sum.trials;
    const resume = el('button', { class: 'jp-mod-styled', type: 'button' }, 'Resume');
    resume.title = 'Start a new driver: re-queued points first, running jobs adopted';
    resume.addEventListener('click', () => void this.resume());
    const apply = el('button', { class: 'jp-mod-styled jp-mod-accept', type: 'button' }, 'Apply best to notebook');
    apply.disabled = !sum.best;
    apply.title = sum.pareto.length ? 'Several objectives: pick a trial in the table' : '';
    apply.addEventListener('click', () => void this._opts.applyBest(s));
    const best = sum.best
      ? `best ${objective} = ${formatValue(sum.best.value)} (trial ${sum.best.number}: ${Object.entries(sum.best.params)
          .map(([k, v]) => `${k}=${formatValue(v)}`)
          .join(', ')})`
      : 'no complete trial yet';
    head.append(
      el('div', { class: 'jp-offload-sweep-title' }, badge, el('strong', {}, `Sweep ${sum.id.slice(-6)}`), ` ${objective} (${sum.directions[0]})`),
      el(
        'div',
        { class: 'jp-offload-sweep-counts', 'aria-live': 'polite' },
        `${done} of ${sum.trials} done: ${c.n_complete ?? 0} complete, ${c.n_pruned ?? 0} pruned, ${c.n_fail ?? 0} failed, ${c.n_running ?? 0} running${c.n_requeued ? `, ${c.n_requeued} re-queued` : ''} \u2013 cost ${formatMoney(s.total_cost)}`
      ),
      el('div', { class: 'jp-offload-sweep-best' + (sum.best ? '' : ' jp-offload-muted') }, best),
      el('div', { class: 'jp-offload-sweep-actions' }, apply, stop, ...(resumable ? [resume] : []))
    );
    if (sum.error) {
      head.append(el('div', { class: 'jp-offload-field-error' }, sum.error));
    }
    const progress = el('div', { class: 'jp-offload-progress' });
    const fill = el('div', { class: 'jp-offload-progress-fill' });
    fill.style.width = `${Math.min(100, (100 * done) / Math.max(1, sum.trials))}%`;
    progress.append(fill);
    head.append(progress);

    // plots ---------------------------------------------------------------------------------------
    const plots = el('div', { class: 'jp-offload-sweep-plots' });
    plots.append(
      historyPlot(s.history, objective, maximize),
      parallelCoordinates(s.trials, sum.space, objective, maximize),
      importanceBars(s.importances, c.n_complete ?? 0)
    );

    // trials table ------------------------------------------------------------------------------
    const names = Object.keys(sum.space).filter(k => sum.space[k].type !== 'fixed');
    const table = el('table', { class: 'jp-offload-table jp-offload-sweep-trials', 'aria-label': 'trials' });
    const hrow = el('tr', {}, el('th', {}, '#'), el('th', {}, 'state'));
    for (const n of names) {
      hrow.append(el('th', {}, n));
    }
    hrow.append(el('th', {}, objective), el('th', {}, 'duration'), el('th', {}, 'cost'), el('th', {}, ''));
    table.append(el('thead', {}, hrow));
    const tbody = el('tbody');
    for (const t of s.trials) {
      const finished = ['COMPLETE', 'PRUNED', 'FAIL'].includes(t.state);
      const isBest = !!sum.best && sum.best.number === t.number;
      const tr = el('tr', {
        class: 'jp-offload-sweep-trial' + (isBest ? ' jp-mod-best' : ''),
        'data-trial': String(t.number),
        'data-state': t.state,
        tabindex: t.job_id ? '0' : '-1',
        title: t.error ?? (t.job_id ? `job ${t.job_id}: click to open ${finished ? 'its executed notebook' : 'it'}` : '')
      });
      const badgeTd = el('td', {}, stateBadge(TRIAL_STATE[t.state] ?? t.state));
      (badgeTd.firstChild as HTMLElement).textContent = t.state.toLowerCase() + (t.requeued ? ' (re-queued)' : '');
      tr.append(el('td', {}, String(t.number)), badgeTd);
      for (const n of names) {
        tr.append(el('td', {}, n in t.params ? formatValue(t.params[n]) : '\u2013'));
      }
      const dur = t.duration_s ?? (t.started_at && t.state === 'RUNNING' ? Date.now() / 1000 - t.started_at : null);
      tr.append(
        el('td', { class: 'jp-offload-sweep-objective' }, t.value !== null ? formatValue(t.value) : t.error ? 'error' : '\u2013'),
        el('td', {}, formatDuration(dur)),
        el('td', {}, formatMoney(t.cost))
      );
      const actions = el('td', { class: 'jp-offload-sweep-row-actions' });
      if (t.job_id) {
        const open = el('button', { class: 'jp-mod-styled jp-offload-link', type: 'button' }, finished ? 'notebook' : 'log');
        open.addEventListener('click', e => {
          e.stopPropagation();
          this._opts.openTrial(t.job_id!, finished);
        });
        actions.append(open);
        if (t.state === 'COMPLETE' && sum.objectives.length > 1) {
          const use = el('button', { class: 'jp-mod-styled jp-offload-link', type: 'button' }, 'apply');
          use.addEventListener('click', e => {
            e.stopPropagation();
            void this._opts.applyBest({ ...s, summary: { ...sum, best: t, pareto: [] } });
          });
          actions.append(use);
        }
        tr.addEventListener('click', () => this._opts.openTrial(t.job_id!, finished));
        tr.addEventListener('keydown', e => {
          if (e.key === 'Enter') {
            this._opts.openTrial(t.job_id!, finished);
          }
        });
      }
      tr.append(actions);
      tbody.append(tr);
    }
    table.append(tbody);
    const tableWrap = el('div', { class: 'jp-offload-sweep-table-wrap' }, table);
    if (!s.trials.length) {
      tableWrap.append(el('p', { class: 'jp-offload-muted' }, 'Trials appear here as the driver starts them.'));
    }
    this._body.append(head, plots, el('h3', { class: 'jp-offload-sweep-h' }, 'Trials'), tableWrap);
    this.node.scrollTop = scrollTop;
  }

  private _opts: ISweepWidgetOptions;
  private _bar: HTMLElement;
  private _body: HTMLElement;
  private _list: ISweepListItem[] = [];
  private _state: ISweepState | null = null;
  private _timer = 0;
  private _busy = false;
  private _forceNew = false;
}

// ---------------------------------------------------------------------------------------------
// the plugin

function parametersCell(panel: NotebookPanel) {
  for (const cell of panel.content.widgets) {
    const tags = cell.model.getMetadata('tags');
    if (cell.model.type === 'code' && Array.isArray(tags) && tags.includes('parameters')) {
      return cell;
    }
  }
  return null;
}

export const sweepPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:sweep',
  description: 'Sweep panel: Optuna sweeps over a notebook\u2019s parameters, live trials, plots, apply best.',
  autoStart: true,
  requires: [IOffload, INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    offload: IOffload,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    const sweepTracker = new WidgetTracker<MainAreaWidget<SweepWidget>>({ namespace: 'offload-sweep' });
    const panelFor = (path: string | null) => (path ? tracker.find(p => p.context.path === path) ?? null : null);

    async function applyBest(widget: SweepWidget, s: ISweepState): Promise<void> {
      const sum = s.summary;
      const path = sum.source_path ?? widget.path;
      const trial = sum.best && sum.pareto.length === 0 ? sum.best.number : undefined;
      const panel = panelFor(path);
      try {
        if (panel) {
          const cell = parametersCell(panel);
          if (!cell) {
            Notification.error(`${path} has no cell tagged "parameters".`);
            return;
          }
          const before = cell.model.sharedModel.getSource();
          const r = await sweepApi.applyBest(sum.id, { source: before, trial });
          cell.model.sharedModel.setSource(r.source ?? before);
          Notification.success(
            `Trial ${r.trial} parameters applied to ${path.split('/').pop()} (not saved yet): ${Object.entries(r.params)
              .map(([k, v]) => `${k}=${formatValue(v)}`)
              .join(', ')}`,
            {
              autoClose: 8000,
              actions: [{ label: 'Undo', callback: () => cell.model.sharedModel.setSource(before) }]
            }
          );
        } else {
          const r = await sweepApi.applyBest(sum.id, { path, trial });
          Notification.success(`Best parameters written into ${r.written}.`, { autoClose: 6000 });
        }
      } catch (err) {
        Notification.error(`Apply best failed: ${errorText(err)}`);
      }
    }

    function open(path: string, sweepId: string | null = null): MainAreaWidget<SweepWidget> {
      const existing = sweepTracker.find(w => w.content.path === path);
      if (existing) {
        if (sweepId && existing.content.sweepId !== sweepId) {
          existing.content.showSweep(sweepId);
        } else {
          void existing.content.reload();
        }
        shell.activateById(existing.id);
        return existing;
      }
      let widget: MainAreaWidget<SweepWidget> | null = null;
      const content: SweepWidget = new SweepWidget({
        path,
        sweepId,
        notebookSources: () =>
          panelFor(path)?.content.widgets.filter(c => c.model.type === 'code').map(c => c.model.sharedModel.getSource()) ?? [],
        openTrial: (jobId, finished) =>
          void commands.execute(finished ? CommandIDs.openExecuted : CommandIDs.openJob, { id: jobId }),
        applyBest: s => applyBest(content, s)
      });
      widget = new MainAreaWidget({ content });
      widget.id = `jp-offload-sweep-main-${path.replace(/[^\w-]/g, '_')}`;
      widget.title.label = content.title.label;
      widget.title.caption = `Parameter sweeps of ${path}`;
      widget.title.icon = LabIcon.resolve({ icon: 'jupyter-offload:gpu' });
      const w = widget;
      content.onSweepChanged = () => void sweepTracker.save(w);
      widget.toolbar.addItem(
        'refresh',
        new ToolbarButton({
          icon: refreshIcon,
          label: 'Refresh',
          tooltip: 'Read the sweeps again',
          onClick: () => void content.reload()
        })
      );
      widget.toolbar.addItem(
        'stop',
        new ToolbarButton({
          icon: stopIcon,
          label: 'Stop sweep',
          tooltip: 'Cancel running trials; resume later with `offload sweep resume`',
          onClick: () => void content.stop()
        })
      );
      void sweepTracker.add(widget);
      shell.add(widget, 'main', { mode: 'split-right' });
      return widget;
    }

    commands.addCommand(SweepCommandIDs.open, {
      label: args => (args.path ? `Sweep ${String(args.path).split('/').pop()}` : 'Sweep Parameters\u2026'),
      caption: 'Search the notebook\u2019s parameters with an Optuna sweep, each trial a job (jupyter-offload)',
      icon: args => (args.isPalette ? undefined : LabIcon.resolve({ icon: 'jupyter-offload:gpu' })),
      isEnabled: args => !!args.path || !!tracker.currentWidget,
      execute: async args => {
        let path = args.path ? String(args.path) : null;
        if (!path) {
          const panel = tracker.currentWidget;
          if (!panel) {
            return;
          }
          if (panel.context.model.dirty && !panel.context.model.readOnly) {
            await panel.context.save(); // the sweep runs the saved file
          }
          path = panel.context.path;
        }
        return open(path, args.id ? String(args.id) : null);
      }
    });
    if (restorer) {
      void restorer.restore(sweepTracker, {
        command: SweepCommandIDs.open,
        args: w => ({ path: w.content.path, id: w.content.sweepId }),
        name: w => w.content.path
      });
    }
    palette?.addItem({ command: SweepCommandIDs.open, category: 'Offload' });
    void offload; // IOffload: required so this loads after the core plugin (icon, commands)
  }
};
