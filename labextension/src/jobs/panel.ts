/**
 * The jobs side panel: this notebook's jobs first, then all, live; a row opens the job detail.
 * The newest 50 are shown; "Show more" loads older ones a page at a time.
 */
import { Widget } from '@lumino/widgets';

import { IJobSummary, isActive } from '../api';
import { el, stateBadge } from '../util/dom';
import { formatDuration, formatMoney, formatValue } from '../util/format';
import { byTime, groupJobs, groupRow, IJobGroup } from './groups';
import { JobsModel, PAGE_SIZE } from './model';

export function progressOf(j: { cell: number | null; n_cells: number | null; state: string }): string {
  if (j.n_cells) {
    return `cell ${j.cell ?? 0} of ${j.n_cells}`;
  }
  return isActive(j.state) ? 'starting' : '';
}

function elapsed(j: IJobSummary): number | null {
  if (j.elapsed_s !== undefined && j.elapsed_s !== null) {
    return j.elapsed_s;
  }
  if (!j.started_at) {
    return null;
  }
  const end = j.finished_at ?? (isActive(j.state) ? Date.now() / 1000 : null);
  return end ? end - j.started_at : null;
}

export class JobsListWidget extends Widget {
  constructor(options: {
    model: JobsModel;
    currentPath: () => string | null;
    onOpen: (id: string) => void;
  }) {
    super();
    this.id = 'jp-offload-jobs-list';
    this.addClass('jp-offload-JobsList');
    this.title.label = 'Jobs';
    this._model = options.model;
    this._currentPath = options.currentPath;
    this._onOpen = options.onOpen;
    this._model.changed.connect(() => this.render(), this);
    this.render();
  }

  /** Re-render (also called when the current notebook changes). */
  render(): void {
    const jobs = this._model.jobs;
    const current = this._currentPath();
    // trials under their sweep, cell runs and sessions under their notebook (jobs/groups.ts)
    const paths = [current, ...jobs.map(j => j.source_path)].filter((p): p is string => !!p);
    const { rows, groups } = groupJobs(jobs, paths);
    const mine = current ? rows.filter(j => j.source_path === current) : [];
    const others = rows.filter(j => !mine.includes(j));
    const myGroups = current ? groups.filter(g => g.path === current) : [];
    const otherGroups = groups.filter(g => !myGroups.includes(g));
    const group = (g: IJobGroup) => groupRow(g, jobs, this._open, j => this._row(j), () => this.render());
    this.node.textContent = '';
    if (this._model.error) {
      this.node.append(el('div', { class: 'jp-offload-warning' }, this._model.error));
    }
    if (!jobs.length) {
      this.node.append(
        el(
          'div',
          { class: 'jp-offload-empty' },
          'No jobs yet. Open a notebook and press \u201cRun on GPU\u201d in its toolbar.'
        )
      );
      return;
    }
    if (current) {
      this.node.append(el('h3', { class: 'jp-offload-heading' }, `This notebook (${mine.length + myGroups.length})`));
      const ul = el('ul', { class: 'jp-offload-jobs', 'aria-label': 'jobs of this notebook' });
      byTime(myGroups, mine).forEach(x => ul.append('key' in x ? group(x) : this._row(x)));
      this.node.append(ul);
    }
    this.node.append(el('h3', { class: 'jp-offload-heading' }, current ? 'Other jobs' : 'All jobs'));
    const ul = el('ul', { class: 'jp-offload-jobs', 'aria-label': 'all jobs' });
    byTime(otherGroups, others).forEach(x => ul.append('key' in x ? group(x) : this._row(x)));
    this.node.append(ul);
    if (this._model.hasMore) {
      // the server pages: older jobs load on demand, a page at a time
      const more = el(
        'button',
        { class: 'jp-mod-styled jp-offload-more', 'aria-label': 'show older jobs' },
        `Show ${Math.min(PAGE_SIZE, this._model.total - jobs.length)} more (${jobs.length} of ${this._model.total})`
      );
      more.addEventListener('click', () => {
        more.disabled = true;
        void this._model.loadMore();
      });
      this.node.append(more);
    }
  }

  private _row(j: IJobSummary): HTMLLIElement {
    const li = el('li', {
      class: 'jp-offload-job',
      tabindex: '0',
      role: 'button',
      'data-job-id': j.id,
      'data-state': j.state,
      title: `${j.id}${j.reason ? `\n${j.reason}` : ''}`
    });
    const name = (j.source_path ?? j.notebook).split('/').pop() ?? j.notebook;
    const metrics = Object.entries(j.metrics ?? {})
      .filter(([, v]) => typeof v === 'number')
      .slice(0, 3)
      .map(([k, v]) => `${k} ${formatValue(v)}`)
      .join(' \u00b7 ');
    const frac = j.n_cells ? Math.min(1, (j.cell ?? 0) / j.n_cells) : 0;
    const bar = el('div', { class: 'jp-offload-progress', role: 'progressbar' });
    bar.setAttribute('aria-valuenow', String(Math.round(frac * 100)));
    bar.append(el('div', { class: 'jp-offload-progress-fill', style: `width: ${frac * 100}%` }));
    li.append(
      el(
        'div',
        { class: 'jp-offload-job-top' },
        stateBadge(j.state),
        el('span', { class: 'jp-offload-job-name' }, name),
        el('span', { class: 'jp-offload-job-id' }, j.id.slice(-6))
      ),
      el(
        'div',
        { class: 'jp-offload-job-meta' },
        el('span', { class: 'jp-offload-job-progress' }, progressOf(j)),
        el('span', {}, formatDuration(elapsed(j))),
        el('span', {}, j.cost !== null && j.cost !== undefined ? formatMoney(j.cost) : j.backend)
      )
    );
    if (isActive(j.state) || j.n_cells) {
      li.append(bar);
    }
    if (metrics) {
      li.append(el('div', { class: 'jp-offload-job-metrics' }, metrics));
    }
    li.addEventListener('click', () => this._onOpen(j.id));
    li.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        this._onOpen(j.id);
      }
    });
    return li;
  }

  /** Keys of the groups the user opened (kept across renders). */
  private _open = new Set<string>();
  private _model: JobsModel;
  private _currentPath: () => string | null;
  private _onOpen: (id: string) => void;
}
