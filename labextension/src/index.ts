/**
 * jupyter-offload for JupyterLab: the list of plugins.
 *
 * - jobs/plugin.ts: Run on GPU, the Offload side panel, job view, merge back, gallery; provides
 *   IOffload (tokens.ts), through which the others extend it.
 * - sweeps/plugin.ts: the Sweep panel.
 * - cells/plugin.ts: Run Cell on GPU.
 * - jobs/machines.ts: kept machines in the side panel (countdown, Stop).
 * - jobs/desktop.ts: a system notification when a job ends while the tab is in the background.
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { cellRunPlugin } from './cells/plugin';
import { desktopNotifyPlugin } from './jobs/desktop';
import { machinesPlugin } from './jobs/machines';
import { jobsPlugin } from './jobs/plugin';
import { sweepPlugin } from './sweeps/plugin';

export { CellRunCommandIDs, CommandIDs, IOffload, PanelRegistry, SweepCommandIDs } from './tokens';
export type { IPanelSpec } from './tokens';
export { gpuIcon } from './util/icons';

const plugins: JupyterFrontEndPlugin<any>[] = [
  jobsPlugin,
  machinesPlugin,
  sweepPlugin,
  cellRunPlugin,
  desktopNotifyPlugin
];
export default plugins;
