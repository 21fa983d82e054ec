/**
 * The gallery: every executed notebook as a card (thumbnail = first image output, parameters,
 * metrics, state, cost, date), filtered by notebook and state, sorted by any metric; tick two
 * to compare them. Nothing is written to the user's files.
 */
import { Widget } from '@lumino/widgets';

import { api, IGallery, IGalleryCard } from '../api';
import { el, stateBadge } from '../util/dom';
import { formatMoney, formatValue } from '../util/format';

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
