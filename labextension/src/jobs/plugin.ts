/**
 * The core plugin: "Run on GPU" (toolbar item declared in schema/plugin.json), the Offload side
 * panel (jobs, live), job detail, merge back into the open notebook, finish notifications, and
 * the gallery. It provides IOffload, through which the other plugins extend it.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, INotebookWidgetFactory, NotebookWidgetFactory } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { SidePanel } from '@jupyterlab/ui-components';

import { api, FINAL_STATES } from '../api';
import { CommandIDs, IOffload, PanelRegistry } from '../tokens';
import { gpuIcon } from '../util/icons';
import { registerAttachCommands } from './attach';
import { registerJobCommands } from './commands';
import { IJobsContext, KnownJob, panelFor } from './context';
import { JobDetailWidget } from './detail';
import { GalleryWidget } from './gallery';
import { mergeJob } from './merge';
import { followSaves } from './save';
import { JobsModel } from './model';
import { JobsListWidget } from './panel';

const CATEGORY = 'Offload';

export const jobsPlugin: JupyterFrontEndPlugin<IOffload> = {
  id: 'jupyter-offload:plugin',
  description: 'Run notebooks on big GPUs: Run on GPU, jobs panel, merge back, gallery.',
  autoStart: true,
  provides: IOffload,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette, ILabShell, IDocumentManager, INotebookWidgetFactory],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    docManager: IDocumentManager | null,
    notebookFactory: NotebookWidgetFactory.IFactory | null
  ): IOffload => {
    const { commands, shell } = app;
    const jobs = new JobsModel();
    const panels = new PanelRegistry();
    const states = new Map<string, KnownJob>();
    followSaves(tracker); // saves of a notebook never overlap (no "File Changed" dialog)

    // side panel ------------------------------------------------------------------------------
    const side = new SidePanel();
    side.id = 'jp-offload-panel';
    side.title.icon = gpuIcon;
    side.title.caption = 'Offload jobs';
    side.addClass('jp-offload-SidePanel');
    const currentPath = () => tracker.currentWidget?.context.path ?? null;
    const list = new JobsListWidget({
      model: jobs,
      currentPath,
      onOpen: id => void commands.execute(CommandIDs.openJob, { id })
    });
    panels.add({ id: 'offload-jobs', rank: 100, create: () => list });
    const addPanels = () => {
      for (const spec of panels.panels) {
        const w = spec.create();
        if (!side.widgets.includes(w)) {
          side.addWidget(w as any);
        }
      }
    };
    addPanels();
    panels.added.connect(() => addPanels());
    shell.add(side, 'right', { rank: 650 });
    restorer?.add(side, 'jupyter-offload:panel');
    tracker.currentChanged.connect(() => list.render());
    labShell?.currentChanged.connect(() => list.render());
    jobs.changed.connect(() => {
      for (const j of jobs.jobs) {
        const known = states.get(j.id);
        states.set(j.id, { ...(known ?? {}), ...j } as any);
      }
      for (const id of [CommandIDs.cancel, CommandIDs.merge, CommandIDs.openExecuted]) {
        commands.notifyCommandChanged(id);
      }
    });
    jobs.start();

    // main-area widgets, restored across reloads ----------------------------------------------
    const detailTracker = new WidgetTracker<MainAreaWidget<JobDetailWidget>>({ namespace: 'offload-job' });
    const galleryTracker = new WidgetTracker<MainAreaWidget<GalleryWidget>>({ namespace: 'offload-gallery' });
    if (restorer) {
      void restorer.restore(detailTracker, {
        command: CommandIDs.openJob,
        args: w => ({ id: w.content.jobId }),
        name: w => w.content.jobId
      });
      void restorer.restore(galleryTracker, {
        command: CommandIDs.openGallery,
        name: () => 'gallery'
      });
    }

    const ctx: IJobsContext = {
      app,
      tracker,
      rendermime,
      docManager,
      notebookFactory,
      jobs,
      states,
      side,
      detailTracker,
      galleryTracker
    };
    notifyFinished(ctx);
    registerJobCommands(ctx);
    registerAttachCommands(ctx);

    if (palette) {
      for (const command of [CommandIDs.runNotebook, CommandIDs.showJobs, CommandIDs.openGallery]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    return { api, jobs, panels };
  }
};

/** A notification when a job ends; a success submitted from here merges into its open notebook. */
function notifyFinished(ctx: IJobsContext): void {
  const { jobs } = ctx;
  const { commands } = ctx.app;
  jobs.transitioned.connect((_, { job, to }) => {
    if (!FINAL_STATES.includes(to) || ['trial', 'pack', 'cell', 'session'].includes(job.kind)) {
      // sweep trials: the sweep panel shows them and the sweep's end notifies; cell runs and
      // sessions: the cell's own output says how it went
      return;
    }
    const name = (job.source_path ?? job.notebook).split('/').pop();
    const show = { label: 'Show job', callback: () => void commands.execute(CommandIDs.openJob, { id: job.id }) };
    if (to === 'succeeded') {
      if (jobs.submittedHere.has(job.id) && panelFor(ctx, job.source_path)) {
        void mergeJob(ctx, job.id, true);
      } else {
        const actions = panelFor(ctx, job.source_path)
          ? [{ label: 'Merge into notebook', callback: () => void mergeJob(ctx, job.id) }, show]
          : [show];
        Notification.success(`Job ${job.id.slice(-6)} (${name}) succeeded.`, { autoClose: 6000, actions });
      }
    } else if (to === 'cancelled') {
      Notification.info(`Job ${job.id.slice(-6)} (${name}) was cancelled.`, { autoClose: 5000, actions: [show] });
    } else {
      Notification.error(`Job ${job.id.slice(-6)} (${name}) ${to}: ${job.reason ?? 'see its log'}`, {
        autoClose: false,
        actions: [show]
      });
    }
  });
}
