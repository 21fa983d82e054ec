/**
 * Kept machines in the Offload side panel, in a real JupyterLab: a notebook's warm %%offload
 * session is a machine (it registers itself in the store as a gce VM or a SLURM allocation
 * would; tests/test_machines.py runs those), shown with its countdown; Stop ends it.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');

async function shot(page: IJupyterLabPageFixture, name: string, locator?: any): Promise<void> {
  await (locator ?? page).screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

test.describe('kept machines', () => {
  test.use({ autoGoto: true });

  test('a warm session is listed with its countdown; Stop ends it', async ({ page }) => {
    await page.notebook.createNew('machines.ipynb');
    await page.notebook.setCell(0, 'code', '%load_ext offload');
    await page.notebook.addCell('code', "%%offload --keep-alive 10m\nanswer = 6 * 7\nprint('remote', answer)");
    await page.notebook.runCell(0, true);
    await page.notebook.runCell(1, true);
    const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
    await expect(cells.nth(1).locator('.jp-OutputArea-output').filter({ hasText: 'remote 42' })).toBeVisible({
      timeout: 120000
    });

    await page.evaluate(() => (window as any).jupyterapp.shell.activateById('jp-offload-panel'));
    const row = page.locator('#jp-offload-panel .jp-offload-machine');
    await expect(row).toHaveCount(1, { timeout: 30000 });
    await expect(row.locator('.jp-offload-machine-countdown')).toHaveText(/ends in (9|10):\d\d/);
    await expect(row).toContainText('%%offload session');
    const before = await row.locator('.jp-offload-machine-countdown').textContent();
    await expect(row.locator('.jp-offload-machine-countdown')).not.toHaveText(before ?? '', { timeout: 5000 });
    await shot(page, 'machines-01-session', page.locator('#jp-offload-panel'));

    await row.locator('.jp-offload-machine-stop').click();
    await expect(row).toHaveCount(0, { timeout: 60000 });
    await expect(page.locator('#jp-offload-panel .jp-offload-machines-empty')).toHaveText('No machine is running');
    await shot(page, 'machines-02-stopped', page.locator('#jp-offload-panel'));
  });
});
