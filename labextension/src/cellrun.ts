/**
 * "Run Cell on GPU": runs the active code cell through `%%offload` in the notebook's own kernel,
 * without editing the cell. The kernel executes a two-line snippet that loads the offload IPython
 * extension and calls `offload.cells.magic.run_cell(<cell source>, <options line>)`, with the cell's
 * output area as the target (as CodeCell.execute does): outputs stream under the cell, values the
 * cell assigns are bound in the kernel, a remote error is raised there like any cell error.
 *
 * Commands: cell toolbar and cell context menu (schema/plugin.json), palette; "Run Cell on GPU
 * with Options…" asks for the options line (`--gpu l4 --spot`, kept for the next runs).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { OutputArea } from '@jupyterlab/outputarea';
import { LabIcon } from '@jupyterlab/ui-components';

import { IOffload } from './tokens';

export namespace CellRunCommandIDs {
  export const run = 'offload:run-cell-on-gpu';
  export const runWithOptions = 'offload:run-cell-on-gpu-with-options';
}

/** A Python string literal for any text (JSON's escapes are all valid in Python). */
export function pyString(text: string): string {
  // Lone surrogates cannot be encoded; everything else JSON.stringify writes is a valid Python literal.
  return JSON.stringify(text).replace(/[\u2028\u2029]/g, c => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** The code the kernel runs for "Run Cell on GPU" (leaves no names behind in the namespace). */
export function cellRunCode(source: string, line: string): string {
  return (
    'get_ipython().extension_manager.load_extension("offload")\n' +
    `__import__("offload.cells.magic", fromlist=["run_cell"]).run_cell(${pyString(source)}, ${pyString(line)})`
  );
}

function activeCodeCell(tracker: INotebookTracker): { panel: NotebookPanel; cell: CodeCell } | null {
  const panel = tracker.currentWidget;
  const cell = tracker.activeCell;
  if (!panel || !cell || !(cell instanceof CodeCell) || cell.model.type !== 'code') {
    return null;
  }
  return { panel, cell };
}

export async function runCellOnGpu(panel: NotebookPanel, cell: CodeCell, line: string): Promise<void> {
  const ctx = panel.sessionContext;
  if (!ctx.session?.kernel) {
    Notification.error('Run cell on GPU: this notebook has no running kernel; start one first.');
    return;
  }
  const source = cell.model.sharedModel.getSource();
  cell.model.clearExecution();
  cell.setPrompt('*');
  cell.addClass('jp-offload-cellrun-running');
  let count: number | null = null;
  try {
    const reply = await OutputArea.execute(cellRunCode(source, line), cell.outputArea, ctx, {
      offload: { run_cell_on_gpu: true, options: line }
    });
    if (reply && reply.content.status !== 'aborted') {
      count = reply.content.execution_count;
    }
  } catch (err) {
    // Kernel restarts and "Canceled future" end up here; the error itself is in the output area.
    if (!String((err as Error)?.message ?? err).includes('Canceled')) {
      Notification.error(`Run cell on GPU: ${(err as Error)?.message ?? err}`);
    }
  } finally {
    cell.removeClass('jp-offload-cellrun-running');
    cell.model.executionCount = count;
    cell.setPrompt(count === null ? '' : String(count));
  }
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
    const icon = () => LabIcon.resolve({ icon: 'jupyter-offload:gpu' });
    const enabled = () => {
      return !!activeCodeCell(tracker); // no kernel yet: execute says so
    };

    commands.addCommand(CellRunCommandIDs.run, {
      label: 'Run Cell on GPU',
      caption: 'Run this cell remotely through %%offload, in this kernel, without editing it (jupyter-offload)',
      icon: args => (args.isPalette ? undefined : icon()),
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
