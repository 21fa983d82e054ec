/**
 * Grouping of the side panel's jobs, so that the list reads as the user's work and not as the
 * machinery under it:
 *
 * - a sweep's trials (and its packs) are one row per sweep, "Sweep abc123: 7 of 20 done, 2
 *   running", expandable to its trials;
 * - "Run Cell on GPU" cell jobs and their warm session are one "Cells" row and one "Session"
 *   row under the notebook they ran from (its path comes from the kernel's `JPY_SESSION_NAME`,
 *   the `notebook` label of the job), never rows of `.offload-cell-*` notebooks.
 *
 * Jobs of kind notebook are rows as before; `render` builds the group rows with the panel's own
 * row builder for the jobs inside them.
 */
import { IJobSummary, isActive } from '../api';
import { el, stateBadge } from '../util/dom';
import { formatDuration } from '../util/format';
import { countdown, sessionDeadlines } from './machines';

/** Kinds that are never a row of their own. */
const GROUPED_KINDS = ['trial', 'pack', 'cell', 'session'];

export interface IJobGroup {
  /** Stable key (the panel remembers which groups are open). */
  key: string;
  kind: 'sweep' | 'cells' | 'session';
  /** The notebook the group belongs to (API path), when known. */
  path: string | null;
  jobs: IJobSummary[];
}

/** The notebook (API path) a cell or session job ran from: its kernel's notebook. */
export function cellNotebook(j: IJobSummary, paths: string[]): string | null {
  const label = j.labels?.notebook;
  if (!label) {
    return null;
  }
  // the label is the kernel's OS path of the notebook; the panel knows API paths (under the root)
  return paths.find(p => label === p || label.endsWith(`/${p}`)) ?? label;
}

/** Split jobs into plain rows and groups (sweeps, cells, sessions), newest first as given. */
export function groupJobs(jobs: IJobSummary[], knownPaths: string[]): { rows: IJobSummary[]; groups: IJobGroup[] } {
  const rows: IJobSummary[] = [];
  const groups = new Map<string, IJobGroup>();
  const add = (key: string, kind: IJobGroup['kind'], path: string | null, j: IJobSummary) => {
    let g = groups.get(key);
    if (!g) {
      g = { key, kind, path, jobs: [] };
      groups.set(key, g);
    }
    if (!g.path && path) {
      g.path = path;
    }
    g.jobs.push(j);
  };
  for (const j of jobs) {
    if (!GROUPED_KINDS.includes(j.kind)) {
      rows.push(j);
    } else if (j.kind === 'trial' || j.kind === 'pack') {
      const sweep = j.labels?.sweep ?? 'unknown';
      add(`sweep:${sweep}`, 'sweep', j.kind === 'trial' ? j.source_path : null, j);
    } else {
      const path = cellNotebook(j, knownPaths);
      add(`${j.kind === 'session' ? 'session' : 'cells'}:${path ?? '?'}`, j.kind === 'session' ? 'session' : 'cells', path, j);
    }
  }
  return { rows, groups: [...groups.values()] };
}

/** Groups and plain rows in one list, newest first (a group by its newest job). */
export function byTime(groups: IJobGroup[], rows: IJobSummary[]): (IJobGroup | IJobSummary)[] {
  const t = (x: IJobGroup | IJobSummary) =>
    'key' in x ? Math.max(...x.jobs.map(j => j.created_at)) : x.created_at;
  return [...groups, ...rows].sort((a, b) => t(b) - t(a));
}

/**
 * What a session is doing: starting, busy (a cell runs), idle since when and until when (the
 * deadline from the Machines section, when it has read one), or ended.
 */
export function sessionState(
  session: IJobSummary,
  cells: IJobSummary[]
): { state: string; text: string; deadline?: number } {
  const served = cells.filter(c => c.labels?.session === session.id);
  if (session.state === 'queued' || session.state === 'provisioning' || (session.state === 'running' && !session.started_at)) {
    return { state: 'starting', text: `starting on ${session.backend}\u2026` };
  }
  if (!isActive(session.state)) {
    return { state: session.state, text: session.reason ?? `${session.state} after ${served.length} cell(s)` };
  }
  if (served.some(c => isActive(c.state))) {
    return { state: 'busy', text: `busy on ${session.backend} \u00b7 ${served.length} cell(s) served` };
  }
  const last = Math.max(session.started_at ?? 0, ...served.map(c => c.finished_at ?? 0));
  const idle = last ? formatDuration(Date.now() / 1000 - last) : '';
  return {
    state: 'idle',
    text: `idle on ${session.backend}${idle ? ` for ${idle}` : ''} \u00b7 ${served.length} cell(s) served`,
    deadline: sessionDeadlines.get(session.id)
  };
}

