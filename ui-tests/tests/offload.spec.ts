/**
 * jupyter-offload in a real JupyterLab (headless Chromium), jobs on the local backend.
 * Screenshots go to ui-tests/test-results/screenshots/ (look at them).
 */
import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');
const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');

async function shot(page: IJupyterLabPageFixture, name: string, locator?: any): Promise<void> {
  const file = path.join(SHOTS, `${name}.png`);
  if (locator) {
    await locator.screenshot({ path: file });
  } else {
    await page.screenshot({ path: file });
  }
}

async function openNotebook(page: IJupyterLabPageFixture, tmpPath: string, name: string): Promise<string> {
  const target = `${tmpPath}/${name}`;
  await page.contents.uploadFile(path.join(NOTEBOOKS, name), target);
  await page.notebook.openByPath(target);
  await page.notebook.activate(name);
  return target;
}

async function runCommand(page: IJupyterLabPageFixture, id: string): Promise<void> {
  await page.evaluate(async (command: string) => {
    await (window as any).jupyterapp.commands.execute(command);
  }, id);
}

async function openRunDialog(page: IJupyterLabPageFixture) {
  await page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="offload-run-on-gpu"]').first().click();
  const dialog = page.locator('.jp-Dialog .jp-offload-RunDialog');
  await expect(dialog).toBeVisible();
  return dialog;
}

function jobRow(page: IJupyterLabPageFixture, section: 'this' | 'all' = 'this') {
  const label = section === 'this' ? 'jobs of this notebook' : 'all jobs';
  return page.locator(`ul[aria-label="${label}"] .jp-offload-job`).first();
}

