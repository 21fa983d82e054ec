/**
 * The gallery: every executed notebook as a card (thumbnail = first image output, parameters,
 * metrics, state, cost, date), filtered by notebook and state, sorted by any metric; tick two
 * to compare them. The server filters, sorts and pages: 40 cards at first, "Show more" for the
 * next page. Nothing is written to the user's files.
 */
import { Widget } from '@lumino/widgets';

import { api, IGallery, IGalleryCard, IJobQuery } from '../api';
import { el, htmlSelect, selectBox, stateBadge } from '../util/dom';
import { formatMoney, formatValue } from '../util/format';
import { IJobRecord, mlflowLink } from './record';

/** Cards per page (the server caps a page at 500). */
const CARDS_PER_PAGE = 40;

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
    this._notebook = htmlSelect({ 'aria-label': 'filter by notebook' });
    this._state = htmlSelect({ 'aria-label': 'filter by state' });
    this._sort = htmlSelect({ 'aria-label': 'sort by' });
    this._order = htmlSelect({ 'aria-label': 'order' });
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
      el('label', {}, 'Notebook ', selectBox(this._notebook)),
      el('label', {}, 'State ', selectBox(this._state)),
      el('label', {}, 'Sort by ', selectBox(this._sort)),
      selectBox(this._order),
      this._compareBtn
    );
    this._grid = el('div', { class: 'jp-offload-cards', role: 'list' });
    this._more = el('button', { class: 'jp-mod-styled jp-offload-more', 'aria-label': 'show more cards' }, 'Show more');
    this._more.hidden = true;
    this._more.addEventListener('click', () => void this._loadMore());
    this.node.append(bar, this._grid, this._more);
    for (const s of [this._notebook, this._state, this._sort, this._order]) {
      s.addEventListener('change', () => void this.refresh());
    }
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  /** The first page again, for the current filters and sort. */
  async refresh(): Promise<void> {
    const gen = ++this._gen;
    let data: IGallery;
    try {
      data = await api.gallery(this._query());
    } catch (err) {
      this._grid.textContent = `Cannot load the gallery: ${(err as Error).message ?? err}`;
      this._more.hidden = true;
      return;
    }
    if (gen !== this._gen) {
      return; // the filters changed meanwhile: a newer answer counts
    }
    this._fill(this._notebook, ['', ...data.notebooks], 'all notebooks');
    this._fill(this._sort, ['', 'cost', ...data.metrics], 'newest');
    this._grid.textContent = '';
    this._shown = 0;
    if (!data.cards.length) {
      this._grid.append(el('div', { class: 'jp-offload-empty' }, 'No executed notebooks yet.'));
    }
    this._append(data);
    this._updateCompare();
  }

  private _query(cursor?: string): IJobQuery & { sort?: string; order?: string } {
    return {
      notebook: this._notebook.value || undefined,
      state: this._state.value || undefined,
      sort: this._sort.value || undefined,
      order: this._order.value,
      limit: CARDS_PER_PAGE,
      cursor
    };
  }

  private _append(data: IGallery): void {
    for (const c of data.cards) {
      this._grid.append(this._card(c));
    }
    this._shown += data.cards.length;
    this._cursor = data.next_cursor;
    this._more.hidden = !data.next_cursor;
    this._more.disabled = false;
    this._more.textContent = `Show more (${this._shown} of ${data.total})`;
  }

  private async _loadMore(): Promise<void> {
    if (!this._cursor) {
      return;
    }
    const gen = this._gen;
    this._more.disabled = true;
    try {
      const data = await api.gallery(this._query(this._cursor));
      if (gen === this._gen) {
        this._append(data);
      }
    } catch (err) {
      this._more.disabled = false;
      this._more.textContent = `Cannot load more: ${(err as Error).message ?? err}`;
    }
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
        el('div', { class: 'jp-offload-card-actions' }, open, details, ...[mlflowLink((c as IJobRecord).mlflow)].filter(a => a !== null))
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
  private _more: HTMLButtonElement;
  private _cursor: string | null = null;
  private _shown = 0;
  private _gen = 0;
}
