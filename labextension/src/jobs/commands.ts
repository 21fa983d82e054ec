/**
 * The core plugin's commands: Run on GPU (the dialog, then submit), show the jobs, open a job
 * (with its toolbar), cancel, rerun (as is, or with changed parameters), open the executed
 * notebook, merge, copy the CLI command, the gallery and the comparison of two runs.
 */
import { Clipboard, Dialog, MainAreaWidget, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import {
  CommandToolbarButton,
  copyIcon,
  editIcon,
  fileUploadIcon,
  LabIcon,
  notebookIcon,
  refreshIcon,
  stopIcon,
  tableRowsIcon
} from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { api, errorText, FINAL_STATES, IJobDetail, isActive } from '../api';
import { CommandIDs } from '../tokens';
import { gpuIcon } from '../util/icons';
import { addAttachButtons, notifyAttachCommands } from './attach';
import { CompareWidget } from './compare';
import { IJobsContext, stateOf as knownState } from './context';
import { JobDetailWidget } from './detail';
import { RerunDialogBody, RunDialogBody } from './dialog';
import { ExecutedNotebookWidget } from './executed';
import { GalleryWidget } from './gallery';
import { mergeJob } from './merge';
import { saveBeforeSubmit } from './save';

export function registerJobCommands(ctx: IJobsContext): void {
  const { commands, shell } = ctx.app;
  const { tracker, jobs, states, side, detailTracker, galleryTracker, rendermime } = ctx;
  const stateOf = (args: ReadonlyPartialJSONObject) => knownState(ctx, args);

  // the Run dialog --------------------------------------------------------------------------
  let dialogOpen = false; // no second dialog from a double click
  async function runNotebook(panel: NotebookPanel): Promise<void> {
    const path = panel.context.path;
    // The dialog opens at once and fills in: the backends are read meanwhile, the notebook is
    // saved (after any autosave in flight, only when dirty) and then inspected.
    const saved = saveBeforeSubmit(panel.context);
    const backends = api.backends();
    const inspection = saved.then(() => api.inspect(path));
    const body = new RunDialogBody(path, backends, inspection);
    dialogOpen = true;
    commands.notifyCommandChanged(CommandIDs.runNotebook);
    let result;
    try {
      result = await showDialog({
        title: `Run on GPU: ${path.split('/').pop()}`,
        body,
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run', ariaLabel: 'Run on GPU' })],
        focusNodeSelector: 'select'
      });
    } finally {
      dialogOpen = false;
      commands.notifyCommandChanged(CommandIDs.runNotebook);
    }
    if (!result.button.accept || !result.value) {
      return;
    }
    try {
      await saved;
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

  /** A view of a job that no longer exists (restored from an earlier session): close it, say so. */
  function closeGone(widget: Widget, what: string, id: string): void {
    if (widget.isDisposed) {
      return;
    }
    widget.dispose();
    Notification.info(`${what} ${id.slice(-6)} no longer exists; its view was closed.`, { autoClose: 5000 });
  }

  // commands --------------------------------------------------------------------------------
  commands.addCommand(CommandIDs.runNotebook, {
    label: 'Run on GPU',
    caption: 'Run a parametrized copy of this notebook on a GPU machine (jupyter-offload)',
    icon: gpuIcon,
    isEnabled: () => !!tracker.currentWidget && !dialogOpen,
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
      content.onGone = () => closeGone(widget, 'Job', id);
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
      addAttachButtons(widget, ctx, id); // Terminal, Console, Debug a copy (attach.ts)
      content.onUpdate = d => {
        const before = states.get(id);
        states.set(id, d);
        if (!before || before.state !== d.state) {
          for (const c of [CommandIDs.cancel, CommandIDs.merge, CommandIDs.openExecuted]) {
            commands.notifyCommandChanged(c);
          }
          notifyAttachCommands(ctx);
        }
      };
      void detailTracker.add(widget);
      // a tab in the main area, next to the current one: the notebook keeps its width; the user
      // splits by dragging the tab
      shell.add(widget, 'main', { mode: 'tab-after' });
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
      const existing = Array.from(shell.widgets('main')).find(w => w.id === `jp-offload-executed-main-${id}`);
      if (existing) {
        shell.activateById(existing.id);
        return existing;
      }
      const content = new ExecutedNotebookWidget(id, rendermime, ctx.notebookFactory);
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-offload-executed-main-${id}`;
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
      widget.title.icon = notebookIcon;
      content.onGone = () => closeGone(widget, 'The executed notebook of job', id);
      shell.add(widget, 'main', { mode: 'tab-after' });
      return widget;
    }
  });

  commands.addCommand(CommandIDs.merge, {
    label: 'Merge Job Outputs into Notebook',
    icon: fileUploadIcon,
    isEnabled: args => !!stateOf(args) && FINAL_STATES.includes(stateOf(args)!.state),
    execute: args => mergeJob(ctx, String(args.id))
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
      shell.add(widget, 'main', { mode: 'tab-after' });
      return widget;
    }
  });

  commands.addCommand(CommandIDs.compare, {
    label: 'Compare Two Offload Runs',
    isEnabled: args => !!args.a && !!args.b,
    execute: args => {
      const [a, b] = [String(args.a), String(args.b)];
      const existing = Array.from(shell.widgets('main')).find(w => w.id === `jp-offload-compare-main-${a}-${b}`);
      if (existing) {
        shell.activateById(existing.id);
        return existing;
      }
      const content = new CompareWidget(a, b);
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-offload-compare-main-${a}-${b}`;
      widget.title.label = content.title.label;
      widget.title.icon = tableRowsIcon;
      shell.add(widget, 'main', { mode: 'tab-after' });
      return widget;
    }
  });
}