test.describe('jupyter-offload', () => {
  test.use({ autoGoto: true });

  test('Run on GPU with a changed parameter: progress, log, merge, gallery', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'train.ipynb');
    await expect(page.locator('[data-jp-item-name="offload-run-on-gpu"]').first()).toBeVisible();
    await shot(page, '01-notebook-toolbar');

    const dialog = await openRunDialog(page);
    await expect(dialog.locator('input[data-param="lr"]')).toHaveValue('0.1');
    await expect(dialog).toContainText('Files to upload');
    await dialog.locator('input[data-param="lr"]').fill('0.5');
    await dialog.locator('input[data-param="delay"]').fill('2');
    await expect(dialog.locator('.jp-offload-estimate').first()).toContainText('Free'); // the price line
    await shot(page, '02-run-dialog', page.locator('.jp-Dialog-content'));
    await page.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);

    // the side panel shows the job of this notebook, live
    const row = jobRow(page);
    await expect(row).toBeVisible();
    await expect(row).toHaveAttribute('data-state', /queued|provisioning|running/);
    await expect(row.locator('.jp-offload-job-progress')).toContainText(/cell \d+ of \d+/, { timeout: 30000 });
    await shot(page, '03-jobs-panel-running');

    // job detail: the log shows the new parameter's line
    await row.click();
    const detail = page.locator('.jp-offload-JobDetail');
    await expect(detail.locator('.jp-offload-log')).toContainText('trained with lr 0.5', { timeout: 60000 });
    await expect(detail.locator('.jp-offload-detail-title .jp-offload-state')).toHaveText('succeeded', { timeout: 60000 });
    await expect(detail.locator('figure[data-metric="loss"] svg')).toBeVisible();
    await shot(page, '04-job-detail');

    // merged into the open notebook through the model: outputs there, no "changed on disk"
    const nb = page.locator('.jp-NotebookPanel').filter({ has: page.locator('.jp-Notebook') }).first();
    await page.notebook.activate('train.ipynb');
    await expect(page.locator('.jp-Notebook .jp-OutputArea-output').filter({ hasText: 'trained with lr 0.5' })).toBeVisible({ timeout: 30000 });
    await expect(page.locator('.jp-Notebook .jp-OutputArea-output img')).toHaveCount(1);
    await expect(page.locator('.jp-Toast-content, .Toastify__toast').filter({ hasText: 'merged outputs' }).first()).toBeVisible();
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);
    expect(await nb.count()).toBeGreaterThan(0);
    await shot(page, '05-merged-into-notebook');

    // gallery card with the thumbnail
    await runCommand(page, 'offload:open-gallery');
    const card = page.locator('.jp-offload-card').first();
    await expect(card).toBeVisible();
    await expect(card.locator('.jp-offload-thumb img')).toBeVisible();
    await expect(card).toContainText('lr=0.5');
    await shot(page, '06-gallery');

    // rerun from the job view (same bundle), then compare the two runs from the gallery; the job
    // view is a tab of the main area (behind the gallery now): bring it back first
    await page.getByRole('tab', { name: /^Job / }).first().click();
    await page.locator('.jp-MainAreaWidget:has(.jp-offload-JobDetail) [data-command="offload:rerun"]').first().click();
    await expect(page.locator('ul[aria-label="jobs of this notebook"] .jp-offload-job')).toHaveCount(2);
    await expect(page.locator('ul[aria-label="jobs of this notebook"] .jp-offload-job').first()).toHaveAttribute('data-state', 'succeeded', { timeout: 90000 });
    await runCommand(page, 'offload:open-gallery');
    // this test's two runs (the server's gallery also holds other specs' jobs)
    const cards = page.locator('.jp-offload-card').filter({ hasText: tmpPath });
    await expect(cards).toHaveCount(2);
    await cards.nth(0).locator('input[type=checkbox]').check();
    await cards.nth(1).locator('input[type=checkbox]').check();
    await page.locator('.jp-offload-compare-btn').click();
    const cmp = page.locator('.jp-offload-Compare');
    await expect(cmp.locator('table[aria-label="parameters compared"]')).toContainText('lr');
    await expect(cmp.locator('.jp-offload-compare-cell').first()).toBeVisible();
    await shot(page, '06b-compare');
  });

  test('an edited cell is not overwritten by the merge', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'train.ipynb');
    const dialog = await openRunDialog(page);
    await dialog.locator('input[data-param="delay"]').fill('4');
    await page.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(jobRow(page)).toBeVisible();
    // edit the last cell while the job runs
    await page.notebook.setCell(4, 'code', "print('my local edit')");
    await expect(page.locator('.jp-Toast-content, .Toastify__toast').filter({ hasText: 'left 1 edited cell(s) alone' }).first()).toBeVisible({ timeout: 90000 });
    await expect(page.locator('.jp-Notebook .jp-OutputArea-output').filter({ hasText: 'trained with lr 0.1' })).toBeVisible();
    expect(await page.notebook.getCellTextInput(4)).toContain('my local edit');
    await expect(page.locator('.jp-Notebook .jp-OutputArea-output').filter({ hasText: 'done after' })).toHaveCount(0);
    await shot(page, '07-edited-cell-left-alone');
    // the merge can be undone from its notification
    await page.locator('.jp-Notification-Toast-warning, .Toastify__toast').filter({ hasText: 'left 1 edited cell(s) alone' }).first().getByRole('button', { name: 'Undo merge' }).click();
    await expect(page.locator('.jp-Notebook .jp-OutputArea-output').filter({ hasText: 'trained with lr 0.1' })).toHaveCount(0);
    expect(await page.notebook.getCellTextInput(4)).toContain('my local edit');
  });

  test('cancel a long job', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'long.ipynb');
    await openRunDialog(page);
    await page.locator('.jp-Dialog-button.jp-mod-accept').click();
    const row = jobRow(page);
    await expect(row).toHaveAttribute('data-state', 'running', { timeout: 60000 });
    await row.click();
    const detail = page.locator('.jp-offload-JobDetail');
    await expect(detail.locator('.jp-offload-log')).toContainText('tick', { timeout: 60000 });
    await page.locator('.jp-MainAreaWidget:has(.jp-offload-JobDetail) [data-command="offload:cancel"]').first().click();
    await expect(detail.locator('.jp-offload-detail-title .jp-offload-state')).toHaveText('cancelled', { timeout: 60000 });
    await expect(row).toHaveAttribute('data-state', 'cancelled');
    await shot(page, '08-cancelled');
  });

  test('the dialog rejects an invalid parameter value', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'train.ipynb');
    const dialog = await openRunDialog(page);
    await dialog.locator('input[data-param="lr"]').fill('fast');
    await expect(dialog.locator('.jp-offload-field-error').filter({ hasText: 'lr must be a number' })).toBeVisible();
    await expect(page.locator('.jp-Dialog-button.jp-mod-accept')).toBeDisabled();
    await dialog.locator('input[data-param="epochs"]').fill('2.5');
    await expect(dialog.locator('.jp-offload-field-error').filter({ hasText: 'epochs must be a whole number' })).toBeVisible();
    await shot(page, '09-invalid-parameter', page.locator('.jp-Dialog-content'));
    await dialog.locator('input[data-param="lr"]').fill('0.2');
    await dialog.locator('input[data-param="epochs"]').fill('2');
    await expect(page.locator('.jp-Dialog-button.jp-mod-accept')).toBeEnabled();
    await page.locator('.jp-Dialog-button.jp-mod-reject').click();
  });

  test('dark theme', async ({ page, tmpPath }) => {
    await page.theme.setDarkTheme();
    await openNotebook(page, tmpPath, 'train.ipynb');
    await runCommand(page, 'offload:show-jobs');
    await openRunDialog(page);
    await shot(page, '10-dark-dialog');
    await page.locator('.jp-Dialog-button.jp-mod-reject').click();
    await runCommand(page, 'offload:open-gallery');
    await expect(page.locator('.jp-offload-Gallery')).toBeVisible();
    // with the jobs of the earlier tests (when run alone there are none: only the screenshot)
    await expect(page.locator('.jp-offload-Gallery .jp-offload-card, .jp-offload-Gallery .jp-offload-empty').first()).toBeVisible();
    const cards = page.locator('.jp-offload-card').filter({ hasText: 'train.ipynb' });
    const n = await cards.count();
    if (n) {
      await expect(cards.first().locator('.jp-offload-thumb img')).toBeVisible();
    }
    await shot(page, '11-dark-gallery');
    if (n >= 2) {
      await cards.nth(0).locator('input[type=checkbox]').check();
      await cards.nth(1).locator('input[type=checkbox]').check();
      await page.locator('.jp-offload-compare-btn').click();
      const cmp = page.locator('.jp-offload-Compare');
      await expect(cmp.locator('table[aria-label="parameters compared"]')).toBeVisible();
      await expect(cmp.locator('.jp-offload-compare-cell').first()).toBeVisible();
      await shot(page, '12-dark-compare');
    }
    await page.theme.setLightTheme();
  });
});

void galata;
