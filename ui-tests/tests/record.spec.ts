/**
 * The run record in JupyterLab (issue 18): a desktop notification when a job ends while the tab is
 * in the background (the permission asked when the user clicks Run on GPU), and the job view's
 * Source section. The browser's Notification API is replaced by a recorder in the page: headless
 * Chromium shows no system notifications.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');
const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');

async function recordNotifications(page: IJupyterLabPageFixture): Promise<void> {
  await page.evaluate(() => {
    const w = window as any;
    w.__shown = [];
    w.__asked = 0;
    class FakeNotification {
      static permission = 'default';
      static async requestPermission(): Promise<string> {
        w.__asked += 1;
        FakeNotification.permission = 'granted';
        return 'granted';
      }
      onclick: (() => void) | null = null;
      constructor(title: string, opts: any) {
        w.__shown.push({ title, body: opts?.body });
      }
      close(): void {}
    }
    w.Notification = FakeNotification;
    // the tab goes to the background once the job is submitted (see below)
    w.__hidden = false;
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => w.__hidden });
  });
}

test.describe('run record', () => {
  test.use({ autoGoto: true });

  test('a job ending in a background tab is a desktop notification; the job view shows its source', async ({
    page,
    tmpPath
  }) => {
    await recordNotifications(page);
    const target = `${tmpPath}/train.ipynb`;
    await page.contents.uploadFile(path.join(NOTEBOOKS, 'train.ipynb'), target);
    await page.notebook.openByPath(target);
    await page.notebook.activate('train.ipynb');

    await page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="offload-run-on-gpu"]').first().click();
    const dialog = page.locator('.jp-Dialog .jp-offload-RunDialog');
    await expect(dialog).toBeVisible();
    await expect.poll(() => page.evaluate(() => (window as any).__asked)).toBe(1); // asked on the click
    await dialog.locator('input[data-param="delay"]').fill('2');
    await page.locator('.jp-Dialog-button.jp-mod-accept').click();
    await page.evaluate(() => {
      (window as any).__hidden = true;
    });

    const row = page.locator('ul[aria-label="jobs of this notebook"] .jp-offload-job').first();
    await expect(row).toHaveAttribute('data-state', 'succeeded', { timeout: 90000 });
    await expect
      .poll(() => page.evaluate(() => (window as any).__shown), { timeout: 30000 })
      .toEqual([expect.objectContaining({ title: 'train.ipynb: job succeeded' })]);

    await page.evaluate(() => {
      (window as any).__hidden = false;
    });
    await row.click();
    const info = page.locator('.jp-offload-JobDetail .jp-offload-detail-info');
    await expect(info.locator('h3', { hasText: 'Source' })).toBeVisible({ timeout: 30000 });
    await expect(info).toContainText('not a git checkout'); // the UI tests' root is a plain folder
    await info.screenshot({ path: path.join(SHOTS, '30-job-source.png') });
  });
});
