/**
 * Galata (JupyterLab's Playwright layer) against a server that scripts/ui-test.sh starts.
 * Debian's chromium is used because Playwright cannot download its browsers here; video is off
 * because it needs Playwright's own ffmpeg download.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results',
  timeout: 120000,
  expect: { timeout: 20000 },
  retries: 0,
  workers: 1,
  reporter: [
    ['list'],
    ['html', { open: 'never', outputFolder: 'playwright-report' }]
  ],
  use: {
    ...baseConfig.use,
    baseURL: process.env.TARGET_URL || 'http://127.0.0.1:8888',
    video: 'off',
    trace: 'off',
    screenshot: 'only-on-failure',
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage'
      ]
    }
  },
  webServer: undefined,
  // The specs share one server and store. scale.spec counts pages of jobs, so it runs first, on a
  // store holding only its own synthetic (older) jobs; the other specs find theirs first as newest.
  projects: [
    { name: 'scale', testMatch: /scale\.spec\.ts/ },
    { name: 'ui', testIgnore: /scale\.spec\.ts/, dependencies: ['scale'] }
  ]
};
