// Load JupyterLab in headless Chromium and report ms from navigation to "idle": the app
// restored, its plugins activated and the network quiet. Usage: node lab_load.js URL RUNS
const { chromium } = require('playwright-core');

(async () => {
  const [url, runs] = [process.argv[2], parseInt(process.argv[3] || '3', 10)];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage']
  });
  const out = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => {
      const app = window.jupyterapp;
      return app && app.started && document.querySelector('#jp-main-dock-panel');
    }, null, { timeout: 120000, polling: 50 });
    await page.evaluate(() => window.jupyterapp.restored);
    await page.waitForLoadState('networkidle');
    out.push(Date.now() - t0);
    await context.close();
  }
  await browser.close();
  console.log(JSON.stringify(out));
})().catch(err => { console.error(err); process.exit(1); });
