import { expect, test } from '@jupyterlab/galata';

test('JupyterLab loads the jupyter-offload extension', async ({ page }) => {
  const ids = await page.evaluate(() =>
    (window as any).jupyterapp.pluginRegistry
      ? Array.from((window as any).jupyterapp.pluginRegistry._plugins.keys())
      : (window as any).jupyterapp.listPlugins()
  );
  expect(ids).toContain('jupyter-offload:plugin');
  expect(ids.length).toBeGreaterThan(50);
});
