/**
 * The gallery (every executed notebook as a card), the two-run comparison, and a read-only
 * view of an executed notebook. Outputs are rendered untrusted by JupyterLab's own renderers
 * (no script runs); nothing is written to the user's files.
 */
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import {
  api,
  formatMoney,
  formatValue,
  ICompare,
  IGallery,
  IGalleryCard
} from './api';
import { el } from './dialog';
import { stateBadge } from './panel';

export class GalleryWidget extends Widget {
  constructor(options: {
    onOpen: (id: string) => void;
    onCompare: (a: string, b: string) => void;
    onDetail: (id: string) => void;
  }) {
    super();
    this.id = 'jp-offload-gallery';
    this.addClass('jp-offload-Gallery');
    this.title.label = 'Offload gallery';
    this.title.closable = true;
    this._opts = options;
    this._notebook = el('select', { class: 'jp-mod-styled', 'aria-label': 'filter by notebook' });
    this._state = el('select', { class: 'jp-mod-styled', 'aria-label': 'filter by state' });
    this._sort = el('select', { class: 'jp-mod-styled', 'aria-label': 'sort by' });
    this._order = el('select', { class: 'jp-mod-styled', 'aria-label': 'order' });
    for (const s of ['', 'succeeded', 'failed', 'cancelled', 'lost', 'running']) {
      this._state.append(el('option', { value: s }, s || 'any state'));
    }
    this._order.append(el('option', { value: 'desc' }, 'highest first'), el('option', { value: 'asc' }, 'lowest first'));
    this._compareBtn = el('button', { class: 'jp-mod-styled jp-mod-accept jp-offload-compare-btn' }, 'Compare selected');
    this._compareBtn.disabled = true;
    this._compareBtn.addEventListener('click', () => {
      const [a, b] = [...this._selected];
      if (a && b) {
        this._opts.onCompare(a, b);
      }
    });
    const bar = el(
      'div',
      { class: 'jp-offload-gallery-bar' },
      el('label', {}, 'Notebook ', this._notebook),
      el('label', {}, 'State ', this._state),
      el('label', {}, 'Sort by ', this._sort),
      this._order,
      this._compareBtn
    );
    this._grid = el('div', { class: 'jp-offload-cards', role: 'list' });
    this.node.append(bar, this._grid);
    for (const s of [this._notebook, this._state, this._sort, this._order]) {
      s.addEventListener('change', () => void this.refresh());
    }
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  async refresh(): Promise<void> {
    let data: IGallery;
    try {
      data = await api.gallery({
        notebook: this._notebook.value || undefined,
        state: this._state.value || undefined,
        sort: this._sort.value || undefined,
        order: this._order.value
      });
    } catch (err) {
      this._grid.textContent = `Cannot load the gallery: ${(err as Error).message ?? err}`;
      return;
    }
    this._fill(this._notebook, ['', ...data.notebooks], 'all notebooks');
    this._fill(this._sort, ['', 'cost', ...data.metrics], 'newest');
    this._grid.textContent = '';
    if (!data.cards.length) {
      this._grid.append(el('div', { class: 'jp-offload-empty' }, 'No executed notebooks yet.'));
    }
    for (const c of data.cards) {
      this._grid.append(this._card(c));
    }
    this._updateCompare();
  }

  private _fill(select: HTMLSelectElement, values: string[], emptyLabel: string): void {
    const keep = select.value;
    const same =
      select.options.length === values.length && values.every((v, i) => select.options[i].value === v);
    if (same) {
      return;
    }
    select.textContent = '';
    for (const v of values) {
      select.append(el('option', { value: v }, v || emptyLabel));
    }
    select.value = values.includes(keep) ? keep : '';
  }

  private _card(c: IGalleryCard): HTMLElement {
    const card = el('article', { class: 'jp-offload-card', role: 'listitem', 'data-job-id': c.id });
    const thumb = el('div', { class: 'jp-offload-thumb' });
    if (c.thumbnail) {
      thumb.append(el('img', { src: api.thumbnailUrl(c.id), alt: `first image output of ${c.notebook}` }));
    } else {
      thumb.append(el('span', { class: 'jp-offload-muted' }, 'no image output'));
    }
    const check = el('input', { type: 'checkbox', 'aria-label': `select ${c.id} to compare` });
    check.checked = this._selected.has(c.id);
    check.addEventListener('change', () => {
      if (check.checked) {
        this._selected.add(c.id);
        if (this._selected.size > 2) {
          const first = [...this._selected][0];
          this._selected.delete(first);
          const other = this._grid.querySelector<HTMLInputElement>(`[data-job-id="${first}"] input[type=checkbox]`);
          if (other) {
            other.checked = false;
          }
        }
      } else {
        this._selected.delete(c.id);
      }
      this._updateCompare();
    });
    const params = Object.entries(c.parameters).map(([k, v]) => `${k}=${formatValue(v)}`).join(', ');
    const metrics = Object.entries(c.metrics)
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]) => `${k} ${formatValue(v)}`)
      .join(' \u00b7 ');
    const open = el('button', { class: 'jp-mod-styled jp-offload-open-btn' }, 'Open');
    open.disabled = !c.has_output;
    open.addEventListener('click', () => this._opts.onOpen(c.id));
    const details = el('button', { class: 'jp-mod-styled' }, 'Details');
    details.addEventListener('click', () => this._opts.onDetail(c.id));
    card.append(
      thumb,
      el(
        'div',
        { class: 'jp-offload-card-body' },
        el('div', { class: 'jp-offload-card-title' }, check, el('span', {}, c.source_path ?? c.notebook), stateBadge(c.state)),
        el('div', { class: 'jp-offload-card-params' }, params || 'default parameters'),
        el('div', { class: 'jp-offload-card-metrics' }, metrics || 'no metrics'),
        el(
          'div',
          { class: 'jp-offload-muted' },
          `${new Date(c.created_at * 1000).toLocaleString()} \u00b7 ${c.backend} \u00b7 ${formatMoney(c.cost)}`
        ),
        el('div', { class: 'jp-offload-card-actions' }, open, details)
      )
    );
    return card;
  }

  private _updateCompare(): void {
    this._compareBtn.disabled = this._selected.size !== 2;
  }

  private _opts: {
    onOpen: (id: string) => void;
    onCompare: (a: string, b: string) => void;
    onDetail: (id: string) => void;
  };
  private _selected = new Set<string>();
  private _notebook: HTMLSelectElement;
  private _state: HTMLSelectElement;
  private _sort: HTMLSelectElement;
  private _order: HTMLSelectElement;
  private _compareBtn: HTMLButtonElement;
  private _grid: HTMLDivElement;
}

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

