/**
 * A running or finished sweep, as the panel shows it: the header (state, counts and cost, best
 * so far, Apply best / Stop / Resume, progress) and the trials table (state, each searched
 * parameter, objective, duration, cost; a row opens the trial's job or executed notebook).
 */
import { ISweepState, ISweepSummary } from '../api';
import { el, stateBadge } from '../util/dom';
import { exactNumber, formatDuration, formatMoney, formatValue } from '../util/format';

/** What the buttons and rows of a sweep view do. */
export interface ISweepViewActions {
  stop: () => void;
  resume: () => void;
  applyBest: (state: ISweepState) => void;
  openTrial: (jobId: string, finished: boolean) => void;
}

/** Optuna trial states as job states (for the badge colours). */
const TRIAL_STATE: Record<string, string> = {
  COMPLETE: 'succeeded',
  RUNNING: 'running',
  WAITING: 'queued',
  PRUNED: 'cancelled',
  FAIL: 'failed'
};

/** Trials that have ended: complete, pruned or failed. */
export function doneCount(counts: ISweepSummary['counts']): number {
  return (counts.n_complete ?? 0) + (counts.n_pruned ?? 0) + (counts.n_fail ?? 0);
}

export function sweepHeader(s: ISweepState, actions: ISweepViewActions): HTMLElement {
  const sum = s.summary;
  const objective = sum.objectives[0];
  const c = sum.counts;
  const done = doneCount(c);
  const head = el('div', { class: 'jp-offload-sweep-head' });
  const badge = el('span', { class: `jp-offload-state jp-offload-sweep-state-${sum.state}`, 'data-state': sum.state }, sum.state);
  const stop = el('button', { class: 'jp-mod-styled jp-mod-warn', type: 'button' }, 'Stop');
  stop.disabled = !['created', 'running'].includes(sum.state);
  stop.addEventListener('click', () => actions.stop());
  // stopped, interrupted (the driver died) or failed with budget left: a new driver goes on
  const resumable = ['stopped', 'interrupted', 'failed'].includes(sum.state) && done < sum.trials;
  const resume = el('button', { class: 'jp-mod-styled', type: 'button' }, 'Resume');
  resume.title = 'Start a new driver: re-queued points first, running jobs adopted';
  resume.addEventListener('click', () => actions.resume());
  const apply = el('button', { class: 'jp-mod-styled jp-mod-accept', type: 'button' }, 'Apply best to notebook');
  apply.disabled = !sum.best;
  apply.title = sum.pareto.length ? 'Several objectives: pick a trial in the table' : '';
  apply.addEventListener('click', () => actions.applyBest(s));
  const best = sum.best
    ? `best ${objective} = ${formatValue(sum.best.value)} (trial ${sum.best.number}: ${Object.entries(sum.best.params)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(', ')})`
    : 'no complete trial yet';
  head.append(
    el('div', { class: 'jp-offload-sweep-title' }, badge, el('strong', {}, `Sweep ${sum.id.slice(-6)}`), ` ${objective} (${sum.directions[0]})`),
    el(
      'div',
      { class: 'jp-offload-sweep-counts', 'aria-live': 'polite' },
      `${done} of ${sum.trials} done: ${c.n_complete ?? 0} complete, ${c.n_pruned ?? 0} pruned, ${c.n_fail ?? 0} failed, ${c.n_running ?? 0} running${c.n_requeued ? `, ${c.n_requeued} re-queued` : ''} \u2013 cost ${formatMoney(s.total_cost)}`
    ),
    el('div', { class: 'jp-offload-sweep-best' + (sum.best ? '' : ' jp-offload-muted') }, best),
    el('div', { class: 'jp-offload-sweep-actions' }, apply, stop, ...(resumable ? [resume] : []))
  );
  if (sum.error) {
    head.append(el('div', { class: 'jp-offload-field-error' }, sum.error));
  }
  const progress = el('div', { class: 'jp-offload-progress' });
  const fill = el('div', { class: 'jp-offload-progress-fill' });
  fill.style.width = `${Math.min(100, (100 * done) / Math.max(1, sum.trials))}%`;
  progress.append(fill);
  head.append(progress);
  return head;
}

