/**
 * jupyter-offload for JupyterLab: "Run on GPU" (toolbar item declared in schema/plugin.json),
 * the Offload side panel (jobs, live), job detail, merge back into the open notebook,
 * finish notifications, and the gallery. Other plugins extend it through IOffload.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import {
  CommandToolbarButton,
  copyIcon,
  editIcon,
  fileUploadIcon,
  LabIcon,
  notebookIcon,
  refreshIcon,
  SidePanel,
  stopIcon,
  tableRowsIcon
} from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { api, ApiError, FINAL_STATES, IJobDetail, isActive } from './api';
import { JobDetailWidget } from './detail';
import { RerunDialogBody, RunDialogBody } from './dialog';
import { CompareWidget, ExecutedNotebookWidget, GalleryWidget } from './gallery';
import { describeMerge, mergeIntoPanel } from './merge';
import { JobsModel } from './model';
import { JobsListWidget } from './panel';
import { CommandIDs, IOffload, PanelRegistry } from './tokens';
import { sweepPlugin } from './sweep';
import { cellRunPlugin } from './cellrun';

export { CommandIDs, IOffload, PanelRegistry } from './tokens';
export type { IPanelSpec } from './tokens';

const GPU_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M4 6h14a2 2 0 0 1 2 2v1h2v2h-2v2h2v2h-2v1a2 2 0 0 1-2 2H4V6zm2 2v8h12V8H6zm2 2h3v4H8v-4zm5 0h3v4h-3v-4z"/><path d="M6 19h2v2H6zm4 0h2v2h-2zm4 0h2v2h-2z"/></g></svg>`;

export const gpuIcon = new LabIcon({ name: 'jupyter-offload:gpu', svgstr: GPU_SVG });

const CATEGORY = 'Offload';

function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    return err.text;
  }
  return String((err as Error)?.message ?? err);
}

const plugin: JupyterFrontEndPlugin<IOffload> = {
  id: 'jupyter-offload:plugin',
  description: 'Run notebooks on big GPUs: Run on GPU, jobs panel, merge back, gallery.',
  autoStart: true,
  provides: IOffload,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette, ILabShell, IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    docManager: IDocumentManager | null
  ): IOffload => {
    const { commands, shell } = app;
    const jobs = new JobsModel();
    const panels = new PanelRegistry();
    const states = new Map<string, IJobDetail | { state: string; source_path: string | null; cli?: string }>();

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

    const panelFor = (path: string | null): NotebookPanel | null =>
      path ? tracker.find(p => p.context.path === path) ?? null : null;

    const stateOf = (args: ReadonlyPartialJSONObject) => states.get(String(args.id ?? ''));

    // merge -----------------------------------------------------------------------------------
    async function merge(id: string, auto = false): Promise<void> {
      let detail = stateOf({ id }) as IJobDetail | undefined;
      if (!detail || !detail.source_path) {
        detail = await api.job(id);
      }
      let panel = panelFor(detail.source_path);
      if (!panel && detail.source_path && docManager && !auto) {
        const opened = docManager.openOrReveal(detail.source_path);
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

    jobs.transitioned.connect((_, { job, to }) => {
      if (!FINAL_STATES.includes(to) || job.kind === 'trial') {
        return; // sweep trials: the sweep panel shows them, one toast each would bury the page
      }
      const name = (job.source_path ?? job.notebook).split('/').pop();
      const show = { label: 'Show job', callback: () => void commands.execute(CommandIDs.openJob, { id: job.id }) };
      if (to === 'succeeded') {
        if (jobs.submittedHere.has(job.id) && panelFor(job.source_path)) {
          void merge(job.id, true);
        } else {
          const actions = panelFor(job.source_path)
            ? [{ label: 'Merge into notebook', callback: () => void merge(job.id) }, show]
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

    // the Run dialog --------------------------------------------------------------------------
    let loadingDialog = false; // reading the notebook: no second dialog from a double click
    async function runNotebook(panel: NotebookPanel): Promise<void> {
      const path = panel.context.path;
      if (panel.context.model.dirty && !panel.context.model.readOnly) {
        await panel.context.save(); // the server snapshots the file: send what the user sees
      }
      let backends, inspection;
      loadingDialog = true;
      commands.notifyCommandChanged(CommandIDs.runNotebook);
      document.body.classList.add('jp-offload-busy');
      try {
        [backends, inspection] = await Promise.all([api.backends(), api.inspect(path)]);
      } catch (err) {
        await showErrorMessage('Run on GPU', errorText(err));
        return;
      } finally {
        loadingDialog = false;
        document.body.classList.remove('jp-offload-busy');
        commands.notifyCommandChanged(CommandIDs.runNotebook);
      }
      const body = new RunDialogBody(path, backends, inspection);
      const result = await showDialog({
        title: `Run on GPU: ${path.split('/').pop()}`,
        body,
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run', ariaLabel: 'Run on GPU' })],
        focusNodeSelector: 'select'
      });
      if (!result.button.accept || !result.value) {
        return;
      }
      try {
        const job = await api.submit(result.value);
        jobs.submittedHere.add(job.id);
        states.set(job.id, job);
        Notification.info(`Submitted ${path.split('/').pop()} as job ${job.id.slice(-6)} (${job.backend}).`, {
          autoClose: 5000,
          actions: [{ label: 'Show job', callback: () => void commands.execute(CommandIDs.openJob, { id: job.id }) }]
        });
        void jobs.refresh();
        shell.activateById(side.id);
      } catch (err) {
        await showErrorMessage('Run on GPU failed', errorText(err));
      }
    }

    // commands --------------------------------------------------------------------------------
    commands.addCommand(CommandIDs.runNotebook, {
      label: 'Run on GPU',
      caption: 'Run a parametrized copy of this notebook on a GPU machine (jupyter-offload)',
      icon: gpuIcon,
      isEnabled: () => !!tracker.currentWidget && !loadingDialog,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await runNotebook(panel);
        }
      }
    });

    commands.addCommand(CommandIDs.showJobs, {
      label: 'Show Offload Jobs',
      icon: gpuIcon,
      execute: () => {
        shell.activateById(side.id);
        void jobs.refresh();
      }
    });

    commands.addCommand(CommandIDs.openJob, {
      label: args => `Offload Job ${String(args.id ?? '').slice(-6)}`,
      execute: args => {
        const id = String(args.id);
        const existing = detailTracker.find(w => w.content.jobId === id);
        if (existing) {
          shell.activateById(existing.id);
          return existing;
        }
        const content = new JobDetailWidget(id);
        const widget = new MainAreaWidget({ content });
        widget.id = `jp-offload-job-main-${id}`;
        widget.title.label = content.title.label;
        widget.title.icon = gpuIcon;
        const button = (command: string, icon: LabIcon, label: string) =>
          new CommandToolbarButton({ commands, id: command, args: { id }, icon, label });
        widget.toolbar.addItem('cancel', button(CommandIDs.cancel, stopIcon, 'Cancel'));
        widget.toolbar.addItem('rerun', button(CommandIDs.rerun, refreshIcon, 'Rerun'));
        widget.toolbar.addItem('rerun-params', button(CommandIDs.rerunWithParameters, editIcon, 'Rerun with\u2026'));
        widget.toolbar.addItem('open', button(CommandIDs.openExecuted, notebookIcon, 'Open executed'));
        widget.toolbar.addItem('merge', button(CommandIDs.merge, fileUploadIcon, 'Merge into notebook'));
        widget.toolbar.addItem('cli', button(CommandIDs.copyCli, copyIcon, 'Copy CLI command'));
        content.onUpdate = d => {
          const before = states.get(id);
          states.set(id, d);
          if (!before || before.state !== d.state) {
            for (const c of [CommandIDs.cancel, CommandIDs.merge, CommandIDs.openExecuted]) {
              commands.notifyCommandChanged(c);
            }
          }
        };
        void detailTracker.add(widget);
        shell.add(widget, 'main', { mode: 'split-right' });
        return widget;
      }
    });

    commands.addCommand(CommandIDs.cancel, {
      label: 'Cancel Offload Job',
      icon: stopIcon,
      isEnabled: args => !!stateOf(args) && isActive(stateOf(args)!.state),
      execute: async args => {
        const id = String(args.id);
        try {
          await api.cancel(id);
          Notification.info(`Cancelling job ${id.slice(-6)}\u2026`, { autoClose: 3000 });
          void jobs.refresh();
          void detailTracker.find(w => w.content.jobId === id)?.content.refresh();
        } catch (err) {
          Notification.error(`Cancel failed: ${errorText(err)}`);
        }
      }
    });

    async function rerun(id: string, parameters?: Record<string, any>): Promise<void> {
      try {
        const job = await api.rerun(id, parameters);
        jobs.submittedHere.add(job.id);
        states.set(job.id, job);
        Notification.info(`Rerunning as job ${job.id.slice(-6)}.`, {
          autoClose: 5000,
          actions: [{ label: 'Show job', callback: () => void commands.execute(CommandIDs.openJob, { id: job.id }) }]
        });
        void jobs.refresh();
      } catch (err) {
        await showErrorMessage('Rerun failed', errorText(err));
      }
    }

    commands.addCommand(CommandIDs.rerun, {
      label: 'Rerun Offload Job (same files and environment)',
      icon: refreshIcon,
      isEnabled: args => !!args.id,
      execute: args => rerun(String(args.id))
    });

    commands.addCommand(CommandIDs.rerunWithParameters, {
      label: 'Rerun Offload Job with Changed Parameters\u2026',
      icon: editIcon,
      isEnabled: args => !!args.id,
      execute: async args => {
        const id = String(args.id);
        try {
          const d = await api.job(id);
          let params = d.source_path ? (await api.inspect(d.source_path).catch(() => null))?.parameters ?? null : null;
          if (!params) {
            params = Object.entries(d.parameters).map(([name, v]) => ({
              name,
              default: v,
              type: typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'float') : typeof v === 'boolean' ? 'bool' : 'str',
              source: JSON.stringify(v),
              help: ''
            }));
          }
          const result = await showDialog({
            title: `Rerun job ${id.slice(-6)} with parameters`,
            body: new RerunDialogBody(params, d.parameters),
            buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Rerun' })]
          });
          if (result.button.accept && result.value) {
            await rerun(id, result.value);
          }
        } catch (err) {
          await showErrorMessage('Rerun failed', errorText(err));
        }
      }
    });

    commands.addCommand(CommandIDs.openExecuted, {
      label: 'Open Executed Notebook (read-only)',
      icon: notebookIcon,
      isEnabled: args => !!stateOf(args) && stateOf(args)!.state !== 'queued',
      execute: args => {
        const id = String(args.id);
        const content = new ExecutedNotebookWidget(id, rendermime);
        const widget = new MainAreaWidget({ content });
        widget.title.label = content.title.label;
        widget.title.icon = notebookIcon;
        shell.add(widget, 'main');
        return widget;
      }
    });

    commands.addCommand(CommandIDs.merge, {
      label: 'Merge Job Outputs into Notebook',
      icon: fileUploadIcon,
      isEnabled: args => !!stateOf(args) && FINAL_STATES.includes(stateOf(args)!.state),
      execute: args => merge(String(args.id))
    });

    commands.addCommand(CommandIDs.copyCli, {
      label: 'Copy Equivalent CLI Command',
      icon: copyIcon,
      isEnabled: args => !!args.id,
      execute: async args => {
        const id = String(args.id);
        const known = stateOf(args) as IJobDetail | undefined;
        const cli = known?.cli ?? (await api.job(id)).cli;
        Clipboard.copyToSystem(cli);
        Notification.info(`Copied: ${cli}`, { autoClose: 4000 });
      }
    });

    commands.addCommand(CommandIDs.openGallery, {
      label: 'Open Offload Gallery',
      icon: tableRowsIcon,
      execute: () => {
        const existing = galleryTracker.currentWidget;
        if (existing && !existing.isDisposed) {
          shell.activateById(existing.id);
          void existing.content.refresh();
          return existing;
        }
        const content = new GalleryWidget({
          onOpen: id => void commands.execute(CommandIDs.openExecuted, { id }),
          onDetail: id => void commands.execute(CommandIDs.openJob, { id }),
          onCompare: (a, b) => void commands.execute(CommandIDs.compare, { a, b })
        });
        const widget = new MainAreaWidget({ content });
        widget.id = 'jp-offload-gallery-main';
        widget.title.label = 'Offload Gallery';
        widget.title.icon = tableRowsIcon;
        widget.toolbar.addItem(
          'refresh',
          new CommandToolbarButton({ commands, id: CommandIDs.openGallery, icon: refreshIcon, label: 'Refresh' })
        );
        void galleryTracker.add(widget);
        shell.add(widget, 'main');
        return widget;
      }
    });

    commands.addCommand(CommandIDs.compare, {
      label: 'Compare Two Offload Runs',
      isEnabled: args => !!args.a && !!args.b,
      execute: args => {
        const content = new CompareWidget(String(args.a), String(args.b));
        const widget = new MainAreaWidget({ content });
        widget.title.label = content.title.label;
        shell.add(widget, 'main');
        return widget;
      }
    });

    if (palette) {
      for (const command of [CommandIDs.runNotebook, CommandIDs.showJobs, CommandIDs.openGallery]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    return { api, jobs, panels };
  }
};

export default [plugin, sweepPlugin, cellRunPlugin];
