import { defineConfig } from '@playwright/test';

// Debian's Chromium (apt install chromium), not a browser Playwright downloads.
export default defineConfig({
  testDir: '.',
  timeout: 60_000,
  reporter: 'list',
  use: {
    baseURL: process.env.SIGNUP_URL ?? 'http://127.0.0.1:8080',
    launchOptions: { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' },
  },
});
