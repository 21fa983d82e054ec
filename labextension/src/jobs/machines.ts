/**
 * Kept machines in the Offload side panel: every live machine (a warm `--keep-alive` machine, a
 * notebook's `%%offload` session, a sweep's pack) with what it runs, the countdown to its idle
 * deadline, what it has cost so far, and a Stop button (GET /machines, POST /machines/stop).
 *
 * A plugin of its own that adds one section to the side panel through IOffload's panel registry.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { errorText, post, request } from '../api';
import { IOffload } from '../tokens';
import { el, stateBadge } from '../util/dom';
import { formatMoney } from '../util/format';
import { createPoll, pollNow } from '../util/poll';

/** One live machine, as GET /machines describes it (openapi.yaml: LiveMachine). */
export interface ILiveMachine {
  name: string;
  backend: string;
  role: 'keep-alive' | 'session' | 'pack';
  state: 'busy' | 'idle' | 'ending';
  job: string | null;
  zone: string | null;
  machine: string | null;
  gpu: string | null;
  gpu_count: number | null;
  spot: boolean;
  idle_deadline: number | null;
  idle_left_s: number | null;
  started_at: number;
  price_per_hour: number | null;
  cost_so_far: number | null;
  jobs_served: number;
}

export interface IMachines {
  machines: ILiveMachine[];
  why_empty: string | null;
}

export const machinesApi = {
  running: () => request<IMachines>('machines'),
  stop: (names: string[]) =>
    post<{ stopped: { name: string; stopped: boolean; message: string }[] }>('machines/stop', { names })
};

/**
 * When each live `%%offload` session ends if it stays idle (session job id -> deadline in this
 * browser's clock), as last read by the Machines section; the jobs list's "Session" row shows it.
 */
export const sessionDeadlines = new Map<string, number>();

