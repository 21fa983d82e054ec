/**
 * The Sweep panel in a real JupyterLab: build the space from the parameters cell, start a small
 * sweep (4 trials, 2 at a time, local backend), watch the trials table fill and the plots render,
 * apply the best parameters to the open notebook; stop a sweep and resume it. Screenshots (light and dark) in
 * ui-tests/test-results/screenshots/.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');
const NOTEBOOKS = path.resolve(__dirname, '..', 'notebooks');

async function shot(page: IJupyterLabPageFixture, name: string, locator?: any): Promise<void> {
  const file = path.join(SHOTS, `${name}.png`);
  await (locator ?? page).screenshot({ path: file });
}

/** Open a copy of a test notebook and its sweep panel (toolbar button); wait for the setup form. */
async function openSweepPanel(page: IJupyterLabPageFixture, tmpPath: string, name: string) {
  const target = `${tmpPath}/${name}`;
  await page.contents.uploadFile(path.join(NOTEBOOKS, name), target);
  await page.notebook.openByPath(target);
  await page.notebook.activate(name);
  await page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="offload-sweep"]').first().click();
  const panel = page.locator('.jp-offload-Sweep');
  const form = panel.locator('form.jp-offload-sweep-setup');
  await expect(form).toBeVisible();
  return { panel, form };
}

