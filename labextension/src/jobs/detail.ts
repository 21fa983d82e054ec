/**
 * One job in the main area: live log (polled with a cursor every second), metrics chart,
 * parameters, environment, zones tried, error, and the actions (as toolbar buttons running the
 * same commands as the palette).
 */
import { Widget } from '@lumino/widgets';

import { api, ApiError, IJobDetail, ILogChunk, IMetricRecord, isActive } from '../api';
import { el, stateBadge } from '../util/dom';
import { formatDuration, formatMoney, formatValue } from '../util/format';
import { createPoll, pollNow, setPollInterval } from '../util/poll';
import { metricsChart } from './chart';
import { progressOf } from './panel';
import { IJobRecord, mlflowLink, provenanceSection } from './record';

function table(rows: [string, string][], label: string): HTMLTableElement {
  const t = el('table', { class: 'jp-offload-table', 'aria-label': label });
  for (const [k, v] of rows) {
    t.append(el('tr', {}, el('th', {}, k), el('td', {}, v)));
  }
  return t;
}

/** Where a job's time went (``timings`` of the job detail), in the order a job lives them. */
const PHASES: [string, string][] = [
  ['provision_s', 'Provision'],
  ['boot_s', 'Boot'],
  ['env_s', 'Environment'],
  ['data_s', 'Data'],
  ['kernel_s', 'Kernel start'],
  ['first_cell_s', 'Submit to first cell']
];

export class JobDetailWidget extends Widget {
  constructor(readonly jobId: string) {
    super();
    this.addClass('jp-offload-JobDetail');
    this.id = `jp-offload-job-${jobId}`;
    this.title.label = `Job ${jobId.slice(-6)}`;
    this.title.caption = `jupyter-offload job ${jobId}`;
    this.title.closable = true;
    this._header = el('div', { class: 'jp-offload-detail-header' });
    this._log = el('pre', { class: 'jp-offload-log', 'aria-label': 'log', 'aria-live': 'polite' });
    this._charts = el('div', { class: 'jp-offload-detail-metrics' });
    this._info = el('div', { class: 'jp-offload-detail-info' });
    const logSec = el('section', { class: 'jp-offload-detail-log' }, el('h3', {}, 'Log'), this._log);
    const side = el(
      'section',
      { class: 'jp-offload-detail-side' },
      el('h3', {}, 'Metrics'),
      this._charts,
      this._info
    );
    this.node.append(this._header, el('div', { class: 'jp-offload-detail-body' }, logSec, side));
  }

  get detail(): IJobDetail | null {
    return this._detail;
  }

  /** Called after each refresh (the toolbar updates which actions apply). */
  onUpdate: (d: IJobDetail) => void = () => undefined;

  /** Called when the server says the job does not exist (a view restored after it was removed). */
  onGone: () => void = () => undefined;

  protected onAfterAttach(): void {
    void this._logPoll.start();
    void this._detailPoll.start();
  }

  protected onBeforeDetach(): void {
    void this._logPoll.stop();
    void this._detailPoll.stop();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._logPoll.dispose();
    this._detailPoll.dispose();
    super.dispose();
  }

  /** Read the job now (after Cancel); resolves once it is shown. */
  async refresh(): Promise<void> {
    await pollNow(this._detailPoll);
  }

  /** One log poll: what was written since the cursor; stops once the job's log is complete. */
  private async _readLog(): Promise<void> {
    let chunk: ILogChunk;
    try {
      chunk = await api.log(this.jobId, this._cursor);
    } catch (err) {
      this._header.dataset.error = String(err);
      throw err; // the poll backs off
    }
    if (chunk.text) {
      const atBottom = this._log.scrollTop + this._log.clientHeight >= this._log.scrollHeight - 4;
      this._log.append(document.createTextNode(chunk.text));
      if (atBottom) {
        this._log.scrollTop = this._log.scrollHeight;
      }
    }
    this._cursor = chunk.cursor;
    if (!chunk.done) {
      return;
    }
    if (this._finalLogRead) {
      void this._logPoll.stop();
    } else {
      this._finalLogRead = true; // one more read: chunks written just before the final status
      setPollInterval(this._logPoll, 500);
    }
  }

