/**
 * Desktop notifications (issue 18): when a job (or a sweep, sweeps/plugin.ts) ends while this
 * JupyterLab tab is in the background, the browser shows a system notification; a click brings the tab back and opens
 * the job. In the foreground the Lab's own toast (plugin.ts, notifyFinished) says it.
 *
 * Browsers only grant the permission on a user action: it is asked when the user runs a notebook
 * on a GPU (the Run on GPU command) and by the palette command "Enable desktop notifications".
 * Nothing is asked when the permission was already given or refused.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { FINAL_STATES } from '../api';
import { CommandIDs, IOffload } from '../tokens';

export const enableDesktopNotifications = 'offload:enable-desktop-notifications';

/** Job kinds announced: a sweep's trials, cells and sessions are not (as for the toast). */
const QUIET_KINDS = ['trial', 'pack', 'cell', 'session'];

function supported(): boolean {
  return typeof window !== 'undefined' && 'Notification' in window;
}

/** Ask for the permission (call from a user action); resolves to whether it is granted. */
export async function askPermission(): Promise<boolean> {
  if (!supported()) {
    return false;
  }
  if (window.Notification.permission === 'default') {
    try {
      await window.Notification.requestPermission();
    } catch {
      return false; // an old browser's callback form, or refused outright
    }
  }
  return window.Notification.permission === 'granted';
}

/**
 * A system notification when the tab is in the background and the permission is granted (else
 * nothing: the Lab's toast says it); a click brings the tab back and runs ``onClick``. The sweep
 * panel (sweeps/plugin.ts) uses it for a sweep's end.
 */
export function showDesktop(title: string, body: string, tag: string, onClick: () => void): void {
  if (!document.hidden || !supported() || window.Notification.permission !== 'granted') {
    return;
  }
  const n = new window.Notification(title, { body, tag });
  n.onclick = () => {
    window.focus();
    onClick();
    n.close();
  };
}

export const desktopNotifyPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:desktop-notifications',
  description: 'A system notification when a job ends while the JupyterLab tab is in the background.',
  autoStart: true,
  requires: [IOffload],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, offload: IOffload, palette: ICommandPalette | null) => {
    app.commands.addCommand(enableDesktopNotifications, {
      label: 'Enable desktop notifications for ended jobs',
      caption: 'Show a system notification when a job ends while this tab is in the background',
      isEnabled: () => supported() && window.Notification.permission !== 'denied',
      execute: () => askPermission()
    });
    palette?.addItem({ command: enableDesktopNotifications, category: 'Offload' });
    app.commands.commandExecuted.connect((_, { id }) => {
      if (id === CommandIDs.runNotebook) {
        void askPermission(); // the user just clicked Run on GPU: the moment to ask
      }
    });
    offload.jobs.transitioned.connect((_, { job, to }) => {
      if (!FINAL_STATES.includes(to) || QUIET_KINDS.includes(job.kind)) {
        return;
      }
      const name = (job.source_path ?? job.notebook).split('/').pop();
      const what = to === 'succeeded' ? 'succeeded' : `${to}${job.reason ? `: ${job.reason}` : ''}`;
      showDesktop(`${name}: job ${what}`, `Job ${job.id} on ${job.backend}`, `jupyter-offload-${job.id}`, () =>
        void app.commands.execute(CommandIDs.openJob, { id: job.id })
      );
    });
  }
};
