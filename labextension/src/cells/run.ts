/**
 * "Run Cell on GPU": runs the active code cell through `%%offload` in the notebook's own kernel,
 * without editing the cell. The kernel executes a two-line snippet that loads the offload IPython
 * extension and calls `offload.cells.magic.run_cell(<cell source>, <options line>)`, with the cell's
 * output area as the target (as CodeCell.execute does): outputs stream under the cell, values the
 * cell assigns are bound in the kernel, a remote error is raised there like any cell error.
 */
import { Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { OutputArea } from '@jupyterlab/outputarea';

import { el } from '../util/dom';

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
  // immediate feedback: a status line under the cell until the kernel's first output replaces it
  const where = line.trim() ? ` (${line.trim()})` : '';
  const status = el('div', { class: 'jp-offload-cellrun-status', role: 'status', 'aria-live': 'polite' }, `Running on GPU${where}: preparing the cell\u2026`);
  cell.node.querySelector('.jp-Cell-inputWrapper')?.after(status);
  const onOutput = () => {
    if (cell.outputArea.model.length) {
      status.remove();
    }
  };
  cell.outputArea.model.changed.connect(onOutput);
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
    cell.outputArea.model.changed.disconnect(onOutput);
    status.remove();
    cell.removeClass('jp-offload-cellrun-running');
    cell.model.executionCount = count;
    cell.setPrompt(count === null ? '' : String(count));
  }
}
