/**
 * The "Run on GPU" dialog: machine and price, the notebook's parameters as a validated form,
 * detected dependencies, files to upload with sizes, extra files and data paths.
 *
 * Invalid input is flagged next to its field and disables Run, so a typo never costs a GPU run;
 * Enter on an invalid form shows the errors, focuses the first invalid field and keeps the dialog
 * open. The server checks everything again (and names the field) on submit.
 *
 * The dialog opens at once: the backends and the notebook's inspection arrive as promises, and
 * each part fills in when its answer comes (Run stays disabled until both have).
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { errorText, IBackends, IInspection, IMachine, IParameter, ISubmitRequest } from '../api';
import { el, htmlSelect, selectBox } from '../util/dom';
import { formatBytes, formatDuration, formatMoney } from '../util/format';
import { parseDuration } from '../util/parse';
import { ParametersForm } from './form';

/** Disable the dialog's accept button while the form is invalid. */
function setAcceptEnabled(node: HTMLElement, enabled: boolean): void {
  const button = node.closest('.jp-Dialog')?.querySelector<HTMLButtonElement>(
    '.jp-Dialog-button.jp-mod-accept'
  );
  if (button) {
    button.disabled = !enabled;
  }
}

/**
 * Enter in a dialog accepts it (JupyterLab's Dialog, listening on its own node): while the form
 * is invalid, catch Enter first (capture phase on the document), show what is wrong, focus the
 * first invalid field and keep the dialog and its edits. Returns the remover.
 */
export function guardEnter(body: HTMLElement, isValid: () => boolean): () => void {
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== 'Enter' || e.isComposing || !body.isConnected) {
      return;
    }
    const dialog = body.closest('.jp-Dialog');
    const target = e.target as HTMLElement | null;
    if (!dialog || !target || !dialog.contains(target)) {
      return;
    }
    if (target.closest('.jp-Dialog-button') && !target.closest('.jp-mod-accept')) {
      return; // Enter on Cancel cancels
    }
    if (isValid()) {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
    const first = body.querySelector<HTMLElement>('.jp-offload-invalid, [aria-invalid="true"]');
    (first ?? body).focus();
  };
  document.addEventListener('keydown', onKey, true);
  return () => document.removeEventListener('keydown', onKey, true);
}

/** Only user-facing backends (the server lists no other; an internal one is never offered). */
export function userBackends(b: IBackends): IBackends {
  return { ...b, backends: b.backends.filter(x => !(x as any).internal && x.name !== 'sweep-pack') };
}

export class RunDialogBody extends Widget implements Dialog.IBodyWidget<ISubmitRequest | null> {
  constructor(path: string, backends: Promise<IBackends>, inspection: Promise<IInspection>) {
    super();
    this.addClass('jp-offload-RunDialog');
    this._path = path;
    this._machinePart = el('div', { class: 'jp-offload-loading', 'aria-busy': 'true' }, 'Reading the backends and their machines\u2026');
    this._notebookPart = el('div', { class: 'jp-offload-loading', 'aria-busy': 'true' }, 'Reading the notebook\u2026');
    this.node.append(el('div', { class: 'jp-offload-path' }, this._path), this._machinePart, this._notebookPart);
    this.node.tabIndex = -1;
    const failed = (part: HTMLElement, what: string) => (err: unknown) => {
      part.className = 'jp-offload-field-error';
      part.removeAttribute('aria-busy');
      part.setAttribute('role', 'alert');
      part.textContent = `Cannot read ${what}: ${errorText(err)}`;
      this._validate();
    };
    this.ready = Promise.all([
      backends.then(b => {
        this._backends = userBackends(b);
        this._buildMachine();
        this._validate();
      }, failed(this._machinePart, 'the backends')),
      inspection.then(i => {
        this._inspection = i;
        this._buildNotebook();
        this._validate();
      }, failed(this._notebookPart, 'the notebook'))
    ]).then(() => undefined);
  }

  /** Settles once both answers have been shown (or their errors). */
  readonly ready: Promise<void>;

  getValue(): ISubmitRequest | null {
    return this._collect();
  }

  protected onAfterAttach(): void {
    this._unguard = guardEnter(this.node, () => this._validate());
    this._validate();
    (this._backendSelect ?? this.node).focus();
  }

  protected onBeforeDetach(): void {
    this._unguard();
  }

