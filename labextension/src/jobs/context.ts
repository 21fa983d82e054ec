/**
 * What the parts of the core plugin share (jobs/plugin.ts builds it; commands, merge and the
 * finish notifications use it): the app, the notebooks, the live jobs and the last known state
 * of each, the side panel and the trackers of the main-area widgets.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel, NotebookWidgetFactory } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { IJobDetail } from '../api';
import { JobDetailWidget } from './detail';
import { GalleryWidget } from './gallery';
import { JobsModel } from './model';

/** The last known state of a job: its detail, or what the jobs list or a submit answered. */
export type KnownJob = IJobDetail | { state: string; source_path: string | null; cli?: string };

export interface IJobsContext {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
  rendermime: IRenderMimeRegistry;
  docManager: IDocumentManager | null;
  /** The notebook widget factory: the executed-notebook view renders with its parts. */
  notebookFactory: NotebookWidgetFactory.IFactory | null;
  jobs: JobsModel;
  /** By job id; the commands' isEnabled reads it (no request). */
  states: Map<string, KnownJob>;
  side: Widget;
  detailTracker: WidgetTracker<MainAreaWidget<JobDetailWidget>>;
  galleryTracker: WidgetTracker<MainAreaWidget<GalleryWidget>>;
}

/** The open notebook of a path, if any. */
export function panelFor(ctx: IJobsContext, path: string | null): NotebookPanel | null {
  return path ? ctx.tracker.find(p => p.context.path === path) ?? null : null;
}

/** The last known state of the job a command's `id` argument names. */
export function stateOf(ctx: IJobsContext, args: ReadonlyPartialJSONObject): KnownJob | undefined {
  return ctx.states.get(String(args.id ?? ''));
}
