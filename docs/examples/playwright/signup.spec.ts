import { test, expect } from '@playwright/test';

const mayfly = process.env.MAYFLY_URL ?? 'http://127.0.0.1:8025';

test('signing up mails a code that verifies the account', async ({ page, request }) => {
  const inbox = await (await request.post(`${mayfly}/api/v1/inboxes`)).json();
  await page.goto('/');
  await page.getByLabel('Email').fill(inbox.address);
  await page.getByRole('button', { name: 'Sign up' }).click();
  const wait = await request.get(`${mayfly}/api/v1/inboxes/${inbox.address}/wait?subject=code&timeout=30s`,
    { headers: { Authorization: `Bearer ${inbox.token}` } });
  const [mail] = (await wait.json()).messages;
  await page.getByLabel('Code').fill(mail.codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText('Your account is verified')).toBeVisible();
});