  private _buildMachine(): void {
    const b = this._backends!;

    // machine -------------------------------------------------------------------------------
    const machine = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Machine'));
    this._backendSelect = htmlSelect({ 'aria-label': 'backend' });
    for (const be of b.backends) {
      const o = el('option', { value: be.name }, be.available ? be.name : `${be.name} (unavailable)`);
      o.disabled = !be.available;
      this._backendSelect.append(o);
    }
    this._backendSelect.value = b.backends.some(x => x.name === b.default_backend && x.available)
      ? b.default_backend
      : b.backends.find(x => x.available)?.name ?? '';
    this._machineSelect = htmlSelect({ 'aria-label': 'machine' });
    this._spot = el('input', { type: 'checkbox', 'aria-label': 'spot' });
    this._runtime = el('input', {
      class: 'jp-mod-styled jp-offload-input',
      'aria-label': 'max runtime',
      placeholder: '4h'
    });
    this._runtime.value = b.max_runtime || '4h';
    this._runtimeError = el('div', { class: 'jp-offload-field-error', role: 'alert' });
    this._estimate = el('div', { class: 'jp-offload-estimate', 'aria-live': 'polite' });
    // budget and idle stop (offload/jobs/budget.py refuses over-budget launches before any cloud call)
    this._budget = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'budget', placeholder: 'none' });
    this._budget.value = b.budget ? String(b.budget) : '';
    this._capRuntime = el('input', { type: 'checkbox', 'aria-label': 'cut runtime to fit the budget' });
    this._idle = el('input', { class: 'jp-mod-styled jp-offload-input', 'aria-label': 'stop if idle', placeholder: 'off' });
    this._policyError = el('div', { class: 'jp-offload-field-error', role: 'alert' });
    this._budgetNote = el('div', { class: 'jp-offload-estimate', 'aria-live': 'polite' });
    this._backendError = el('div', { class: 'jp-offload-field-error' });
    machine.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Backend'), selectBox(this._backendSelect)),
      this._backendError,
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Machine'), selectBox(this._machineSelect)),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Spot (preemptible)'), this._spot),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Max runtime'), this._runtime),
      this._runtimeError,
      this._estimate,
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Budget ($)'), this._budget),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Cut runtime to fit budget'), this._capRuntime),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Stop if GPUs idle for'), this._idle),
      this._policyError,
      this._budgetNote
    );
    this._backendSelect.addEventListener('change', () => {
      this._fillMachines();
      this._validate();
    });
    for (const e of [this._machineSelect, this._spot, this._capRuntime]) {
      e.addEventListener('change', () => this._validate());
    }
    for (const e of [this._runtime, this._budget, this._idle]) {
      e.addEventListener('input', () => this._validate());
    }
    this._fillMachines();
    this._machinePart.replaceWith(machine);
    this._machinePart = machine;
    if (document.activeElement === this.node || !this.node.contains(document.activeElement)) {
      this._backendSelect.focus();
    }
  }

  private _buildNotebook(): void {
    const inspection = this._inspection!;
    // parameters ------------------------------------------------------------------------------
    const params = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Parameters'));
    this._params = new ParametersForm(inspection.parameters);
    this._params.onChange = () => this._validate();
    params.append(this._params.node);

    // environment -----------------------------------------------------------------------------
    const envSec = el('details', { class: 'jp-offload-section jp-offload-details' });
    const deps = inspection.deps;
    const pkgs = deps?.packages ?? [];
    envSec.append(
      el('summary', {}, `Dependencies: Python ${deps?.python ?? '?'}, ${pkgs.length} package(s)`)
    );
    const list = el('ul', { class: 'jp-offload-list' });
    for (const p of pkgs) {
      list.append(el('li', { title: (p.reasons || []).join('; ') }, p.spec));
    }
    for (const u of deps?.unresolved ?? []) {
      // an import that is also optional, or only in a function nothing calls, does not block
      const text = u.optional
        ? `unresolved import ${u.module} (${u.where ?? '?'}), not blocking: ${u.why ?? ''}`
        : `unresolved import ${u.module} (${u.where ?? '?'})`;
      list.append(el('li', { class: u.optional ? 'jp-offload-muted' : 'jp-offload-warning' }, text));
    }
    if (deps?.project_root) {
      const root = deps.project_root === '.' ? 'the server root' : deps.project_root;
      list.append(el('li', { class: 'jp-offload-muted' }, `project root: ${root}`));
    }
    for (const n of [...(deps?.notes ?? []), ...inspection.notes]) {
      list.append(el('li', { class: 'jp-offload-muted' }, n));
    }
    envSec.append(list);

    // files -----------------------------------------------------------------------------------
    const files = el('details', { class: 'jp-offload-section jp-offload-details' });
    // left out by the secret scanner (name or content) vs by ignore rules (caches, checkpoints)
    const secrets = inspection.excluded.filter(x => x.why !== 'ignore rule');
    const leftOut = inspection.excluded.length ? `, ${inspection.excluded.length} left out` : '';
    files.append(
      el(
        'summary',
        {},
        `Files to upload: ${inspection.files.length}, ${formatBytes(inspection.total_bytes)}${leftOut}`
      )
    );
    if (secrets.length) {
      files.open = true; // a secret left out is shown without a click
    }
    const flist = el('ul', { class: 'jp-offload-list jp-offload-files' });
    for (const f of inspection.files) {
      flist.append(
        el('li', {}, el('span', {}, f.path), el('span', { class: 'jp-offload-size' }, formatBytes(f.size)))
      );
    }
    for (const x of inspection.excluded) {
      const cls = secrets.includes(x) ? 'jp-offload-warning' : 'jp-offload-muted';
      flist.append(el('li', { class: cls }, `${x.path}: left out (${x.why})`));
    }
    files.append(
      flist,
      el('p', { class: 'jp-offload-muted' }, 'To leave files out, list them in .offloadignore (gitignore syntax).')
    );
    this._include = el('input', {
      class: 'jp-mod-styled jp-offload-input',
      'aria-label': 'extra files',
      placeholder: 'utils/, config.yaml'
    });
    this._data = el('input', {
      class: 'jp-mod-styled jp-offload-input',
      'aria-label': 'data paths',
      placeholder: 'data/'
    });
    const paths = el('fieldset', { class: 'jp-offload-section' }, el('legend', {}, 'Data'));
    paths.append(
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Data paths'), this._data),
      el('label', { class: 'jp-offload-row' }, el('span', {}, 'Extra files'), this._include),
      el('p', { class: 'jp-offload-muted' }, 'Comma-separated, relative to the notebook\u2019s folder.')
    );
    const part = el('div', { class: 'jp-offload-notebook-part' }, params, paths, envSec, files);
    this._notebookPart.replaceWith(part);
    this._notebookPart = part;
  }

  private _machines(): IMachine[] {
    return this._backends?.backends.find(b => b.name === this._backendSelect.value)?.machines ?? [];
  }

  private _fillMachines(): void {
    this._machineSelect.textContent = '';
    const be = this._backends!.backends.find(b => b.name === this._backendSelect.value);
    this._backendError.textContent = be && !be.available ? be.error ?? 'unavailable' : '';
    for (const m of this._machines()) {
      const price = m.price_per_hour !== null ? ` \u2013 ${formatMoney(m.price_per_hour)}/h` : '';
      const gpu = m.gpu ? ` \u2013 ${m.gpu_count}\u00d7 ${m.gpu}` : '';
      this._machineSelect.append(el('option', { value: m.name }, `${m.name}${gpu}${price}`));
    }
    const preferred = this._backends!.default_machine;
    if (preferred && this._machines().some(m => m.name === preferred)) {
      this._machineSelect.value = preferred;
    }
  }

  private _validate(): boolean {
    if (!this._backends || !this._inspection) {
      setAcceptEnabled(this.node, false); // still loading, or a part failed
      return false;
    }
    let ok = true;
    const runtime = parseDuration(this._runtime.value);
    this._runtimeError.textContent = runtime ? '' : 'write it like 90m, 4h, 1d or 4:00:00';
    this._runtime.classList.toggle('jp-offload-invalid', !runtime);
    ok = ok && !!runtime;
    const m = this._machines().find(x => x.name === this._machineSelect.value);
    this._spot.disabled = !m || m.spot_price_per_hour === null;
    if (this._spot.disabled) {
      this._spot.checked = false;
    }
    const price = m ? (this._spot.checked ? m.spot_price_per_hour : m.price_per_hour) : null;
    const budget = this._budgetValue();
    const idleText = this._idle.value.trim();
    const idleBad = idleText !== '' && !parseDuration(idleText);
    this._policyError.textContent =
      budget === undefined ? 'budget: a positive number of dollars, e.g. 20' : idleBad ? 'stop if idle: write it like 20m' : '';
    this._budget.classList.toggle('jp-offload-invalid', budget === undefined);
    this._idle.classList.toggle('jp-offload-invalid', idleBad);
    ok = ok && budget !== undefined && !idleBad;
    this._budgetNote.textContent = '';
    if (price === null || price === undefined) {
      this._estimate.textContent = 'Price unknown for this machine.';
    } else if (price === 0) {
      this._estimate.textContent = 'Free: runs on this machine.';
    } else {
      const cap = runtime ? formatMoney((price * runtime) / 3600) : '?';
      this._estimate.textContent = `${formatMoney(price)}/h \u2013 at most ${cap} for the ${this._runtime.value.trim()} cap`;
      ok = this._checkBudget(price, runtime, budget ?? null) && ok;
    }
    ok = this._params.values() !== null && ok;
    ok = ok && !!this._backendSelect.value;
    setAcceptEnabled(this.node, ok);
    return ok;
  }

  /** The budget field: a number, null when empty, undefined when unreadable. */
  private _budgetValue(): number | null | undefined {
    const text = this._budget.value.trim().replace(/^\$/, '');
    if (!text) {
      return null;
    }
    const v = Number(text);
    return isFinite(v) && v > 0 ? v : undefined;
  }

  /** The budget line under the estimate; false when the server would refuse the launch. */
  private _checkBudget(price: number, runtime: number | null, budget: number | null): boolean {
    const spend = this._backends?.spend;
    const name = this._backendSelect.value;
    const be = spend?.backends[name];
    const lines: string[] = [];
    if (spend) {
      let line = `Month to date ${formatMoney(spend.total)}`;
      line += spend.monthly !== null ? ` of ${formatMoney(spend.monthly)}` : '';
      line += be && be.monthly !== null ? `; ${name} ${formatMoney(be.spent)} of ${formatMoney(be.monthly)}` : '';
      lines.push(line + '.');
    }
    const limits: [string, number][] = [];
    if (budget !== null) {
      limits.push([`the ${formatMoney(budget)} budget`, budget]);
    }
    if (spend && spend.monthly !== null) {
      limits.push([`the monthly budget (${formatMoney(spend.monthly)})`, spend.monthly - spend.total]);
    }
    if (be && be.monthly !== null) {
      limits.push([`${name}'s monthly budget (${formatMoney(be.monthly)})`, be.monthly - be.spent]);
    }
    const cost = runtime ? (price * runtime) / 3600 : 0;
    const tightest = limits.sort((a, b) => a[1] - b[1])[0];
    let ok = true;
    if (tightest && runtime && cost > tightest[1]) {
      const fits = (Math.max(0, tightest[1]) / price) * 3600;
      if (this._capRuntime.checked && fits >= 60) {
        lines.push(`Over ${tightest[0]}: the max runtime will be cut to ${formatDuration(fits)} to fit.`);
      } else {
        lines.push(
          `Over ${tightest[0]} (${formatMoney(Math.max(0, tightest[1]))} left): raise it, shorten the max runtime` +
            (fits >= 60 ? ', or tick "Cut runtime to fit budget".' : '.')
        );
        ok = false;
      }
    }
    this._budgetNote.textContent = lines.join(' ');
    this._budgetNote.classList.toggle('jp-offload-field-error', !ok);
    return ok;
  }

  private _collect(): ISubmitRequest | null {
    if (!this._validate()) {
      return null;
    }
    const split = (s: string) =>
      s
        .split(',')
        .map(x => x.trim())
        .filter(Boolean);
    const m = this._machines().find(x => x.name === this._machineSelect.value);
    return {
      path: this._path,
      backend: this._backendSelect.value,
      machine: m && m.name !== 'local' ? m.name : null,
      gpu: null,
      spot: this._spot.checked,
      max_runtime: this._runtime.value.trim(),
      budget: this._budgetValue() ?? null,
      cap_runtime_to_budget: this._capRuntime.checked,
      stop_if_idle: this._idle.value.trim() || null,
      parameters: this._params.values() ?? {},
      data: split(this._data.value),
      include: split(this._include.value)
    };
  }

  private _path: string;
  private _backends: IBackends | null = null;
  private _inspection: IInspection | null = null;
  private _machinePart: HTMLElement;
  private _notebookPart: HTMLElement;
  private _unguard: () => void = () => undefined;
  private _backendSelect!: HTMLSelectElement;
  private _backendError!: HTMLDivElement;
  private _machineSelect!: HTMLSelectElement;
  private _spot!: HTMLInputElement;
  private _runtime!: HTMLInputElement;
  private _runtimeError!: HTMLDivElement;
  private _estimate!: HTMLDivElement;
  private _budget!: HTMLInputElement;
  private _capRuntime!: HTMLInputElement;
  private _idle!: HTMLInputElement;
  private _policyError!: HTMLDivElement;
  private _budgetNote!: HTMLDivElement;
  private _params!: ParametersForm;
  private _include!: HTMLInputElement;
  private _data!: HTMLInputElement;
}

/** Body of "Rerun with changed parameters". */
export class RerunDialogBody extends Widget implements Dialog.IBodyWidget<Record<string, any> | null> {
  constructor(params: IParameter[], values: Record<string, any>) {
    super();
    this.addClass('jp-offload-RunDialog');
    this._form = new ParametersForm(params, values);
    this._form.onChange = () => setAcceptEnabled(this.node, this._form.values() !== null);
    this.node.append(
      el('p', { class: 'jp-offload-muted' }, 'Same files and environment as the original run.'),
      this._form.node
    );
  }
  getValue(): Record<string, any> | null {
    return this._form.values();
  }
  protected onAfterAttach(): void {
    this._unguard = guardEnter(this.node, () => {
      const ok = this._form.values() !== null;
      setAcceptEnabled(this.node, ok);
      return ok;
    });
  }
  protected onBeforeDetach(): void {
    this._unguard();
  }
  private _form: ParametersForm;
  private _unguard: () => void = () => undefined;
}
