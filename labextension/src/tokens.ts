/**
 * Extension points for other jupyter-offload plugins (the sweep panel, "Run cell on GPU"):
 * require IOffload to get the API client, the live jobs model, the command ids, and the panel
 * registry whose panels appear as sections of the Offload side panel.
 */
import { Token } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { api } from './api';
import { JobsModel } from './jobs/model';

export namespace CommandIDs {
  export const runNotebook = 'offload:run-notebook';
  export const showJobs = 'offload:show-jobs';
  export const openJob = 'offload:open-job';
  export const openGallery = 'offload:open-gallery';
  export const openExecuted = 'offload:open-executed';
  export const compare = 'offload:compare';
  export const merge = 'offload:merge';
  export const cancel = 'offload:cancel';
  export const rerun = 'offload:rerun';
  export const rerunWithParameters = 'offload:rerun-with-parameters';
  export const copyCli = 'offload:copy-cli';
}

/** The sweep panel's command (sweeps/plugin.ts). */
export namespace SweepCommandIDs {
  export const open = 'offload:sweep';
}

/** "Run Cell on GPU" (cells/plugin.ts). */
export namespace CellRunCommandIDs {
  export const run = 'offload:run-cell-on-gpu';
  export const runWithOptions = 'offload:run-cell-on-gpu-with-options';
}

export interface IPanelSpec {
  /** Unique id, e.g. 'offload-sweeps'. */
  id: string;
  /** Lower ranks come first; the jobs list has rank 100. */
  rank?: number;
  /** Creates the section; its title.label is the section header. */
  create: () => Widget;
}

/** Sections of the Offload side panel, added by any plugin. */
export class PanelRegistry {
  get added(): ISignal<this, IPanelSpec> {
    return this._added;
  }

  get panels(): IPanelSpec[] {
    return [...this._panels].sort((a, b) => (a.rank ?? 500) - (b.rank ?? 500));
  }

  add(spec: IPanelSpec): void {
    if (this._panels.some(p => p.id === spec.id)) {
      throw new Error(`offload panel ${spec.id} is already registered`);
    }
    this._panels.push(spec);
    this._added.emit(spec);
  }

  private _panels: IPanelSpec[] = [];
  private _added = new Signal<this, IPanelSpec>(this);
}

export interface IOffload {
  api: typeof api;
  jobs: JobsModel;
  panels: PanelRegistry;
}

export const IOffload = new Token<IOffload>(
  'jupyter-offload:IOffload',
  'The jupyter-offload API client, live jobs model and side panel registry.'
);
