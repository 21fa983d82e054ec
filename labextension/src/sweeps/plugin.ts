/**
 * The Sweep plugin: "Sweep Parameters…" (notebook toolbar, palette) opens the sweep panel of a
 * notebook beside it (sweeps/panel.ts), restored across reloads; "Apply best to notebook"
 * rewrites the parameters cell through the open notebook's model (Undo in the notification), or
 * the file when the notebook is not open.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { refreshIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { ACTIVE_SWEEP_STATES, errorText, ISweepListItem, ISweepState, sweepApi } from '../api';
import { showDesktop } from '../jobs/desktop';
import { saveBeforeSubmit } from '../jobs/save';
import { CommandIDs, IOffload, SweepCommandIDs } from '../tokens';
import { formatValue } from '../util/format';
import { createPoll, pollNow } from '../util/poll';
import { gpuIcon } from '../util/icons';
import { SweepWidget } from './panel';

/**
 * The lines of a parameters cell that set these names, as written (`lr = 0.010005268542378308`):
 * what the notification quotes, so it says exactly what the cell now holds.
 */
export function writtenLines(source: string, names: string[]): string[] {
  const lines = source.split('\n');
  return names.map(n => {
    const re = new RegExp(`^\\s*${n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*(?::[^=]+)?=\\s*(.*?)\\s*(#.*)?$`);
    const line = lines.find(l => re.test(l));
    return line ? line.replace(/\s*#.*$/, '').trim() : n;
  });
}

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
  optional: [ICommandPalette, ILayoutRestorer, IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    offload: IOffload,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    docManager: IDocumentManager | null
  ) => {
    const { commands, shell } = app;
    const sweepTracker = new WidgetTracker<MainAreaWidget<SweepWidget>>({ namespace: 'offload-sweep' });
    const panelFor = (path: string | null) => (path ? tracker.find(p => p.context.path === path) ?? null : null);

    /** Write the best (or chosen) trial's parameters into the notebook: its model when open. */
    async function applyBest(path: string, s: ISweepState): Promise<void> {
      const sum = s.summary;
      path = sum.source_path ?? path;
      const trial = sum.best && sum.pareto.length === 0 ? sum.best.number : undefined;
      let panel = panelFor(path);
      if (!panel && docManager) {
        const opened = docManager.openOrReveal(path);
        if (opened instanceof NotebookPanel) {
          await opened.context.ready;
          panel = opened;
        }
      }
      try {
        if (panel) {
          const cell = parametersCell(panel);
          if (!cell) {
            Notification.error(`${path} has no cell tagged "parameters".`);
            return;
          }
          const before = cell.model.sharedModel.getSource();
          const r = await sweepApi.applyBest(sum.id, { source: before, trial });
          const after = r.source ?? before;
          cell.model.sharedModel.setSource(after);
          // quote the lines as written: the exact values, not the table's 4 significant digits
          Notification.success(
            `Trial ${r.trial} parameters applied to ${path.split('/').pop()} (not saved yet): ${writtenLines(after, Object.keys(r.params)).join('; ')}`,
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
        applyBest: s => applyBest(content.path, s)
      });
      widget = new MainAreaWidget({ content });
      widget.id = `jp-offload-sweep-main-${path.replace(/[^\w-]/g, '_')}`;
      widget.title.label = content.title.label;
      widget.title.caption = `Parameter sweeps of ${path}`;
      widget.title.icon = gpuIcon;
      const w = widget;
      content.onSweepChanged = () => void sweepTracker.save(w);
      content.onSweepStarted = () => void pollNow(sweepsPoll);
      content.onGone = () => {
        if (!w.isDisposed) {
          w.dispose();
          Notification.info(`${path} no longer exists; its sweep panel was closed.`, { autoClose: 5000 });
        }
      };
      widget.toolbar.addItem(
        'refresh',
        new ToolbarButton({
          icon: refreshIcon,
          label: 'Refresh',
          tooltip: 'Read the sweeps again',
          onClick: () => void content.reload()
        })
      );
      const stop = new ToolbarButton({
        icon: stopIcon,
        label: 'Stop sweep',
        tooltip: 'Cancel running trials; resume later with `offload sweep resume`',
        onClick: () => void content.stop(),
        enabled: false
      });
      stop.addClass('jp-offload-sweep-stop');
      content.onStateChanged = () => {
        stop.enabled = content.running; // disabled when nothing runs
      };
      widget.toolbar.addItem('stop', stop);
      void sweepTracker.add(widget);
      // a tab next to the notebook (the user splits by dragging the tab)
      shell.add(widget, 'main', { mode: 'tab-after' });
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
          await saveBeforeSubmit(panel.context); // the sweep runs the saved file
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

    // a notification when a sweep ends ---------------------------------------------------------
    // The list of sweeps is read while one is active (every 3 s; after a trial ends or a sweep
    // starts, at once), and not at all while none is.
    const known = new Map<string, string>();
    let primed = false;
    async function notifyEnded(item: ISweepListItem): Promise<void> {
      const name = (item.source_path ?? item.notebook).split('/').pop();
      const show = { label: 'Show sweep', callback: () => void commands.execute(SweepCommandIDs.open, { path: item.source_path ?? item.notebook, id: item.id }) };
      let s: ISweepState | null = null;
      try {
        s = await sweepApi.state(item.id);
      } catch {
        s = null;
      }
      const best = s?.summary.best ?? null;
      const text = `Sweep ${item.id.slice(-6)} (${name}) ${item.state}: ${item.done} of ${item.trials} trials` +
        (best ? `, best ${item.objective} = ${formatValue(best.value)} (trial ${best.number})` : ', no complete trial');
      const actions = best && s && item.source_path
        ? [{ label: 'Apply best', callback: () => void applyBest(item.source_path!, s!) }, show]
        : [show];
      showDesktop(`${name}: sweep ${item.state}`, text, `jupyter-offload-sweep-${item.id}`, show.callback);
      if (item.state === 'completed') {
        Notification.success(text, { autoClose: false, actions });
      } else if (item.state === 'failed' || item.state === 'interrupted') {
        Notification.error(text, { autoClose: false, actions });
      } else {
        Notification.info(text, { autoClose: 8000, actions });
      }
    }
    const sweepsPoll = createPoll('sweeps', 3000, async () => {
      const list = (await sweepApi.list()).sweeps;
      for (const item of list) {
        const before = known.get(item.id);
        known.set(item.id, item.state);
        const ended = !ACTIVE_SWEEP_STATES.includes(item.state);
        if (primed && ended && (before === undefined || ACTIVE_SWEEP_STATES.includes(before))) {
          void notifyEnded(item);
        }
      }
      primed = true;
      if (!list.some(x => ACTIVE_SWEEP_STATES.includes(x.state))) {
        void sweepsPoll.stop();
      }
    });
    void sweepsPoll.start();
    offload.jobs.transitioned.connect((_, { job }) => {
      if (job.kind === 'trial') {
        void pollNow(sweepsPoll);
      }
    });
  }
};