  /** One detail poll: the job and its metrics; stops once the job has ended. */
  private async _loadDetail(): Promise<void> {
    let d: IJobDetail;
    try {
      const [detail, m] = await Promise.all([api.job(this.jobId), api.metrics(this.jobId)]);
      d = detail;
      this._detail = d;
      this._render(d, m.records);
      this.onUpdate(d);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        void this._detailPoll.stop();
        void this._logPoll.stop();
        this.onGone();
        return;
      }
      this._header.textContent = `Cannot load job ${this.jobId}: ${(err as Error).message ?? err}`;
      throw err; // the poll backs off
    }
    if (!isActive(d.state)) {
      void this._detailPoll.stop();
    }
  }

  private _render(d: IJobDetail, records: IMetricRecord[]): void {
    this._header.textContent = '';
    this._header.append(
      el(
        'div',
        { class: 'jp-offload-detail-title' },
        stateBadge(d.state),
        el('span', { class: 'jp-offload-detail-notebook' }, d.source_path ?? d.notebook),
        el('code', { class: 'jp-offload-job-id' }, d.id)
      ),
      el(
        'div',
        { class: 'jp-offload-job-meta' },
        el('span', {}, progressOf(d)),
        el('span', {}, `elapsed ${formatDuration(d.elapsed_s)}`),
        el('span', {}, `cost ${formatMoney(d.cost)}`),
        el(
          'span',
          {},
          `${d.backend}${d.resources.machine ? ` \u00b7 ${d.resources.machine}` : ''}${d.resources.spot ? ' \u00b7 spot' : ''}`
        )
      )
    );
    const mlflow = mlflowLink((d as IJobRecord).mlflow);
    if (mlflow) {
      this._header.querySelector('.jp-offload-job-meta')?.append(mlflow);
    }
    if (d.reason) {
      this._header.append(el('div', { class: 'jp-offload-reason' }, d.reason));
    }
    if (d.stale_heartbeat_s) {
      this._header.append(
        el('div', { class: 'jp-offload-warning' }, `no heartbeat for ${formatDuration(d.stale_heartbeat_s)}`)
      );
    }
    if (d.error && (d.error.ename || d.error.evalue)) {
      this._header.append(
        el('div', { class: 'jp-offload-error' }, `${d.error.ename ?? 'Error'}: ${d.error.evalue ?? ''}`)
      );
    }
    this._charts.textContent = '';
    this._charts.append(metricsChart(records));
    const last = Object.entries(d.metrics ?? {});
    if (last.length) {
      this._charts.append(table(last.map(([k, v]) => [k, formatValue(v)]), 'last metric values'));
    } else {
      this._charts.append(el('p', { class: 'jp-offload-muted' }, 'No metrics logged (offload.log_metric).'));
    }
    this._info.textContent = '';
    const params = Object.entries(d.parameters ?? {});
    this._info.append(
      el('h3', {}, 'Parameters'),
      params.length
        ? table(params.map(([k, v]) => [k, formatValue(v)]), 'parameters')
        : el('p', { class: 'jp-offload-muted' }, 'Defaults from the notebook.')
    );
    const env = d.env ?? {};
    const reqs: any[] = env.requirements ?? [];
    const envDetails = el(
      'details',
      { class: 'jp-offload-details' },
      el('summary', {}, `Environment: Python ${env.python ?? '?'}, ${reqs.length} package(s)`)
    );
    const ul = el('ul', { class: 'jp-offload-list' });
    reqs.forEach(r => ul.append(el('li', {}, r.spec ?? r.name)));
    envDetails.append(ul);
    this._info.append(envDetails);
    const phases = PHASES.filter(([k]) => typeof d.timings?.[k] === 'number').map(
      ([k, label]): [string, string] => [label, formatDuration(d.timings![k] as number)]
    );
    if (d.env_cache) {
      phases.push(['Environment cache', d.env_cache]);
    }
    if (phases.length) {
      this._info.append(el('h3', {}, 'Timings'), table(phases, 'phase timings'));
    }
    if (d.zones_tried.length) {
      this._info.append(
        el('h3', {}, 'Zones tried'),
        table(
          d.zones_tried.map(z => [String(z.zone ?? '?'), String(z.result ?? z.error ?? z.reason ?? '')]),
          'zones tried'
        )
      );
    }
    this._info.append(...provenanceSection(d as IJobRecord));
    this._info.append(
      el('h3', {}, 'Command line'),
      el('code', { class: 'jp-offload-cli' }, d.cli)
    );
    if (d.outputs.length) {
      this._info.append(el('h3', {}, 'Output files'), el('ul', { class: 'jp-offload-list' }, ...d.outputs.map(o => el('li', {}, o))));
    }
  }

  private _detail: IJobDetail | null = null;
  private _cursor = 0;
  private _finalLogRead = false;
  private _logPoll = createPoll('job-log', 1000, () => this._readLog());
  private _detailPoll = createPoll('job-detail', 2000, () => this._loadDetail());
  private _header: HTMLDivElement;
  private _log: HTMLPreElement;
  private _charts: HTMLDivElement;
  private _info: HTMLDivElement;
}
