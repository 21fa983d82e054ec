/**
 * Issue 17, "feels first-party": what a new user notices, in a real JupyterLab (headless
 * Chromium, local backend). Job views are tabs (the notebook keeps its width, one tab per job),
 * a restored view of a job that is gone closes itself with a notice, Run on GPU never raises
 * "File Changed" against autosave, no internal backend is offered, Enter on an invalid form keeps
 * the dialog, selects are JupyterLab's HTMLSelect, the executed notebook renders as a notebook
 * with a readable banner in the dark theme, cell runs and their session are grouped under the
 * notebook with status lines on stdout. Screenshots: ui-tests/test-results/screenshots/layout-*.
 */
import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');
const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');

async function shot(page: IJupyterLabPageFixture, name: string, locator?: any): Promise<void> {
  await (locator ?? page).screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function openNotebook(page: IJupyterLabPageFixture, tmpPath: string, name: string): Promise<string> {
  const target = `${tmpPath}/${name}`;
  await page.contents.uploadFile(path.join(NOTEBOOKS, name), target);
  await page.notebook.openByPath(target);
  await page.notebook.activate(name);
  return target;
}

async function openRunDialog(page: IJupyterLabPageFixture) {
  await page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="offload-run-on-gpu"]').first().click();
  const dialog = page.locator('.jp-Dialog .jp-offload-RunDialog');
  await expect(dialog).toBeVisible();
  // the dialog shows at once; its parts fill in when the server answers
  await expect(dialog.locator('input[data-param="lr"]')).toBeVisible();
  return dialog;
}

/** Run a command (without sending what it returns, a widget, back to the test). */
async function command(page: IJupyterLabPageFixture, id: string, args: any = {}): Promise<void> {
  await page.evaluate(
    async ({ id, args }) => {
      await (window as any).jupyterapp.commands.execute(id, args);
    },
    { id, args }
  );
}

