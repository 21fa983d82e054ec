/**
 * Merge a finished job's outputs into an open notebook through its model, never its file:
 * no "file changed on disk" dialog, the user's unsaved edits stay, and the change can be undone
 * (the notification offers "Undo merge", which restores the previous outputs).
 *
 * The server decides what may be merged (cell id and source hash unchanged since submit) from
 * the cells as they are in the browser right now.
 *
 * `mergeJob` is the whole user-facing step (the Merge command, and automatically when a job
 * submitted from this browser succeeds): find or open the notebook, merge, notify with Undo.
 */
import { Notification, showErrorMessage } from '@jupyterlab/apputils';
import { ICodeCellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { NotebookPanel } from '@jupyterlab/notebook';

import { api, errorText, IJobDetail, IMergePlan } from '../api';
import { CommandIDs } from '../tokens';
import { IJobsContext, panelFor } from './context';

export interface IMergeResult {
  plan: IMergePlan;
  /** Restores the outputs the merged cells had before. */
  undo: () => void;
}

function cellsOf(panel: NotebookPanel): { id: string; source: string }[] {
  const out: { id: string; source: string }[] = [];
  const cells = panel.content.model?.cells;
  if (!cells) {
    return out;
  }
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    out.push({ id: c.id, source: c.sharedModel.getSource() });
  }
  return out;
}

export async function mergeIntoPanel(panel: NotebookPanel, jobId: string): Promise<IMergeResult> {
  const model = panel.content.model;
  if (!model) {
    throw new Error('the notebook is not loaded');
  }
  const plan = await api.mergePlan(jobId, cellsOf(panel));
  const byId = new Map<string, ICodeCellModel>();
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type === 'code') {
      byId.set(c.id, c as ICodeCellModel);
    }
  }
  const previous: { id: string; outputs: nbformat.IOutput[]; count: nbformat.ExecutionCount }[] = [];
  model.sharedModel.transact(() => {
    for (const m of plan.merged) {
      const cell = byId.get(m.id);
      if (!cell) {
        continue;
      }
      previous.push({
        id: m.id,
        outputs: cell.sharedModel.getOutputs() as nbformat.IOutput[],
        count: cell.sharedModel.execution_count
      });
      cell.sharedModel.setOutputs(m.outputs as nbformat.IOutput[]);
      cell.sharedModel.execution_count = m.execution_count;
    }
  });
  const before = model.getMetadata('offload');
  model.setMetadata('offload', { ...(before as any), last_run: plan.provenance });
  const undo = () => {
    model.sharedModel.transact(() => {
      for (const p of previous) {
        const cell = byId.get(p.id);
        if (cell && !cell.isDisposed) {
          cell.sharedModel.setOutputs(p.outputs);
          cell.sharedModel.execution_count = p.count;
        }
      }
    });
    if (before === undefined) {
      model.deleteMetadata('offload');
    } else {
      model.setMetadata('offload', before);
    }
  };
  return { plan, undo };
}

/** Human summary of a merge, naming edited cells by their position. */
export function describeMerge(panel: NotebookPanel | null, plan: IMergePlan): string {
  const pos = (id: string) => {
    const cells = panel?.content.model?.cells;
    if (cells) {
      for (let i = 0; i < cells.length; i++) {
        if (cells.get(i).id === id) {
          return `cell ${i + 1}`;
        }
      }
    }
    return `cell ${id}`;
  };
  let text = `merged outputs of ${plan.merged.length} cell(s)`;
  if (plan.edited.length) {
    text += `; left ${plan.edited.length} edited cell(s) alone: ${plan.edited.map(pos).join(', ')}`;
  }
  if (plan.deleted.length) {
    text += `; ${plan.deleted.length} cell(s) no longer in the notebook`;
  }
  return text;
}

/** Merge a job into its open notebook and say so; `auto`: only if it is open, quietly if not. */
export async function mergeJob(ctx: IJobsContext, id: string, auto = false): Promise<void> {
  const { commands } = ctx.app;
  let detail = ctx.states.get(id) as IJobDetail | undefined;
  if (!detail || !detail.source_path) {
    detail = await api.job(id);
  }
  let panel = panelFor(ctx, detail.source_path);
  if (!panel && detail.source_path && ctx.docManager && !auto) {
    const opened = ctx.docManager.openOrReveal(detail.source_path);
    if (opened instanceof NotebookPanel) {
      await opened.context.ready;
      panel = opened;
    }
  }
  if (!panel) {
    if (!auto) {
      await showErrorMessage('Merge', `The job's notebook ${detail.source_path ?? detail.notebook} is not open.`);
    }
    return;
  }
  try {
    const { plan, undo } = await mergeIntoPanel(panel, id);
    const text = `Job ${id.slice(-6)} ${plan.state}: ${describeMerge(panel, plan)}.`;
    const opts = {
      autoClose: plan.edited.length ? (false as const) : 8000,
      actions: [
        { label: 'Undo merge', callback: () => undo() },
        { label: 'Show job', callback: () => void commands.execute(CommandIDs.openJob, { id }) }
      ]
    };
    if (plan.edited.length) {
      Notification.warning(text, opts);
    } else {
      Notification.success(text, opts);
    }
  } catch (err) {
    Notification.error(`Merge of job ${id.slice(-6)} failed: ${errorText(err)}`);
  }
}
