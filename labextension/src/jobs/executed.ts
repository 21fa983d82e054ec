/**
 * A read-only view of an executed notebook, rendered as a notebook: JupyterLab's own notebook
 * widget (StaticNotebook, with the parts of the notebook widget factory: editors, rendered
 * markdown, prompts, output areas) over a model built from the job's output notebook. It is
 * never trusted (no script runs, HTML is sanitized) and no cell can be edited or run; nothing is
 * written to the user's files.
 */
import { NotebookModel, NotebookWidgetFactory, StaticNotebook } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { api, ApiError, errorText } from '../api';
import { el } from '../util/dom';

export class ExecutedNotebookWidget extends Panel {
  constructor(
    readonly jobId: string,
    private _rendermime: IRenderMimeRegistry,
    private _factory: NotebookWidgetFactory.IFactory | null
  ) {
    super();
    this.addClass('jp-offload-Executed');
    this.id = `jp-offload-executed-${jobId}`;
    this.title.label = `Executed ${jobId.slice(-6)} (read-only)`;
    this.title.caption = `Executed notebook of job ${jobId}, read-only`;
    this.title.closable = true;
    this.node.tabIndex = -1;
  }

  /** Called when the server says the job does not exist (a view restored after it was removed). */
  onGone: () => void = () => undefined;

  protected onAfterAttach(): void {
    if (this._loaded) {
      return;
    }
    this._loaded = true;
    void api.executed(this.jobId).then(
      nb => this._render(nb),
      err => {
        if (err instanceof ApiError && err.status === 404) {
          this.onGone();
          return;
        }
        this.addWidget(new Widget({ node: el('div', { class: 'jp-offload-error' }, errorText(err)) }));
      }
    );
  }

  dispose(): void {
    this._model?.dispose();
    super.dispose();
  }

  private _render(nb: any): void {
    const banner = el(
      'div',
      { class: 'jp-offload-readonly-banner', role: 'note' },
      el('strong', {}, 'Read-only'),
      ` \u2013 executed notebook of job ${this.jobId}. Outputs are shown untrusted; edits are not possible here.`
    );
    this.addWidget(new Widget({ node: banner }));
    const model = new NotebookModel();
    model.fromJSON(nb);
    model.dirty = false;
    this._model = model;
    // the factory JupyterLab registers is a NotebookWidgetFactory: its content factory and mime
    // type service make the cells as a notebook tab makes them
    const f = this._factory as unknown as NotebookWidgetFactory | null;
    if (!f?.contentFactory || !f.mimeTypeService) {
      this.addWidget(
        new Widget({ node: el('div', { class: 'jp-offload-error' }, 'The notebook viewer is not available in this JupyterLab.') })
      );
      return;
    }
    const notebook = new StaticNotebook({
      rendermime: this._rendermime,
      contentFactory: f.contentFactory,
      mimeTypeService: f.mimeTypeService,
      editorConfig: f.editorConfig,
      notebookConfig: { ...f.notebookConfig, windowingMode: 'none' }
    });
    notebook.addClass('jp-offload-executed-notebook');
    notebook.model = model;
    for (const cell of notebook.widgets) {
      cell.readOnly = true;
    }
    this.addWidget(notebook);
  }

  private _loaded = false;
  private _model: NotebookModel | null = null;
}
