/**
 * The search space part of the sweep setup form: one row per name of the notebook's parameters
 * cell, as a range (numbers; log scale suggested for a positive float), choices or a fixed value,
 * and its check into a space entry of the sweep request.
 */
import { IParameter, ISpaceEntry } from '../api';
import { el, htmlSelect, selectBox } from '../util/dom';
import { parseParameter } from '../util/parse';

export interface IParamRow {
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

/** One parameter's row: its mode (range, choices, fixed) and values, checked as they are typed. */
export function paramRow(p: IParameter): IParamRow {
  const isNum = numeric(p);
  const mode = htmlSelect({ 'aria-label': `${p.name} mode` });
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
    selectBox(mode),
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
  const f: IParamRow = { param: p, row, mode, low, high, log, step, choices, fixed, error };
  for (const i of [low, high, step, choices, fixed]) {
    i.addEventListener('input', () => checkRow(f));
  }
  log.addEventListener('change', () => checkRow(f));
  return f;
}

/** The space entry of one parameter, or an error message shown under its row. */
export function checkRow(f: IParamRow): ISpaceEntry | null {
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
  markRow(f, err);
  return out;
}

/** Show an error under a parameter's row (empty: clear it). */
export function markRow(f: IParamRow, err: string): void {
  f.error.textContent = err ? `${f.param.name}: ${err}` : '';
  f.row.classList.toggle('jp-offload-invalid-row', !!err);
  // the first shown input of the row is the one to fix (Enter on the form focuses it)
  const inputs = [f.low, f.high, f.step, f.choices, f.fixed];
  inputs.forEach(i => i.removeAttribute('aria-invalid'));
  if (err) {
    inputs.find(i => i.offsetParent !== null)?.setAttribute('aria-invalid', 'true');
  }
}