/** The summary line of a group row: counts by state, what is running. */
function describe(g: IJobGroup): { state: string; title: string; meta: string } {
  const jobs = g.jobs.filter(j => g.kind !== 'sweep' || j.kind === 'trial');
  const active = jobs.filter(j => isActive(j.state)).length;
  const failed = jobs.filter(j => ['failed', 'lost', 'preempted'].includes(j.state)).length;
  const done = jobs.filter(j => !isActive(j.state)).length;
  const name = g.path ? g.path.split('/').pop() : null;
  if (g.kind === 'sweep') {
    const id = g.key.slice('sweep:'.length);
    return {
      state: active ? 'running' : failed && failed === done ? 'failed' : 'succeeded',
      title: `Sweep ${id.slice(-6)}${name ? ` \u00b7 ${name}` : ''}`,
      meta: `${jobs.length} trial(s): ${done} done${active ? `, ${active} running` : ''}${failed ? `, ${failed} failed` : ''}`
    };
  }
  if (g.kind === 'session') {
    const session = g.jobs[0];
    const s = sessionState(session, []);
    return { state: s.state, title: `Session${name ? ` \u00b7 ${name}` : ''}`, meta: s.text };
  }
  return {
    state: active ? 'running' : failed && jobs[0] && ['failed', 'lost'].includes(jobs[0].state) ? 'failed' : 'succeeded',
    title: `Cells${name ? ` \u00b7 ${name}` : ''}`,
    meta: `${jobs.length} cell run(s)${active ? `, ${active} running` : ''}${failed ? `, ${failed} failed` : ''}`
  };
}

/**
 * A group as a row of the jobs list: a summary line (state, title, counts) that opens and closes
 * the list of its jobs (built by `row`). `open` holds the keys of the groups the user opened.
 */
export function groupRow(
  g: IJobGroup,
  all: IJobSummary[],
  open: Set<string>,
  row: (j: IJobSummary) => HTMLElement,
  rerender: () => void
): HTMLLIElement {
  let d = describe(g);
  let deadline: number | undefined;
  if (g.kind === 'session') {
    const s = sessionState(g.jobs[0], all.filter(j => j.kind === 'cell'));
    d = { ...d, state: s.state, meta: s.text };
    deadline = s.deadline;
  }
  const li = el('li', {
    class: 'jp-offload-group',
    'data-group': g.kind,
    'data-key': g.key,
    'data-state': d.state
  });
  const expanded = open.has(g.key);
  const head = el(
    'div',
    {
      class: 'jp-offload-group-head',
      role: 'button',
      tabindex: '0',
      'aria-expanded': String(expanded),
      title: g.kind === 'session' ? `warm session ${g.jobs[0].id}` : `${g.jobs.length} job(s)`
    },
    el('span', { class: `jp-offload-caret${expanded ? ' jp-mod-expanded' : ''}` }, expanded ? '\u25be' : '\u25b8'),
    stateBadge(d.state),
    el('span', { class: 'jp-offload-job-name' }, d.title)
  );
  const toggle = () => {
    if (open.has(g.key)) {
      open.delete(g.key);
    } else {
      open.add(g.key);
    }
    rerender();
  };
  head.addEventListener('click', toggle);
  head.addEventListener('keydown', e => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      toggle();
    }
  });
  const meta = el('div', { class: 'jp-offload-job-meta jp-offload-group-meta' }, d.meta);
  if (g.kind === 'session' && d.state === 'idle') {
    // the countdown to the idle session's end: the Machines section reads its deadline and its
    // ticker moves this every second (so it shows even when this list does not re-render)
    const left = deadline === undefined ? '' : ` \u00b7 ends in ${countdown(deadline - Date.now() / 1000)}`;
    meta.append(el('span', { class: 'jp-offload-session-countdown', 'data-session': g.jobs[0].id }, left));
  }
  li.append(head, meta);
  if (expanded) {
    const ul = el('ul', { class: 'jp-offload-jobs jp-offload-group-jobs', 'aria-label': `${d.title} jobs` });
    for (const j of g.jobs.filter(x => g.kind !== 'sweep' || x.kind === 'trial')) {
      const r = row(j);
      // the machinery's notebook names (.offload-cell-*, offload-session) say nothing: name the run
      const name = r.querySelector('.jp-offload-job-name');
      if (name && (j.kind === 'cell' || j.kind === 'session')) {
        const when = new Date(j.created_at * 1000).toLocaleTimeString();
        name.textContent = `${j.kind === 'cell' ? 'cell run' : 'session'} \u00b7 ${when}`;
        if (j.kind === 'session') {
          // a session is not a notebook with cells to count: say what it does (idle, busy, ended)
          const progress = r.querySelector('.jp-offload-job-progress');
          if (progress) {
            progress.textContent = sessionState(j, all.filter(c => c.kind === 'cell')).state;
          }
          r.querySelector('.jp-offload-job-metrics')?.remove();
        }
      } else if (name && j.kind === 'trial' && j.labels?.trial !== undefined) {
        name.textContent = `trial ${j.labels.trial}`;
      }
      ul.append(r);
    }
    li.append(ul);
  }
  return li;
}
