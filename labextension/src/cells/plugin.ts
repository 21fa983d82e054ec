/**
 * "Run Cell on GPU" commands: cell toolbar and cell context menu (schema/plugin.json), palette;
 * "Run Cell on GPU with Options…" asks for the options line (`--gpu l4 --spot`, kept for the
 * next runs). What runs in the kernel is in cells/run.ts.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { CellRunCommandIDs, IOffload } from '../tokens';
import { gpuIcon } from '../util/icons';
import { runCellOnGpu } from './run';

function activeCodeCell(tracker: INotebookTracker): { panel: NotebookPanel; cell: CodeCell } | null {
  const panel = tracker.currentWidget;
  const cell = tracker.activeCell;
  if (!panel || !cell || !(cell instanceof CodeCell) || cell.model.type !== 'code') {
    return null;
  }
  return { panel, cell };
}

export const cellRunPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:cell-run',
  description: '"Run Cell on GPU": the active cell through %%offload in the notebook\u2019s kernel.',
  autoStart: true,
  requires: [IOffload, INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, offload: IOffload, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const { commands } = app;
    let lastLine = '';
    const enabled = () => {
      return !!activeCodeCell(tracker); // no kernel yet: execute says so
    };

    commands.addCommand(CellRunCommandIDs.run, {
      label: 'Run Cell on GPU',
      caption: 'Run this cell remotely through %%offload, in this kernel, without editing it (jupyter-offload)',
      icon: args => (args.isPalette ? undefined : gpuIcon),
      isEnabled: enabled,
      execute: async args => {
        const found = activeCodeCell(tracker);
        if (!found) {
          return;
        }
        const line = typeof args.line === 'string' ? args.line : lastLine;
        await runCellOnGpu(found.panel, found.cell, line);
      }
    });

    commands.addCommand(CellRunCommandIDs.runWithOptions, {
      label: 'Run Cell on GPU with Options\u2026',
      caption: 'Run this cell through %%offload with options such as --gpu l4 --spot',
      isEnabled: enabled,
      execute: async () => {
        const found = activeCodeCell(tracker);
        if (!found) {
          return;
        }
        const result = await InputDialog.getText({
          title: 'Run cell on GPU: %%offload options',
          label: 'Options, as after %%offload (e.g. --gpu l4 --spot --max-runtime 30m)',
          text: lastLine,
          placeholder: '--gpu l4 --spot'
        });
        if (!result.button.accept) {
          return;
        }
        lastLine = (result.value ?? '').trim();
        await runCellOnGpu(found.panel, found.cell, lastLine);
      }
    });

    tracker.activeCellChanged.connect(() => {
      commands.notifyCommandChanged(CellRunCommandIDs.run);
      commands.notifyCommandChanged(CellRunCommandIDs.runWithOptions);
    });
    tracker.currentChanged.connect(() => commands.notifyCommandChanged(CellRunCommandIDs.run));
    for (const command of [CellRunCommandIDs.run, CellRunCommandIDs.runWithOptions]) {
      palette?.addItem({ command, category: 'Offload' });
    }
    void offload;
  }
};