/** An executed notebook, read-only: sources as text, outputs through the untrusted renderers. */
export class ExecutedNotebookWidget extends Panel {
  constructor(readonly jobId: string, private _rendermime: IRenderMimeRegistry) {
    super();
    this.addClass('jp-offload-Executed');
    this.id = `jp-offload-executed-${jobId}`;
    this.title.label = `Executed ${jobId.slice(-6)} (read-only)`;
    this.title.closable = true;
  }

  protected onAfterAttach(): void {
    if (this._loaded) {
      return;
    }
    this._loaded = true;
    void api.executed(this.jobId).then(
      nb => this._render(nb),
      err => this.addWidget(new Widget({ node: el('div', { class: 'jp-offload-error' }, String(err.message ?? err)) }))
    );
  }

  private _render(nb: any): void {
    const banner = el('div', { class: 'jp-offload-readonly-banner' }, `Read-only: executed notebook of job ${this.jobId}`);
    this.addWidget(new Widget({ node: banner }));
    for (const cell of nb.cells ?? []) {
      const src = Array.isArray(cell.source) ? cell.source.join('') : cell.source ?? '';
      const box = new Panel();
      box.addClass('jp-offload-ro-cell');
      box.addWidget(new Widget({ node: el('pre', { class: `jp-offload-ro-source jp-offload-ro-${cell.cell_type}` }, src) }));
      if (cell.cell_type === 'code' && cell.outputs?.length) {
        const model = new OutputAreaModel({ values: cell.outputs, trusted: false });
        box.addWidget(new OutputArea({ model, rendermime: this._rendermime }));
      }
      this.addWidget(box);
    }
  }

  private _loaded = false;
}
