/** Two runs side by side: parameters, metrics with deltas, outputs per cell. */
import { Widget } from '@lumino/widgets';

import { api, ICompare } from '../api';
import { el } from '../util/dom';
import { formatValue } from '../util/format';

export class CompareWidget extends Widget {
  constructor(readonly a: string, readonly b: string) {
    super();
    this.addClass('jp-offload-Compare');
    this.id = `jp-offload-compare-${a}-${b}`;
    this.title.label = `Compare ${a.slice(-6)} / ${b.slice(-6)}`;
    this.title.closable = true;
  }

  protected onAfterAttach(): void {
    void api.compare(this.a, this.b).then(
      c => this._render(c),
      err => (this.node.textContent = `Cannot compare: ${err.message ?? err}`)
    );
  }

  private _render(c: ICompare): void {
    this.node.textContent = '';
    const head = (title: string) =>
      el('tr', {}, el('th', {}, title), el('th', {}, `A ${c.a.id.slice(-6)}`), el('th', {}, `B ${c.b.id.slice(-6)}`));
    const params = el('table', { class: 'jp-offload-table', 'aria-label': 'parameters compared' }, head('Parameter'));
    for (const p of c.parameters) {
      params.append(
        el('tr', { class: p.same ? '' : 'jp-offload-diff' }, el('td', {}, p.name), el('td', {}, p.a_default ? '(default)' : formatValue(p.a)), el('td', {}, p.b_default ? '(default)' : formatValue(p.b)))
      );
    }
    const metrics = el('table', { class: 'jp-offload-table', 'aria-label': 'metrics compared' }, head('Metric'));
    metrics.querySelector('tr')?.append(el('th', {}, 'B \u2212 A'));
    for (const m of c.metrics) {
      metrics.append(
        el(
          'tr',
          {},
          el('td', {}, m.name),
          el('td', {}, formatValue(m.a)),
          el('td', {}, formatValue(m.b)),
          el('td', {}, m.delta === null ? '' : formatValue(m.delta))
        )
      );
    }
    const outs = el('div', { class: 'jp-offload-compare-outputs' });
    for (const o of c.outputs) {
      const side = (text: string, img: string | null) => {
        const d = el('div', { class: 'jp-offload-compare-side' }, el('pre', {}, text));
        if (img) {
          d.append(el('img', { src: img, alt: 'image output' }));
        }
        return d;
      };
      outs.append(
        el(
          'div',
          { class: `jp-offload-compare-cell${o.same ? '' : ' jp-offload-diff'}` },
          el('pre', { class: 'jp-offload-compare-source' }, o.source),
          el('div', { class: 'jp-offload-compare-pair' }, side(o.a_text, o.a_image), side(o.b_text, o.b_image))
        )
      );
    }
    this.node.append(
      el('h2', {}, `${c.a.source_path ?? c.a.notebook} \u2013 two runs`),
      el('h3', {}, 'Parameters'),
      params,
      el('h3', {}, 'Metrics'),
      metrics,
      el('h3', {}, 'Outputs'),
      outs
    );
  }
}
