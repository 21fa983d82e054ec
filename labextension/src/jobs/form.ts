/**
 * The parameters of a notebook as a form: one input per name of its `parameters` cell, checked
 * against the declared type as the user types (shared by the Run dialog and "Rerun with changed
 * parameters").
 */
import { IParameter } from '../api';
import { el } from '../util/dom';
import { parseParameter } from '../util/parse';

/** The parameter form, shared by the Run dialog and "Rerun with changed parameters". */
export class ParametersForm {
  constructor(params: IParameter[], values: Record<string, any> = {}) {
    this.node = el('div', { class: 'jp-offload-params' });
    if (!params.length) {
      this.node.append(
        el(
          'p',
          { class: 'jp-offload-muted' },
          'No cell tagged "parameters": the notebook runs with its own values.'
        )
      );
    }
    for (const p of params) {
      const id = `jp-offload-param-${p.name}`;
      const initial = p.name in values ? pyLiteral(values[p.name]) : p.source;
      const input = el('input', {
        class: 'jp-mod-styled jp-offload-input',
        id,
        name: p.name,
        'data-param': p.name,
        'aria-label': `parameter ${p.name}`
      });
      input.value = initial;
      const error = el('div', { class: 'jp-offload-field-error', role: 'alert' });
      const row = el(
        'div',
        { class: 'jp-offload-param-row' },
        el('label', { for: id, class: 'jp-offload-param-name' }, p.name),
        el('span', { class: 'jp-offload-param-type' }, p.type),
        input,
        error
      );
      if (p.help) {
        row.append(el('div', { class: 'jp-offload-param-help' }, p.help));
      }
      input.addEventListener('input', () => this.onChange());
      this.node.append(row);
      this._fields.push({ param: p, input, error, initial: p.source });
    }
  }

  readonly node: HTMLDivElement;
  onChange: () => void = () => undefined;

  /** Changed parameters, or null when one is invalid (errors shown in place). */
  values(): Record<string, any> | null {
    let ok = true;
    const out: Record<string, any> = {};
    for (const f of this._fields) {
      const r = parseParameter(f.input.value, f.param.type);
      f.error.textContent = r.error ? `${f.param.name} ${r.error}` : '';
      f.input.classList.toggle('jp-offload-invalid', !!r.error);
      f.input.setAttribute('aria-invalid', r.error ? 'true' : 'false');
      if (r.error) {
        ok = false;
      } else if (f.input.value.trim() !== f.initial.trim()) {
        out[f.param.name] = r.value;
      }
    }
    return ok ? out : null;
  }

  private _fields: {
    param: IParameter;
    input: HTMLInputElement;
    error: HTMLDivElement;
    initial: string;
  }[] = [];
}

function pyLiteral(v: any): string {
  if (typeof v === 'string') {
    return JSON.stringify(v);
  }
  if (typeof v === 'boolean') {
    return v ? 'True' : 'False';
  }
  if (v === null) {
    return 'None';
  }
  return JSON.stringify(v);
}
