/**
 * Many jobs (issue 14): the side panel and the gallery show a page and load more on demand; the
 * server pages and filters. 130 synthetic finished jobs are written through the store layout
 * (offload.testing.records) into the store of the server under test (OFFLOAD_HOME).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { execFileSync } from 'child_process';
import * as path from 'path';

const REPO = path.resolve(__dirname, '..', '..');
const PYTHON = process.env.PYTHON ?? path.join(REPO, '.venv', 'bin', 'python');
const N = 130;

async function runCommand(page: IJupyterLabPageFixture, id: string): Promise<void> {
  await page.evaluate(async (command: string) => {
    await (window as any).jupyterapp.commands.execute(command);
  }, id);
}

test.describe('many jobs', () => {
  test.use({ autoGoto: false });

  test.beforeAll(() => {
    execFileSync(
      PYTHON,
      [
        '-c',
        `from offload.store import Store\nfrom offload.testing.records import write_job_records\nwrite_job_records(Store(), ${N}, notebooks=("many.ipynb",))`
      ],
      { env: process.env, stdio: 'inherit' }
    );
  });

  test('the jobs panel and the gallery page through them', async ({ page }) => {
    await page.goto();
    await page.evaluate(() => (window as any).jupyterapp.shell.activateById('jp-offload-panel'));
    const rows = page.locator('ul[aria-label="all jobs"] .jp-offload-job');
    await expect(rows).toHaveCount(50, { timeout: 30000 });
    const more = page.locator('.jp-offload-JobsList .jp-offload-more');
    await expect(more).toHaveText(`Show 50 more (50 of ${N})`);
    await more.click();
    await expect(rows).toHaveCount(100);
    await page.locator('.jp-offload-JobsList .jp-offload-more').click();
    await expect(rows).toHaveCount(N);
    await expect(page.locator('.jp-offload-JobsList .jp-offload-more')).toHaveCount(0);

    await runCommand(page, 'offload:open-gallery');
    const cards = page.locator('.jp-offload-Gallery .jp-offload-card');
    await expect(cards).toHaveCount(40, { timeout: 30000 });
    const moreCards = page.locator('.jp-offload-Gallery .jp-offload-more');
    await expect(moreCards).toHaveText(`Show more (40 of ${N})`);
    await moreCards.click();
    await expect(cards).toHaveCount(80);
    // sorting goes to the server: the first card is the lowest loss of all jobs, not of a page
    await page.locator('.jp-offload-Gallery select[aria-label="sort by"]').selectOption('loss');
    await page.locator('.jp-offload-Gallery select[aria-label="order"]').selectOption('asc');
    await expect(cards).toHaveCount(40);
    await expect(cards.first().locator('.jp-offload-card-metrics')).toContainText('loss 0.0666');
  });
});
