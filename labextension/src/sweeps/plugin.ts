/**
 * The Sweep plugin: "Sweep Parameters…" (notebook toolbar, palette) opens the sweep panel of a
 * notebook beside it (sweeps/panel.ts), restored across reloads; "Apply best to notebook"
 * rewrites the parameters cell through the open notebook's model (Undo in the notification), or
 * the file when the notebook is not open.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { refreshIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { errorText, ISweepState, sweepApi } from '../api';
import { CommandIDs, IOffload, SweepCommandIDs } from '../tokens';
import { formatValue } from '../util/format';
import { gpuIcon } from '../util/icons';
import { SweepWidget } from './panel';

function parametersCell(panel: NotebookPanel) {
  for (const cell of panel.content.widgets) {
    const tags = cell.model.getMetadata('tags');
    if (cell.model.type === 'code' && Array.isArray(tags) && tags.includes('parameters')) {
      return cell;
    }
  }
  return null;
}

export const sweepPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:sweep',
  description: 'Sweep panel: Optuna sweeps over a notebook\u2019s parameters, live trials, plots, apply best.',
  autoStart: true,
  requires: [IOffload, INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    offload: IOffload,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    const sweepTracker = new WidgetTracker<MainAreaWidget<SweepWidget>>({ namespace: 'offload-sweep' });
    const panelFor = (path: string | null) => (path ? tracker.find(p => p.context.path === path) ?? null : null);

    async function applyBest(widget: SweepWidget, s: ISweepState): Promise<void> {
      const sum = s.summary;
      const path = sum.source_path ?? widget.path;
      const trial = sum.best && sum.pareto.length === 0 ? sum.best.number : undefined;
      const panel = panelFor(path);
      try {
        if (panel) {
          const cell = parametersCell(panel);
          if (!cell) {
            Notification.error(`${path} has no cell tagged "parameters".`);
            return;
          }
          const before = cell.model.sharedModel.getSource();
          const r = await sweepApi.applyBest(sum.id, { source: before, trial });
          cell.model.sharedModel.setSource(r.source ?? before);
          Notification.success(
            `Trial ${r.trial} parameters applied to ${path.split('/').pop()} (not saved yet): ${Object.entries(r.params)
              .map(([k, v]) => `${k}=${formatValue(v)}`)
              .join(', ')}`,
            {
              autoClose: 8000,
              actions: [{ label: 'Undo', callback: () => cell.model.sharedModel.setSource(before) }]
            }
          );
        } else {
          const r = await sweepApi.applyBest(sum.id, { path, trial });
          Notification.success(`Best parameters written into ${r.written}.`, { autoClose: 6000 });
        }
      } catch (err) {
        Notification.error(`Apply best failed: ${errorText(err)}`);
      }
    }

    function open(path: string, sweepId: string | null = null): MainAreaWidget<SweepWidget> {
      const existing = sweepTracker.find(w => w.content.path === path);
      if (existing) {
        if (sweepId && existing.content.sweepId !== sweepId) {
          existing.content.showSweep(sweepId);
        } else {
          void existing.content.reload();
        }
        shell.activateById(existing.id);
        return existing;
      }
      let widget: MainAreaWidget<SweepWidget> | null = null;
      const content: SweepWidget = new SweepWidget({
        path,
        sweepId,
        notebookSources: () =>
          panelFor(path)?.content.widgets.filter(c => c.model.type === 'code').map(c => c.model.sharedModel.getSource()) ?? [],
        openTrial: (jobId, finished) =>
          void commands.execute(finished ? CommandIDs.openExecuted : CommandIDs.openJob, { id: jobId }),
        applyBest: s => applyBest(content, s)
      });
      widget = new MainAreaWidget({ content });
      widget.id = `jp-offload-sweep-main-${path.replace(/[^\w-]/g, '_')}`;
      widget.title.label = content.title.label;
      widget.title.caption = `Parameter sweeps of ${path}`;
      widget.title.icon = gpuIcon;
      const w = widget;
      content.onSweepChanged = () => void sweepTracker.save(w);
      widget.toolbar.addItem(
        'refresh',
        new ToolbarButton({
          icon: refreshIcon,
          label: 'Refresh',
          tooltip: 'Read the sweeps again',
          onClick: () => void content.reload()
        })
      );
      widget.toolbar.addItem(
        'stop',
        new ToolbarButton({
          icon: stopIcon,
          label: 'Stop sweep',
          tooltip: 'Cancel running trials; resume later with `offload sweep resume`',
          onClick: () => void content.stop()
        })
      );
      void sweepTracker.add(widget);
      shell.add(widget, 'main', { mode: 'split-right' });
      return widget;
    }

    commands.addCommand(SweepCommandIDs.open, {
      label: args => (args.path ? `Sweep ${String(args.path).split('/').pop()}` : 'Sweep Parameters\u2026'),
      caption: 'Search the notebook\u2019s parameters with an Optuna sweep, each trial a job (jupyter-offload)',
      icon: args => (args.isPalette ? undefined : gpuIcon),
      isEnabled: args => !!args.path || !!tracker.currentWidget,
      execute: async args => {
        let path = args.path ? String(args.path) : null;
        if (!path) {
          const panel = tracker.currentWidget;
          if (!panel) {
            return;
          }
          if (panel.context.model.dirty && !panel.context.model.readOnly) {
            await panel.context.save(); // the sweep runs the saved file
          }
          path = panel.context.path;
        }
        return open(path, args.id ? String(args.id) : null);
      }
    });
    if (restorer) {
      void restorer.restore(sweepTracker, {
        command: SweepCommandIDs.open,
        args: w => ({ path: w.content.path, id: w.content.sweepId }),
        name: w => w.content.path
      });
    }
    palette?.addItem({ command: SweepCommandIDs.open, category: 'Offload' });
    void offload; // IOffload: required so this loads after the core plugin (icon, commands)
  }
};
