/**
 * "Run Cell on GPU" in a real JupyterLab: the active cell runs through %%offload in the notebook's
 * own kernel (local backend), its output appears under the cell, the variable it assigns is
 * there for the next (local) cell, and the cell's source is left as it was.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');
const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');

async function shot(page: IJupyterLabPageFixture, name: string, locator?: any): Promise<void> {
  await (locator ?? page).screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

test.describe('run cell on GPU', () => {
  test.use({ autoGoto: true });

  test('context menu runs the cell remotely; its variable comes back', async ({ page, tmpPath }) => {
    const target = `${tmpPath}/cellrun.ipynb`;
    await page.contents.uploadFile(path.join(NOTEBOOKS, 'cellrun.ipynb'), target);
    await page.notebook.openByPath(target);
    await page.notebook.activate('cellrun.ipynb');
    const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');

    // a local cell first: its value must travel to the remote cell
    await page.notebook.runCell(1, true);
    await expect(cells.nth(1).locator('.jp-InputPrompt')).toContainText('[1]', { timeout: 60000 });

    // the cell toolbar offers the command on the active code cell
    await cells.nth(2).locator('.jp-InputArea-editor').click();
    await expect(cells.nth(2).locator('[data-jp-item-name="offload-run-cell-on-gpu"]')).toBeVisible();
    await shot(page, 'cellrun-01-toolbar', cells.nth(2));

    // context menu > Run Cell on GPU
    await cells.nth(2).locator('.jp-InputArea-editor').click({ button: 'right' });
    await page.locator('.lm-Menu-item[data-command="offload:run-cell-on-gpu"]').click();
    const output = cells.nth(2).locator('.jp-OutputArea-output');
    await expect(output.filter({ hasText: 'remote answer 42' })).toBeVisible({ timeout: 120000 });
    await expect(cells.nth(2).locator('.jp-InputPrompt')).toContainText(/\[\d+\]/, { timeout: 60000 });
    await expect(cells.nth(2).locator('.jp-InputArea-editor')).not.toContainText('%%offload');
    await expect(cells.nth(2).locator('.jp-InputArea-editor')).toContainText("print('remote answer', answer)");
    await shot(page, 'cellrun-02-output', cells.nth(2));

    // the variable assigned remotely is bound in this kernel
    await page.notebook.runCell(3, true);
    await expect(cells.nth(3).locator('.jp-OutputArea-output')).toContainText('local sees 43', { timeout: 60000 });
    await shot(page, 'cellrun-03-notebook');
  });
});
