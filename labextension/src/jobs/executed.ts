/**
 * A read-only view of an executed notebook. Outputs are rendered untrusted by JupyterLab's own
 * renderers (no script runs).
 */
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { api } from '../api';
import { el } from '../util/dom';

/** An executed notebook, read-only: sources as text, outputs through the untrusted renderers. */
export class ExecutedNotebookWidget extends Panel {
  constructor(readonly jobId: string, private _rendermime: IRenderMimeRegistry) {
    super();
    this.addClass('jp-offload-Executed');
    this.id = `jp-offload-executed-${jobId}`;
    this.title.label = `Executed ${jobId.slice(-6)} (read-only)`;
    this.title.closable = true;
  }

  protected onAfterAttach(): void {
    if (this._loaded) {
      return;
    }
    this._loaded = true;
    void api.executed(this.jobId).then(
      nb => this._render(nb),
      err => this.addWidget(new Widget({ node: el('div', { class: 'jp-offload-error' }, String(err.message ?? err)) }))
    );
  }

  private _render(nb: any): void {
    const banner = el('div', { class: 'jp-offload-readonly-banner' }, `Read-only: executed notebook of job ${this.jobId}`);
    this.addWidget(new Widget({ node: banner }));
    for (const cell of nb.cells ?? []) {
      const src = Array.isArray(cell.source) ? cell.source.join('') : cell.source ?? '';
      const box = new Panel();
      box.addClass('jp-offload-ro-cell');
      box.addWidget(new Widget({ node: el('pre', { class: `jp-offload-ro-source jp-offload-ro-${cell.cell_type}` }, src) }));
      if (cell.cell_type === 'code' && cell.outputs?.length) {
        const model = new OutputAreaModel({ values: cell.outputs, trusted: false });
        box.addWidget(new OutputArea({ model, rendermime: this._rendermime }));
      }
      this.addWidget(box);
    }
  }

  private _loaded = false;
}
