/**
 * What a job's record says beside its run (issue 18): where its code came from (git commit,
 * branch, remote, uncommitted changes recorded at submit) and its MLflow run. Rendered into the
 * job detail view (detail.ts) and the gallery's cards (gallery.ts).
 */
import { el } from '../util/dom';

export interface IProvenanceFile {
  path: string;
  added: number;
  removed: number;
  binary?: boolean;
  status?: string;
}

export interface IProvenance {
  git: {
    commit: string | null;
    branch: string | null;
    remote: { name: string; url: string } | null;
    subject?: string;
    dirty?: boolean;
    files?: IProvenanceFile[];
    diff?: string;
    diff_cut?: boolean;
    withheld?: { path: string; why: string }[];
    omitted?: { path: string; bytes: number; why: string }[];
  } | null;
  note?: string;
  rerun_of?: string;
  inherited_from?: string;
}

export interface IMlflowRun {
  tracking_uri: string;
  experiment_id: string;
  run_id: string;
  url: string | null;
}

/** The record fields of a job detail (jupyter_ext/service/jobs.py job_detail). */
export interface IJobRecord {
  provenance?: IProvenance | null;
  mlflow?: IMlflowRun | null;
}

/** A link to the MLflow run (opens in a new tab), or null when the job has none with a web page. */
export function mlflowLink(run: IMlflowRun | null | undefined, label = 'MLflow run'): HTMLAnchorElement | null {
  if (!run?.url || !/^https?:\/\//.test(run.url)) {
    return null;
  }
  return el(
    'a',
    {
      class: 'jp-offload-mlflow-link',
      href: run.url,
      target: '_blank',
      rel: 'noopener noreferrer',
      title: `MLflow run ${run.run_id} on ${run.tracking_uri}`
    },
    `${label} \u2197`
  );
}

/** The "Source" section: commit, branch, remote, changed files and the recorded diff. */
export function provenanceSection(rec: IJobRecord): HTMLElement[] {
  const out: HTMLElement[] = [el('h3', {}, 'Source')];
  const prov = rec.provenance;
  const g = prov?.git;
  if (!prov || !g) {
    out.push(el('p', { class: 'jp-offload-muted' }, prov?.note ?? 'Not recorded (submitted before provenance was recorded).'));
  } else {
    const rows: [string, string][] = [
      ['Commit', g.commit ? `${g.commit.slice(0, 12)}${g.subject ? ` \u2014 ${g.subject}` : ''}` : 'no commit yet'],
      ['Branch', g.branch ?? 'detached HEAD'],
      ['Remote', g.remote ? `${g.remote.name} ${g.remote.url}` : 'none'],
      ['Working tree', g.dirty ? `uncommitted changes in ${g.files?.length ?? 0} file(s)` : 'clean']
    ];
    if (prov.rerun_of) {
      rows.push(['Rerun of', `${prov.rerun_of} (same bundle)`]);
    }
    const t = el('table', { class: 'jp-offload-table', 'aria-label': 'source' });
    for (const [k, v] of rows) {
      t.append(el('tr', {}, el('th', {}, k), el('td', {}, v)));
    }
    out.push(t);
    if (g.files?.length) {
      const details = el(
        'details',
        { class: 'jp-offload-details jp-offload-diff' },
        el('summary', {}, `Uncommitted changes (${g.files.length} file(s))`)
      );
      const ul = el('ul', { class: 'jp-offload-list' });
      for (const f of g.files) {
        ul.append(el('li', {}, `${f.path} +${f.added} -${f.removed}${f.status === 'untracked' ? ' (new)' : ''}`));
      }
      for (const w of g.withheld ?? []) {
        ul.append(el('li', { class: 'jp-offload-warning' }, `${w.path}: withheld, ${w.why}`));
      }
      for (const o of g.omitted ?? []) {
        ul.append(el('li', { class: 'jp-offload-muted' }, `${o.path}: not kept (${o.why})`));
      }
      details.append(ul);
      if (g.diff) {
        details.append(el('pre', { class: 'jp-offload-log', 'aria-label': 'uncommitted changes' }, g.diff));
      }
      if (g.diff_cut) {
        details.append(el('p', { class: 'jp-offload-muted' }, 'Cut here; `offload show --diff JOB` prints all of it.'));
      }
      out.push(details);
    }
  }
  const link = mlflowLink(rec.mlflow);
  if (link) {
    out.push(el('h3', {}, 'Tracking'), el('p', {}, link));
  } else if (rec.mlflow) {
    out.push(el('h3', {}, 'Tracking'), el('p', {}, `MLflow run ${rec.mlflow.run_id} (${rec.mlflow.tracking_uri})`));
  }
  return out;
}
