/**
 * Into a running job from JupyterLab (issue 13): Console on a running job's view opens a console
 * bound to the job's own kernel (a subshell): the live variable is evaluated while the notebook's
 * cell runs and seen to change; closing the console and shutting its kernel down leaves the job
 * running. Terminal opens `offload ssh JOB` in a JupyterLab terminal. On that console the debugger
 * can be switched on (the job's ipykernel 7 kernel says it supports it) and its Variables panel
 * lists the notebook's live variable, while the job keeps running.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');
const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');

async function command(page: IJupyterLabPageFixture, id: string, args: any = {}): Promise<any> {
  return page.evaluate(async ({ id, args }) => {
    await (window as any).jupyterapp.commands.execute(id, args);
  }, { id, args });
}

async function api(page: IJupyterLabPageFixture, p: string, method = 'GET', body?: any): Promise<any> {
  return page.evaluate(
    async ({ p, method, body }) => {
      const s = (window as any).jupyterapp.serviceManager.serverSettings;
      const r = await fetch(`${s.baseUrl}${p}`, {
        method,
        headers: { 'Content-Type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined
      });
      return r.status === 204 ? null : await r.json();
    },
    { p, method, body }
  );
}

async function consoleValue(page: IJupyterLabPageFixture, n: number): Promise<number> {
  const console = page.locator('.jp-CodeConsole');
  // connected to the job's kernel (its name shows once kernel_info came back through the subshell)
  await expect(page.locator('.jp-ConsolePanel .jp-Toolbar-kernelName')).toContainText('Python 3', { timeout: 60000 });
  const prompt = console.locator('.jp-CodeConsole-input .cm-content');
  await prompt.click();
  await page.keyboard.type('step');
  await page.keyboard.press('Shift+Enter');
  const out = console.locator('.jp-CodeConsole-content .jp-OutputArea-output').nth(n);
  await expect(out).toHaveText(/^\d+$/, { timeout: 60000 });
  return Number(await out.textContent());
}

test.describe('attach to a running job', () => {
  test.use({ autoGoto: true });

  test('Console evaluates the live variable while the cell runs; closing it leaves the job running', async ({
    page,
    tmpPath
  }) => {
    test.setTimeout(400000);
    await page.contents.uploadFile(path.join(NOTEBOOKS, 'attach_loop.ipynb'), `${tmpPath}/attach_loop.ipynb`);
    const job = await api(page, 'offload/api/jobs', 'POST', { path: `${tmpPath}/attach_loop.ipynb`, backend: 'local' });
    expect(job.id).toBeTruthy();
    await command(page, 'offload:open-job', { id: job.id });
    const view = page.locator(`#jp-offload-job-main-${job.id}`);
    await expect(view.locator('.jp-offload-detail-header')).toContainText('running', { timeout: 120000 });
    const consoleButton = view.locator('.jp-Toolbar-item').filter({ hasText: 'Console' }).locator('button');
    await expect(consoleButton).toBeEnabled({ timeout: 30000 });
    await expect(view.locator('.jp-Toolbar-item').filter({ hasText: 'Terminal' }).locator('button')).toBeEnabled();
    await expect(view.locator('.jp-Toolbar-item').filter({ hasText: 'Debug a copy' }).locator('button')).toBeDisabled();
    // the server waits for the kernel of a running job that is still starting it
    await consoleButton.click();
    await expect(page.locator('.jp-CodeConsole')).toHaveCount(1, { timeout: 150000 });

    const first = await consoleValue(page, 0);
    expect(first).toBeGreaterThan(0);
    await expect(async () => {
      const later = await consoleValue(page, (await page.locator('.jp-CodeConsole-content .jp-OutputArea-output').count()));
      expect(later).toBeGreaterThan(first);
    }).toPass({ timeout: 60000 });
    await page.locator('.jp-CodeConsole').screenshot({ path: path.join(SHOTS, 'attach-01-console.png') });

    // close the console: its kernel entry (subshell, relays) goes; the job's kernel is not touched
    const attached = (await api(page, 'api/kernels')).map((k: any) => k.id);
    expect(attached.length).toBe(1);
    await page.evaluate(() => {
      const app = (window as any).jupyterapp;
      const w = app.shell.currentWidget;
      if (w && w.node.querySelector('.jp-CodeConsole')) {
        w.close();
      }
    });
    await expect(page.locator('.jp-CodeConsole')).toHaveCount(0);
    await expect(async () => {
      const left = (await api(page, 'api/kernels')).map((k: any) => k.id);
      expect(left).not.toContain(attached[0]);
    }).toPass({ timeout: 30000 });
    const after = await api(page, `offload/api/jobs/${job.id}`);
    expect(after.state).toBe('running');
    // still counting: a new console sees a larger value than the first one did
    await consoleButton.click();
    await expect(page.locator('.jp-CodeConsole')).toHaveCount(1, { timeout: 150000 });
    expect(await consoleValue(page, 0)).toBeGreaterThan(first);
    await api(page, `offload/api/jobs/${job.id}/cancel`, 'POST', {});
  });

  test('the debugger and its Variables panel work on a running job\'s console; the job runs on', async ({
    page,
    tmpPath
  }) => {
    test.setTimeout(400000);
    await page.contents.uploadFile(path.join(NOTEBOOKS, 'attach_loop.ipynb'), `${tmpPath}/attach_loop.ipynb`);
    const job = await api(page, 'offload/api/jobs', 'POST', { path: `${tmpPath}/attach_loop.ipynb`, backend: 'local' });
    await command(page, 'offload:open-job', { id: job.id });
    const view = page.locator(`#jp-offload-job-main-${job.id}`);
    await expect(view.locator('.jp-offload-detail-header')).toContainText('running', { timeout: 120000 });
    const consoleButton = view.locator('.jp-Toolbar-item').filter({ hasText: 'Console' }).locator('button');
    await expect(consoleButton).toBeEnabled({ timeout: 30000 });
    await consoleButton.click();
    await expect(page.locator('.jp-CodeConsole')).toHaveCount(1, { timeout: 150000 });
    const first = await consoleValue(page, 0);
    expect(first).toBeGreaterThan(0);

    // the console's toolbar offers the debugger (the kernel reports it) and it switches on while
    // the notebook's cell keeps the kernel's main shell busy
    const bug = page.locator('.jp-ConsolePanel .jp-DebuggerBugButton');
    // a jp-button: its state is aria-disabled (toBeEnabled passes while it is still disabled)
    await expect(bug).toHaveAttribute('aria-disabled', 'false', { timeout: 60000 });
    await expect(async () => {
      if ((await bug.getAttribute('aria-pressed')) !== 'true') {
        await bug.click();
      }
      await expect(bug).toHaveAttribute('aria-pressed', 'true', { timeout: 20000 });
    }).toPass({ timeout: 90000 });
    if (!(await page.sidebar.isTabOpen('jp-debugger-sidebar'))) {
      await page.sidebar.openTab('jp-debugger-sidebar');
    }
    const variables = page.locator('.jp-DebuggerVariables-body');
    const stepItem = variables.getByRole('treeitem', { name: /^step:/ });
    await expect(stepItem).toBeVisible({ timeout: 120000 });
    // the item's text is its name and value in separate nodes ("step:" then e.g. "66")
    const itemText = (await stepItem.textContent()) ?? '';
    const shown = Number((itemText.match(/step\D*(\d+)/) || [])[1]);
    expect(shown, `Variables panel item: ${JSON.stringify(itemText)}`).not.toBeNaN();
    expect(shown).toBeGreaterThanOrEqual(first);
    await page.locator('#jp-debugger-sidebar').screenshot({ path: path.join(SHOTS, 'attach-02-debugger.png') });

    // the console still answers with the debugger on, the job still runs and counts
    const count = await page.locator('.jp-CodeConsole-content .jp-OutputArea-output').count();
    expect(await consoleValue(page, count)).toBeGreaterThan(first);
    await bug.click();
    await expect(bug).toHaveAttribute('aria-pressed', 'false', { timeout: 60000 });
    expect((await api(page, `offload/api/jobs/${job.id}`)).state).toBe('running');
    await api(page, `offload/api/jobs/${job.id}/cancel`, 'POST', {});
  });
});
