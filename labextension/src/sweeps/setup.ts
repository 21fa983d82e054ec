/**
 * The sweep setup form: the search space (sweeps/space.ts), objective and direction (suggested
 * from the notebook's offload.log_metric calls), budget and parallelism, sampler, pruner, seed,
 * and the machine. Bad fields are flagged in place; a 400 from the server names its field.
 */
import { ApiError, errorText, IBackends, IParameter, ISpaceEntry, ISweepRequest } from '../api';
import { el, htmlSelect, selectBox } from '../util/dom';
import { formatMoney } from '../util/format';
import { parseDuration } from '../util/parse';
import { userBackends } from '../jobs/dialog';
import { checkRow, IParamRow, markRow, paramRow } from './space';

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
    backends = userBackends(backends);
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
      const row = paramRow(p);
      this._rows.push(row);
      table.append(row.row);
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
    this._direction = htmlSelect({ 'aria-label': 'direction' });
    this._direction.append(el('option', { value: 'maximize' }, 'maximize'), el('option', { value: 'minimize' }, 'minimize'));
    if (metrics[0] && /loss|err|latency|time|mse|mae|rmse/i.test(metrics[0])) {
      this._direction.value = 'minimize';
    }
    this._trials = this._int('trials', 20);
    this._parallel = this._int('parallel', 2);
    this._perGpu = this._int('trials per GPU', 1);
    this._sampler = htmlSelect({ 'aria-label': 'sampler' });
    for (const s of ['tpe', 'random', 'grid', 'cmaes', 'gp']) {
      this._sampler.append(el('option', { value: s }, s));
    }
    this._pruner = htmlSelect({ 'aria-label': 'pruner' });
    for (const s of ['none', 'median', 'percentile', 'hyperband', 'successive-halving']) {
      this._pruner.append(el('option', { value: s }, s));
    }
    this._seed = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'seed', placeholder: 'random' });
    this._objError = el('div', { class: 'jp-offload-field-error', role: 'alert' });
    obj.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Objective'), this._objective, datalist),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Direction'), selectBox(this._direction)),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Trials'), this._trials),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Parallel'), this._parallel),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Trials per GPU'), this._perGpu),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Sampler'), selectBox(this._sampler)),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Pruner'), selectBox(this._pruner)),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Seed'), this._seed),
      this._objError
    );

    // machine ---------------------------------------------------------------------------------
    const machine = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Machine'));
    this._backend = htmlSelect({ 'aria-label': 'backend' });
    for (const be of backends.backends) {
      const o = el('option', { value: be.name }, be.available ? be.name : `${be.name} (unavailable)`);
      o.disabled = !be.available;
      this._backend.append(o);
    }
    this._backend.value = backends.backends.some(b => b.name === backends.default_backend && b.available)
      ? backends.default_backend
      : backends.backends.find(b => b.available)?.name ?? '';
    this._machine = htmlSelect({ 'aria-label': 'machine' });
    this._spot = el('input', { type: 'checkbox', 'aria-label': 'spot' });
    this._runtime = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'max runtime per trial' });
    this._runtime.value = backends.max_runtime || '4h';
    this._backend.addEventListener('change', () => this._fillMachines());
    this._fillMachines();
    machine.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Backend'), selectBox(this._backend)),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Machine'), selectBox(this._machine)),
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
      const e = checkRow(f);
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
    const noObjective = !this._objective.value.trim();
    if (noObjective) {
      errs.push('Name the objective: a metric the notebook logs with offload.log_metric.');
    }
    this._objective.classList.toggle('jp-offload-invalid', noObjective);
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
    this._seed.classList.toggle('jp-offload-invalid', seed !== null && !Number.isInteger(seed));
    const badRuntime = !parseDuration(this._runtime.value);
    if (badRuntime) {
      errs.push('max runtime: write it like 30m, 4h or 1d.');
    }
    this._runtime.classList.toggle('jp-offload-invalid', badRuntime);
    this._objError.textContent = errs.join(' ');
    if (!ok || errs.length) {
      // Enter or Start on an invalid form: the first invalid field gets the focus
      this.node.querySelector<HTMLElement>('.jp-offload-invalid, [aria-invalid="true"]')?.focus();
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
        markRow(row, errorText(err));
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