/** WCAG contrast ratio between two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/\d+(\.\d+)?/g) ?? ['0', '0', '0']).slice(0, 3).map(Number).map(v => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

test.describe('first-party layout and feedback (issue 17)', () => {
  test.use({
    autoGoto: true,
    // autosave every second: Run on GPU's save must never race it
    mockSettings: {
      ...galata.DEFAULT_SETTINGS,
      '@jupyterlab/docmanager-extension:plugin': {
        ...(galata.DEFAULT_SETTINGS['@jupyterlab/docmanager-extension:plugin'] ?? {}),
        autosave: true,
        autosaveInterval: 1
      }
    }
  });

  test('the Run dialog: no internal backend, Enter on invalid keeps it, HTMLSelect, no File Changed', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'train.ipynb');

    // no internal backend anywhere: not from the server, not in the dialog
    const backends = await page.evaluate(async () => {
      const s = (window as any).jupyterapp.serviceManager.serverSettings;
      const r = await fetch(`${s.baseUrl}offload/api/backends`);
      return (await r.json()).backends.map((b: any) => b.name);
    });
    expect(backends).toContain('local');
    expect(backends).not.toContain('sweep-pack');

    const dialog = await openRunDialog(page);
    const options = await dialog.locator('select[aria-label="backend"] option').allTextContents();
    expect(options.join(' ')).toContain('local');
    expect(options.join(' ')).not.toContain('sweep-pack');

    // the selects are JupyterLab's HTMLSelect: wrapper, caret icon, no native look
    for (const label of ['backend', 'machine']) {
      const select = dialog.locator(`select[aria-label="${label}"]`);
      await expect(select.locator('xpath=..')).toHaveClass(/jp-HTMLSelect/);
      await expect(select.locator('xpath=../span')).not.toHaveCount(0); // the caret icon
      expect(await select.evaluate(n => getComputedStyle(n).appearance)).toBe('none');
    }

    // Enter on an invalid field: the error shows, the dialog stays, the edit is kept, focus on it
    const lr = dialog.locator('input[data-param="lr"]');
    await lr.fill('fast');
    await dialog.locator('input[data-param="epochs"]').focus();
    await page.keyboard.press('Enter');
    await expect(page.locator('.jp-Dialog .jp-offload-RunDialog')).toBeVisible();
    await expect(dialog.locator('.jp-offload-field-error').filter({ hasText: 'lr must be a number' })).toBeVisible();
    await expect(lr).toHaveValue('fast');
    await expect(lr).toBeFocused();
    const runtime = dialog.locator('input[aria-label="max runtime"]');
    await lr.fill('0.2');
    await runtime.fill('soon');
    await page.keyboard.press('Enter');
    await expect(page.locator('.jp-Dialog .jp-offload-RunDialog')).toBeVisible();
    await expect(runtime).toBeFocused();
    await expect(runtime).toHaveValue('soon');
    await shot(page, 'layout-01-enter-on-invalid', page.locator('.jp-Dialog-content'));
    await page.locator('.jp-Dialog-button.jp-mod-reject').click();
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);

    // repeated Run on GPU with unsaved edits while autosave runs every second: never a
    // "File Changed" dialog, and the notebook is saved before it is read
    for (let i = 0; i < 6; i++) {
      await page.notebook.setCell(4, 'code', `print('edit ${i}')`);
      await page.waitForTimeout(300 + 250 * (i % 3)); // land before, during and after autosaves
      await page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="offload-run-on-gpu"]').first().click();
      await expect(page.locator('.jp-Dialog .jp-offload-RunDialog input[data-param="lr"]')).toBeVisible();
      await expect(page.locator('.jp-Dialog').filter({ hasText: /File Changed|Overwrite/ })).toHaveCount(0);
      await page.locator('.jp-Dialog-button.jp-mod-reject').click();
      await expect(page.locator('.jp-Dialog')).toHaveCount(0);
    }
    await page.waitForTimeout(1500); // one more autosave round
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);
    const saved = await page.evaluate(async p => {
      const s = (window as any).jupyterapp.serviceManager.serverSettings;
      return JSON.stringify(await (await fetch(`${s.baseUrl}api/contents/${p}?content=1`)).json());
    }, `${tmpPath}/train.ipynb`);
    expect(saved).toContain('edit 5');
  });

  test('job views are tabs; a gone job closes its view; the executed notebook is a notebook', async ({ page, tmpPath }) => {
    const nb = await openNotebook(page, tmpPath, 'train.ipynb');
    // three quick jobs through the API (what the dialog submits)
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await page.evaluate(
        async ({ nb, i }) => {
          const s = (window as any).jupyterapp.serviceManager.serverSettings;
          const r = await fetch(`${s.baseUrl}offload/api/jobs`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ path: nb, backend: 'local', parameters: { lr: 0.1 + i / 10 } })
          });
          const body = await r.json();
          return body.id ?? `HTTP ${r.status}: ${JSON.stringify(body)}`;
        },
        { nb, i }
      );
      expect(id).toMatch(/^\d{8}-\d{6}-[0-9a-f]+$/);
      ids.push(id);
    }
    const main = page.locator('#jp-main-dock-panel');
    const notebookPanel = page.locator('.jp-NotebookPanel').first();
    const mainWidth = (await main.boundingBox())!.width;
    for (const id of ids) {
      await command(page, 'offload:open-job', { id });
      await expect(page.locator(`#jp-offload-job-main-${id}`)).toBeVisible();
    }
    // one tab bar: tabs, not splits; each job view as wide as the main area
    await expect(main.locator('.lm-DockPanel-tabBar')).toHaveCount(1);
    await expect(page.locator('.jp-offload-JobDetail')).toHaveCount(3);
    const viewWidth = (await page.locator(`#jp-offload-job-main-${ids[2]}`).boundingBox())!.width;
    expect(viewWidth).toBeGreaterThan(mainWidth * 0.95);
    // opening a job again brings its tab back instead of another view
    await command(page, 'offload:open-job', { id: ids[0] });
    await expect(page.locator('.jp-offload-JobDetail')).toHaveCount(3);
    await expect(page.locator(`#jp-offload-job-main-${ids[0]}`)).toBeVisible();
    await page.notebook.activate('train.ipynb');
    expect((await notebookPanel.boundingBox())!.width).toBeGreaterThan(mainWidth * 0.95);
    await shot(page, 'layout-02-tabs-not-splits');

    // a view of a job that is gone (restored from an earlier session) closes with a notice
    const gone = '20200101-000000-abcdef';
    await command(page, 'offload:open-job', { id: gone });
    await expect(page.locator('.jp-toast-message, .Toastify__toast').filter({ hasText: 'no longer exists' }).first()).toBeVisible();
    await expect(page.locator(`#jp-offload-job-main-${gone}`)).toHaveCount(0);
    // and so does a sweep panel restored for a notebook that was removed
    await command(page, 'offload:sweep', { path: `${tmpPath}/removed.ipynb` });
    await expect(page.locator('.jp-toast-message, .Toastify__toast').filter({ hasText: 'its sweep panel was closed' }).first()).toBeVisible();
    await expect(page.locator('.jp-offload-Sweep')).toHaveCount(0);

    // the executed notebook: a read-only notebook view with its image output, in both themes
    const job = page.locator(`#jp-offload-job-main-${ids[0]}`);
    await command(page, 'offload:open-job', { id: ids[0] });
    await expect(job.locator('.jp-offload-detail-title .jp-offload-state')).toHaveText('succeeded', { timeout: 120000 });
    await command(page, 'offload:open-executed', { id: ids[0] });
    const executed = page.locator('.jp-offload-Executed').first();
    await expect(executed.locator('.jp-Notebook .jp-Cell').first()).toBeVisible({ timeout: 30000 });
    await expect(executed.locator('.jp-OutputArea-output img').first()).toBeVisible();
    await expect(executed.locator('.jp-MarkdownOutput').first()).toBeVisible();
    await expect(executed.locator('.jp-InputPrompt').first()).toBeVisible();
    // read-only: typing into a cell changes nothing
    const firstCode = executed.locator('.jp-CodeCell .cm-content').first();
    const before = await firstCode.textContent();
    await firstCode.click();
    await page.keyboard.type('zz');
    await expect(firstCode).toHaveText(before ?? '');
    await shot(page, 'layout-03-executed-light');
    await page.theme.setDarkTheme();
    const banner = executed.locator('.jp-offload-readonly-banner');
    await expect(banner).toBeVisible();
    const colors = await banner.evaluate(n => [getComputedStyle(n).color, getComputedStyle(n).backgroundColor]);
    expect(contrast(colors[0], colors[1])).toBeGreaterThan(7);
    await shot(page, 'layout-04-executed-dark');
    await command(page, 'offload:open-job', { id: ids[0] });
    await expect(job.locator('figure[data-metric="loss"] svg')).toBeVisible();
    await shot(page, 'layout-04b-job-detail-dark');
    // notifications (with their action buttons) stay inside the window
    const width = page.viewportSize()!.width;
    const toasts = page.locator('.Toastify__toast');
    expect(await toasts.count()).toBeGreaterThan(0);
    // (polled: a toast slides in from the right edge before it settles)
    await expect
      .poll(async () => Math.max(...(await toasts.evaluateAll(ns => ns.map(n => n.getBoundingClientRect().right)))))
      .toBeLessThanOrEqual(width);
    await page.theme.setLightTheme();
  });

  test('Run Cell on GPU: feedback at once, status lines not on stderr, cells and session grouped with a countdown', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'cellrun.ipynb');
    const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
    await page.notebook.runCell(1, true);
    await expect(cells.nth(1).locator('.jp-InputPrompt')).toContainText('[1]', { timeout: 60000 });
    // record whether the status line showed, however fast the kernel answers
    await page.evaluate(() => {
      (window as any).__offloadStatusSeen = false;
      new MutationObserver(() => {
        if (document.querySelector('.jp-offload-cellrun-status')) {
          (window as any).__offloadStatusSeen = true;
        }
      }).observe(document.body, { childList: true, subtree: true });
    });
    await cells.nth(2).locator('.jp-InputArea-editor').click();
    await command(page, 'offload:run-cell-on-gpu');
    expect(await page.evaluate(() => (window as any).__offloadStatusSeen)).toBe(true);
    const outputs = cells.nth(2).locator('.jp-OutputArea-output');
    await expect(outputs.filter({ hasText: 'remote answer 42' })).toBeVisible({ timeout: 120000 });
    // the [offload] lines are normal output, not stderr's red background
    await expect(outputs.filter({ hasText: '[offload]' }).first()).toBeVisible();
    await expect(cells.nth(2).locator('[data-mime-type="application/vnd.jupyter.stderr"]').filter({ hasText: '[offload]' })).toHaveCount(0);
    await shot(page, 'layout-05-cellrun-output', cells.nth(2));

    // the side panel: a "Cells" and a "Session" row under this notebook, no .offload-cell rows
    await command(page, 'offload:show-jobs');
    const mine = page.locator('ul[aria-label="jobs of this notebook"]');
    await expect(mine.locator('> .jp-offload-group[data-group="cells"]')).toBeVisible({ timeout: 30000 });
    await expect(mine.locator('> .jp-offload-group[data-group="session"]')).toBeVisible();
    await expect(mine.locator('> .jp-offload-group[data-group="session"]')).toHaveAttribute('data-state', /idle|busy|starting/);
    // idle, the Session row says when the session ends (its machine record's deadline), ticking
    const session = mine.locator('> .jp-offload-group[data-group="session"]');
    await expect(session).toHaveAttribute('data-state', 'idle', { timeout: 120000 });
    const countdown = session.locator('.jp-offload-session-countdown');
    await expect(countdown).toHaveText(/ends in \d+:\d\d/, { timeout: 60000 });
    const first = await countdown.textContent();
    await expect(countdown).not.toHaveText(first ?? '', { timeout: 10000 });
    await expect(page.locator('.jp-offload-job-name').filter({ hasText: '.offload-' })).toHaveCount(0);
    await expect(page.locator('.jp-offload-job-name').filter({ hasText: 'offload-session' })).toHaveCount(0);
    await shot(page, 'layout-06-grouped-cells', page.locator('#jp-offload-panel'));
    await page.theme.setDarkTheme();
    await mine.locator('> .jp-offload-group[data-group="cells"] .jp-offload-group-head').click();
    await expect(mine.locator('.jp-offload-group[data-group="cells"] .jp-offload-job').first()).toBeVisible();
    await shot(page, 'layout-07-grouped-cells-dark', page.locator('#jp-offload-panel'));
    await page.theme.setLightTheme();
  });
});
