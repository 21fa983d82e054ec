/**
 * Into a running job (issue 13, docs/attach.md): the job view's toolbar gets
 *
 * - **Terminal**: a JupyterLab terminal whose program is `offload ssh JOB` (a shell on the job's
 *   machine, in its notebook's directory; the server starts it as argv, nothing is typed into a
 *   shell);
 * - **Console**: a JupyterLab console on the job's own kernel. The server registers the kernel it
 *   did not start (POST jobs/{id}/console) and sends the console's shell messages to a kernel
 *   subshell, so it answers while the notebook's cell runs; closing or shutting the console down
 *   never stops the job;
 * - **Debug a copy** (a failed job): rerun it up to the failing cell, open the copy's view; its
 *   Console button attaches once the copy holds its kernel.
 */
import { MainAreaWidget, Notification, showErrorMessage } from '@jupyterlab/apputils';
import { bugIcon, CommandToolbarButton, consoleIcon, LabIcon, terminalIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { errorText, post } from '../api';
import { CommandIDs } from '../tokens';
import { IJobsContext, stateOf as knownState } from './context';

export const AttachCommandIDs = {
  terminal: 'offload:job-terminal',
  console: 'offload:job-console',
  debugCopy: 'offload:job-debug-copy'
};

interface IConsoleReply {
  kernel_id: string;
  job_id: string;
  subshell_id: string;
  host: string | null;
  route: string;
}

/** The Terminal, Console and Debug a copy commands (enabled by the job's state). */
export function registerAttachCommands(ctx: IJobsContext): void {
  const { commands } = ctx.app;
  const stateOf = (args: ReadonlyPartialJSONObject) => knownState(ctx, args)?.state;
  const live = (args: ReadonlyPartialJSONObject) => ['queued', 'provisioning', 'running'].includes(stateOf(args) ?? '');

  commands.addCommand(AttachCommandIDs.terminal, {
    label: 'Terminal',
    caption: "A terminal on the job's machine, in its notebook's directory (offload ssh)",
    icon: terminalIcon,
    isEnabled: live,
    execute: async args => {
      const id = String(args.id);
      try {
        const { name } = await post<{ name: string }>(`jobs/${encodeURIComponent(id)}/terminal`, {});
        await commands.execute('terminal:open', { name });
      } catch (err) {
        await showErrorMessage('Terminal on the job failed', errorText(err));
      }
    }
  });

  commands.addCommand(AttachCommandIDs.console, {
    label: 'Console',
    caption: "A console on the job's running kernel: its variables, while the cell runs (a kernel subshell)",
    icon: consoleIcon,
    isEnabled: args => stateOf(args) === 'running',
    execute: async args => {
      const id = String(args.id);
      try {
        const reply = await post<IConsoleReply>(`jobs/${encodeURIComponent(id)}/console`, {});
        const widget = await commands.execute('console:create', {
          kernelPreference: { id: reply.kernel_id },
          name: `Job ${id.slice(-6)} console`,
          insertMode: 'split-bottom'
        });
        if (widget instanceof Widget) {
          widget.title.label = `Job ${id.slice(-6)} (live)`;
          widget.title.caption = `jupyter-offload job ${id}: its running kernel (${reply.route}${
            reply.host ? ` on ${reply.host}` : ''
          }); closing this console leaves the job running`;
          widget.node.dataset.offloadJob = id;
          // closing the console lets the server drop its subshell and relays (never the job's kernel)
          widget.disposed.connect(() => {
            void ctx.app.serviceManager.kernels.shutdown(reply.kernel_id).catch(() => undefined);
          });
        }
      } catch (err) {
        await showErrorMessage('Console on the job failed', errorText(err));
      }
    }
  });

  commands.addCommand(AttachCommandIDs.debugCopy, {
    label: 'Debug a copy',
    caption: 'Rerun this failed job up to the cell that failed and keep its kernel to attach (Console)',
    icon: bugIcon,
    isEnabled: args => stateOf(args) === 'failed',
    execute: async args => {
      const id = String(args.id);
      try {
        const copy = await post<{ id: string }>(`jobs/${encodeURIComponent(id)}/debug-copy`, {});
        void ctx.jobs.refresh();
        await commands.execute(CommandIDs.openJob, { id: copy.id });
        Notification.info(
          `Debug copy ${copy.id.slice(-6)} runs up to the failing cell, then keeps its kernel: Console attaches.`,
          { autoClose: 8000 }
        );
      } catch (err) {
        await showErrorMessage('Debug a copy failed', errorText(err));
      }
    }
  });
}

/** The three buttons of a job view's toolbar. */
export function addAttachButtons(widget: MainAreaWidget, ctx: IJobsContext, id: string): void {
  const { commands } = ctx.app;
  const button = (command: string, icon: LabIcon, label: string) =>
    new CommandToolbarButton({ commands, id: command, args: { id }, icon, label });
  widget.toolbar.addItem('terminal', button(AttachCommandIDs.terminal, terminalIcon, 'Terminal'));
  widget.toolbar.addItem('console', button(AttachCommandIDs.console, consoleIcon, 'Console'));
  widget.toolbar.addItem('debug-copy', button(AttachCommandIDs.debugCopy, bugIcon, 'Debug a copy'));
}

/** The job's state changed: the buttons re-read whether they apply. */
export function notifyAttachCommands(ctx: IJobsContext): void {
  for (const c of Object.values(AttachCommandIDs)) {
    ctx.app.commands.notifyCommandChanged(c);
  }
}