test.describe('sweep panel', () => {
  test.use({ autoGoto: true });

  test('start a sweep from the notebook, watch trials and plots, apply the best', async ({ page, tmpPath }) => {
    const { panel, form } = await openSweepPanel(page, tmpPath, 'sweep_quad.ipynb');

    // the space comes from the parameters cell: numbers get ranges, strings are fixed, seed fixed
    const row = (name: string) => form.locator(`.jp-offload-sweep-param[data-param="${name}"]`);
    await expect(row('x')).toHaveAttribute('data-mode', 'range');
    await expect(row('x').locator('input[aria-label="x low"]')).toHaveValue('0.05');
    await expect(row('k')).toHaveAttribute('data-mode', 'range');
    await expect(row('opt')).toHaveAttribute('data-mode', 'fixed');
    await expect(row('seed')).toHaveAttribute('data-mode', 'fixed');
    // the objective is suggested from the notebook's offload.log_metric calls
    await expect(form.locator('input[aria-label="objective metric"]')).toHaveValue('score');

    // only user-facing backends; selects are JupyterLab's HTMLSelect
    const backends = await form.locator('select[aria-label="backend"] option').allTextContents();
    expect(backends.join(' ')).not.toContain('sweep-pack');
    for (const label of ['direction', 'sampler', 'pruner', 'backend', 'machine']) {
      await expect(form.locator(`select[aria-label="${label}"]`).locator('xpath=..')).toHaveClass(/jp-HTMLSelect/);
    }
    // the panel is a tab next to the notebook, not a split: the notebook keeps its width
    await expect(page.locator('#jp-main-dock-panel .lm-DockPanel-tabBar')).toHaveCount(1);

    // an invalid range is flagged in place and nothing starts
    await row('x').locator('input[aria-label="x low"]').fill('3');
    await row('x').locator('input[aria-label="x high"]').fill('1');
    await form.locator('button.jp-offload-sweep-start').click();
    await expect(row('x').locator('.jp-offload-field-error')).toContainText('low must be below high');
    // Enter in another field: nothing starts, the first invalid field gets the focus, edits stay
    await form.locator('input[aria-label="trials"]').press('Enter');
    await expect(row('x').locator('input[aria-label="x low"]')).toBeFocused();
    await expect(row('x').locator('input[aria-label="x low"]')).toHaveValue('3');
    await expect(panel.locator('table.jp-offload-sweep-trials')).toHaveCount(0);

    await row('x').locator('input[aria-label="x low"]').fill('0');
    await row('x').locator('input[aria-label="x high"]').fill('2');
    await row('x').locator('input[aria-label="x log scale"]').uncheck();
    await row('k').locator('input[aria-label="k low"]').fill('1');
    await row('k').locator('input[aria-label="k high"]').fill('5');
    await row('opt').locator('select').selectOption('choices');
    await row('opt').locator('input[aria-label="opt choices, comma-separated"]').fill('adam, sgd');
    await form.locator('input[aria-label="trials"]').fill('4');
    await form.locator('input[aria-label="parallel"]').fill('2');
    await form.locator('select[aria-label="sampler"]').selectOption('random');
    await form.locator('input[aria-label="seed"]').fill('1');
    await shot(page, 'sweep-01-setup');
    await form.locator('button.jp-offload-sweep-start').click();

    // live: the table fills, the history plot draws a dot per completed trial
    const trials = panel.locator('table.jp-offload-sweep-trials tbody tr');
    await expect(trials.first()).toBeVisible({ timeout: 60000 });
    await expect(panel.locator('tr[data-state="COMPLETE"]')).toHaveCount(4, { timeout: 180000 });
    await expect(panel.locator('.jp-offload-sweep-state-completed')).toBeVisible({ timeout: 30000 });
    await expect(panel.locator('figure[data-plot="history"] svg circle')).toHaveCount(4);
    await expect(panel.locator('figure[data-plot="parallel"] svg polyline')).toHaveCount(4);
    await expect(panel.locator('figure[data-plot="importances"] .jp-offload-sweep-imp-row')).toHaveCount(3);
    await expect(panel.locator('.jp-offload-sweep-counts')).toContainText('4 of 4 done');
    await shot(page, 'sweep-02-done', panel);
    // the table is not cut at the panel's right edge: its last column is inside the panel
    const panelBox = (await panel.boundingBox())!;
    const lastHead = (await panel.locator('table.jp-offload-sweep-trials thead th').last().boundingBox())!;
    const wrap = panel.locator('.jp-offload-sweep-table-wrap');
    const scrolls = await wrap.evaluate(n => n.scrollWidth > n.clientWidth);
    expect(scrolls || lastHead.x + lastHead.width <= panelBox.x + panelBox.width + 1).toBe(true);

    // the sweep's end is a notification with the best value and Apply best
    const toast = page.locator('.Toastify__toast').filter({ hasText: /Sweep \w+ \(sweep_quad\.ipynb\) completed/ }).first();
    await expect(toast).toBeVisible({ timeout: 30000 });
    await expect(toast).toContainText('best score =');
    await expect(toast.getByRole('button', { name: 'Apply best' })).toBeVisible();
    // Stop is disabled once nothing runs (toolbar and header)
    await expect(page.locator('.jp-offload-sweep-stop button, button.jp-offload-sweep-stop').first()).toBeDisabled();
    await expect(panel.getByRole('button', { name: 'Stop', exact: true })).toBeDisabled();
    // trials are grouped under their sweep in the side panel, not rows of their own
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('offload:show-jobs');
    });
    const group = page.locator('.jp-offload-group[data-group="sweep"]').first();
    await expect(group).toBeVisible();
    await expect(group).toContainText('4 trial(s): 4 done');
    await expect(page.locator('#jp-offload-panel ul.jp-offload-jobs > li.jp-offload-job').filter({ hasText: 'sweep_quad' })).toHaveCount(0);
    await shot(page, 'sweep-02b-side-panel-grouped', page.locator('#jp-offload-panel'));
    await toast.getByRole('button', { name: 'Apply best' }).click();

    // apply the best through the notebook model (the notification's Apply best, above): the
    // parameters cell changes, unsaved, and the notification quotes exactly what was written
    const best = panel.locator('tr.jp-mod-best');
    const xi = (await panel.locator('table.jp-offload-sweep-trials thead th').allTextContents()).indexOf('x');
    expect(xi).toBeGreaterThan(1);
    const bestX = (await best.locator('td').nth(xi).textContent())!.trim();
    const exactX = (await best.locator('td').nth(xi).getAttribute('title'))!;
    const paramsCell = page.locator('.jp-NotebookPanel .jp-Cell').nth(1);
    await expect(paramsCell).not.toContainText('x = 0.5');
    await expect(paramsCell).toContainText('# position');
    await expect(paramsCell).toContainText(`x = ${exactX}`);
    const applied = page.locator('.Toastify__toast').filter({ hasText: 'parameters applied' }).first();
    await expect(applied).toContainText(`x = ${exactX}`);
    expect(bestX.length).toBeGreaterThan(0);
    expect(Number(bestX)).toBeCloseTo(Number(exactX), 3); // the table's 4 significant digits

    // a trial's executed notebook opens from its row
    await best.getByRole('button', { name: 'notebook' }).click();
    await expect(page.locator('.jp-offload-Executed').first()).toBeVisible({
      timeout: 30000
    });

    // dark theme
    await page.theme.setDarkTheme();
    await page.locator('.jp-offload-Sweep').first().evaluate(n => n.scrollIntoView());
    await page.getByRole('tab', { name: /Sweep: sweep_quad/ }).click();
    await shot(page, 'sweep-03-dark', page.locator('.jp-offload-Sweep').first());
    await page.theme.setLightTheme();
  });

  test('stop a running sweep, then resume it from the panel', async ({ page, tmpPath }) => {
    const { panel, form } = await openSweepPanel(page, tmpPath, 'sweep_slow.ipynb');
    await form.locator('input[aria-label="objective metric"]').fill('m');
    await form.locator('input[aria-label="trials"]').fill('4');
    await form.locator('input[aria-label="parallel"]').fill('2');
    await form.locator('button.jp-offload-sweep-start').click();

    await expect(panel.locator('tr[data-state="RUNNING"]')).toHaveCount(2, { timeout: 60000 });
    await expect(panel.getByRole('button', { name: 'Resume' })).toHaveCount(0);
    await panel.getByRole('button', { name: 'Stop', exact: true }).click();
    await expect(panel.locator('.jp-offload-sweep-state-stopped')).toBeVisible({ timeout: 60000 });
    await expect(panel.getByRole('button', { name: 'Stop', exact: true })).toBeDisabled();
    await expect(panel.locator('.jp-offload-sweep-counts')).toContainText('0 failed');
    await expect(panel.locator('.jp-offload-sweep-counts')).toContainText('2 re-queued');
    await shot(page, 'sweep-04-stopped', panel);

    await panel.getByRole('button', { name: 'Resume' }).click();
    await expect(panel.locator('.jp-offload-sweep-state-running')).toBeVisible({ timeout: 60000 });
    await expect(panel.getByRole('button', { name: 'Resume' })).toHaveCount(0);
    await expect(panel.locator('tr[data-state="RUNNING"]')).toHaveCount(2, { timeout: 60000 });
    await panel.getByRole('button', { name: 'Stop', exact: true }).click();
    await expect(panel.locator('.jp-offload-sweep-state-stopped')).toBeVisible({ timeout: 60000 });
  });
});