/** The trials table in a scrolling wrapper (with a hint while there is no trial yet). */
export function trialsTable(s: ISweepState, actions: ISweepViewActions): HTMLElement {
  const sum = s.summary;
  const objective = sum.objectives[0];
  const names = Object.keys(sum.space).filter(k => sum.space[k].type !== 'fixed');
  const table = el('table', { class: 'jp-offload-table jp-offload-sweep-trials', 'aria-label': 'trials' });
  const hrow = el('tr', {}, el('th', {}, '#'), el('th', {}, 'state'));
  for (const n of names) {
    hrow.append(el('th', {}, n));
  }
  hrow.append(el('th', {}, objective), el('th', {}, 'duration'), el('th', {}, 'cost'), el('th', {}, ''));
  table.append(el('thead', {}, hrow));
  const tbody = el('tbody');
  for (const t of s.trials) {
    const finished = ['COMPLETE', 'PRUNED', 'FAIL'].includes(t.state);
    const isBest = !!sum.best && sum.best.number === t.number;
    const tr = el('tr', {
      class: 'jp-offload-sweep-trial' + (isBest ? ' jp-mod-best' : ''),
      'data-trial': String(t.number),
      'data-state': t.state,
      tabindex: t.job_id ? '0' : '-1',
      title: t.error ?? (t.job_id ? `job ${t.job_id}: click to open ${finished ? 'its executed notebook' : 'it'}` : '')
    });
    const badgeTd = el('td', {}, stateBadge(TRIAL_STATE[t.state] ?? t.state));
    (badgeTd.firstChild as HTMLElement).textContent = t.state.toLowerCase() + (t.requeued ? ' (re-queued)' : '');
    tr.append(el('td', {}, String(t.number)), badgeTd);
    for (const n of names) {
      const v = t.params[n];
      tr.append(el('td', typeof v === 'number' ? { title: exactNumber(v) } : {}, n in t.params ? formatValue(v) : '\u2013'));
    }
    const dur = t.duration_s ?? (t.started_at && t.state === 'RUNNING' ? Date.now() / 1000 - t.started_at : null);
    tr.append(
      el(
        'td',
        { class: 'jp-offload-sweep-objective', ...(t.value !== null ? { title: exactNumber(t.value) } : {}) },
        t.value !== null ? formatValue(t.value) : t.error ? 'error' : '\u2013'
      ),
      el('td', {}, formatDuration(dur)),
      el('td', {}, formatMoney(t.cost))
    );
    const cell = el('td', { class: 'jp-offload-sweep-row-actions' });
    if (t.job_id) {
      const jobId = t.job_id;
      const open = el('button', { class: 'jp-mod-styled jp-offload-link', type: 'button' }, finished ? 'notebook' : 'log');
      open.addEventListener('click', e => {
        e.stopPropagation();
        actions.openTrial(jobId, finished);
      });
      cell.append(open);
      if (t.state === 'COMPLETE' && sum.objectives.length > 1) {
        const use = el('button', { class: 'jp-mod-styled jp-offload-link', type: 'button' }, 'apply');
        use.addEventListener('click', e => {
          e.stopPropagation();
          actions.applyBest({ ...s, summary: { ...sum, best: t, pareto: [] } });
        });
        cell.append(use);
      }
      tr.addEventListener('click', () => actions.openTrial(jobId, finished));
      tr.addEventListener('keydown', e => {
        if (e.key === 'Enter') {
          actions.openTrial(jobId, finished);
        }
      });
    }
    tr.append(cell);
    tbody.append(tr);
  }
  table.append(tbody);
  const wrap = el('div', { class: 'jp-offload-sweep-table-wrap' }, table);
  if (!s.trials.length) {
    wrap.append(el('p', { class: 'jp-offload-muted' }, 'Trials appear here as the driver starts them.'));
  }
  return wrap;
}