/** `4:05` (m:ss) or `1:02:03` until the deadline; `now` once it has passed. */
export function countdown(seconds: number): string {
  if (seconds <= 0) {
    return 'now';
  }
  const s = Math.floor(seconds % 60);
  const m = Math.floor(seconds / 60) % 60;
  const h = Math.floor(seconds / 3600);
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function shapeOf(m: ILiveMachine): string {
  const gpu = m.gpu ? `${m.gpu_count || 1}× ${m.gpu}` : '';
  return [m.machine, gpu, m.spot ? 'spot' : ''].filter(Boolean).join(' · ') || m.backend;
}

const ROLE_LABEL: Record<string, string> = {
  'keep-alive': 'warm machine',
  session: '%%offload session',
  pack: 'sweep pack'
};

/** The "Machines" section of the side panel. */
export class MachinesWidget extends Widget {
  constructor() {
    super();
    this.id = 'jp-offload-machines';
    this.addClass('jp-offload-Machines');
    this.title.label = 'Machines';
    this._poll = createPoll('machines', 5000, () => this._refresh());
    void this._poll.start();
    // the countdown moves every second between two polls
    this._ticker = window.setInterval(() => this._tick(), 1000);
    this.render();
  }

  /** Read again now (after a Stop, or when a job ends and its machine may be idle). */
  refresh(): Promise<void> {
    return pollNow(this._poll);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._ticker);
    this._poll.dispose();
    super.dispose();
  }

  private async _refresh(): Promise<void> {
    try {
      this._data = await machinesApi.running();
      this._readAt = Date.now() / 1000;
      this._error = null;
      sessionDeadlines.clear();
      for (const m of this._data.machines) {
        // a session's record stays 'busy' between cells; its deadline moves after each one
        if (m.role === 'session' && m.job && m.idle_left_s !== null) {
          sessionDeadlines.set(m.job, this._readAt + m.idle_left_s);
        }
      }
    } catch (err) {
      this._error = errorText(err);
      this.render();
      throw err; // the poll backs off
    }
    this.render();
  }

  private _tick(): void {
    // the "Session" rows of the jobs list (jobs/groups.ts)
    for (const node of Array.from(document.querySelectorAll<HTMLElement>('.jp-offload-session-countdown'))) {
      const deadline = sessionDeadlines.get(node.dataset.session ?? '');
      node.textContent = deadline === undefined ? '' : ` \u00b7 ends in ${countdown(deadline - Date.now() / 1000)}`;
    }
    const nodes = Array.from(this.node.querySelectorAll<HTMLElement>('[data-deadline]'));
    for (const node of nodes) {
      const left = Number(node.dataset.deadline) - Date.now() / 1000;
      node.textContent = `ends in ${countdown(left)}`;
    }
  }

  render(): void {
    this.node.textContent = '';
    const machines = this._data?.machines ?? [];
    this.node.append(el('h3', { class: 'jp-offload-heading' }, `Machines (${machines.length})`));
    if (this._error) {
      this.node.append(el('div', { class: 'jp-offload-warning' }, this._error));
    }
    if (!machines.length) {
      if (this._data) {
        const why = el('div', { class: 'jp-offload-muted jp-offload-machines-empty' }, 'No machine is running');
        why.title = this._data.why_empty ?? '';
        this.node.append(why);
      }
      return;
    }
    const ul = el('ul', { class: 'jp-offload-jobs jp-offload-machines-list' });
    for (const m of machines) {
      ul.append(this._row(m));
    }
    this.node.append(ul);
  }

  private _row(m: ILiveMachine): HTMLElement {
    const li = el('li', { class: 'jp-offload-machine', 'data-machine': m.name, 'data-state': m.state });
    const stop = el('button', { class: 'jp-mod-styled jp-mod-warn jp-offload-machine-stop', type: 'button' }, 'Stop');
    li.append(
      el(
        'div',
        { class: 'jp-offload-job-top' },
        stateBadge(m.state),
        el('span', { class: 'jp-offload-job-name', title: m.name }, m.name),
        stop
      ),
      el(
        'div',
        { class: 'jp-offload-job-meta' },
        el('span', {}, [ROLE_LABEL[m.role] ?? m.role, m.backend, m.zone].filter(Boolean).join(' · ')),
        el('span', {}, shapeOf(m))
      )
    );
    const facts = el('div', { class: 'jp-offload-job-meta' });
    if (m.job && m.state === 'busy') {
      facts.append(el('span', {}, `running ${m.job.slice(-6)}`));
    }
    if (m.idle_left_s !== null && m.idle_deadline && (m.state === 'idle' || m.role === 'session')) {
      // the deadline in this browser's clock: the server's idle_left_s counted from when it was read
      const deadline = (this._readAt ?? Date.now() / 1000) + m.idle_left_s;
      const cd = el('span', { class: 'jp-offload-machine-countdown', 'data-deadline': String(deadline) },
        `ends in ${countdown(m.idle_left_s)}`);
      cd.title = 'it deletes itself when idle this long; a compatible job before then starts on it at once';
      facts.append(cd);
    }
    if (m.cost_so_far !== null) {
      facts.append(el('span', { class: 'jp-offload-machine-cost' }, `${formatMoney(m.cost_so_far)} so far`));
    }
    li.append(facts);
    stop.title = m.role === 'pack' ? 'a sweep pack ends with its sweep' : `end ${m.name} now`;
    if (m.role === 'pack' || m.state === 'ending') {
      stop.disabled = true;
    }
    stop.onclick = async () => {
      stop.disabled = true;
      try {
        await machinesApi.stop([m.name]);
      } catch (err) {
        void showErrorMessage('Could not stop the machine', errorText(err));
      }
      await this.refresh();
    };
    return li;
  }

  private _poll: Poll;
  private _ticker: number;
  private _data: IMachines | null = null;
  private _readAt: number | null = null;
  private _error: string | null = null;
}

/** Adds the Machines section to the Offload side panel. */
export const machinesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:machines',
  description: 'Kept machines in the Offload side panel: countdown and Stop.',
  autoStart: true,
  requires: [IOffload],
  activate: (_app: JupyterFrontEnd, offload: IOffload): void => {
    const widget = new MachinesWidget();
    offload.panels.add({ id: 'offload-machines', rank: 50, create: () => widget });
    // a job that ends may leave its machine idle (or a new one warm): read again then
    let active = -1;
    offload.jobs.changed.connect(() => {
      const now = offload.jobs.jobs.filter(j => ['queued', 'provisioning', 'running'].includes(j.state)).length;
      if (now !== active) {
        active = now;
        void widget.refresh();
      }
    });
  }
};
