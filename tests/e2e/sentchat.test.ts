import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTenant } from '../../src/app/runtime.ts';
import { grantRole, mapWorkspace } from '../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../helpers/test-server.ts';

/**
 * SENTchat in headless Chromium: sign in with the printed token, run commands, click a card's
 * button and see the card change in place, on a desktop screen and on a phone's.
 */
const SHOTS = path.join('.reflex-test', 'screenshots');

let server: TestServer;
let context: BrowserContext;
let userDataDir: string;

beforeAll(async () => {
  server = await startTestServer();
  await ensureTenant(server.store.db, 'acme', 'ACME Corp');
  // What embedded mode does for the default tenant at start, for this test's external database.
  await mapWorkspace(server.store.db, { platform: 'sentchat', workspace: 'local', tenantId: 'acme', actor: 'test' });
  await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'local', userId: 'admin' }, tenantId: 'acme', role: 'admin', actor: 'test', displayName: 'SENTchat admin' });
  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'reflex-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1280, height: 800 },
  });
  mkdirSync(SHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await server?.stop();
});

async function send(page: Page, text: string): Promise<void> {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

describe('SENTchat in the browser', () => {
  it('signs in with the token, answers /reflex help, and a card button updates the card in place', async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(msg.text());
    });
    await page.goto(server.url);

    // A wrong token is refused on the form, in words.
    await page.locator('#token').fill('definitely-not-the-token-000000');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect.poll(() => page.locator('#signin-error').textContent()).toContain('That token is not valid');
    await page.screenshot({ path: path.join(SHOTS, 'sentchat-signin.png') });

    await page.locator('#token').fill(server.apiToken);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('#chat').waitFor({ state: 'visible' });
    await expect.poll(() => page.locator('#conn').textContent()).toBe('Live');
    await expect.poll(() => page.locator('#channel-name').textContent()).toContain('general');
    expect(await page.locator('#messages').textContent()).toContain('No messages in #general yet');

    await send(page, '/reflex help');
    const help = page.locator('article.msg.ephemeral').filter({ hasText: 'incident new' });
    await help.waitFor({ timeout: 20_000 });
    expect(await help.textContent()).toContain('Only visible to you');

    // Message text is shown as text: markup in it never becomes HTML.
    await send(page, '<img src=x id=pwned onerror="window.pwned=1"> *bold* and `code`');
    const echoed = page.locator('article.msg').filter({ hasText: '<img src=x id=pwned' });
    await echoed.waitFor();
    expect(await page.locator('#pwned').count()).toBe(0);
    expect(await echoed.locator('strong').textContent()).toBe('bold');
    expect(await echoed.locator('code').textContent()).toBe('code');

    await send(page, '/reflex incident new 2 Test printer on fire');
    const card = page.locator('article.msg').filter({ has: page.locator('.card .title', { hasText: 'Test printer on fire' }) });
    await card.waitFor({ timeout: 20_000 });
    const cardId = await card.getAttribute('data-id');
    expect(await card.locator('.fields').textContent()).toContain('SEV2 (high)');
    await page.screenshot({ path: path.join(SHOTS, 'sentchat.png') });

    await card.getByRole('button', { name: 'Close' }).click();
    const updated = page.locator(`article.msg[data-id="${cardId}"]`);
    await expect.poll(() => updated.textContent(), { timeout: 20_000 }).toContain('closed by SENTchat admin');
    expect(await updated.textContent()).toContain('updated');
    expect(await page.locator(`article.msg[data-id="${cardId}"]`).count()).toBe(1);
    await page.screenshot({ path: path.join(SHOTS, 'sentchat-after-click.png') });
    expect(statSync(path.join(SHOTS, 'sentchat.png')).size).toBeGreaterThan(10_000);

    // A phone: the channel list collapses behind the menu button, nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.locator('#menu').isVisible()).toBe(true);
    const sidebarRight = async () => {
      const b = (await page.locator('#sidebar').boundingBox())!;
      return b.x + b.width;
    };
    await expect.poll(sidebarRight).toBeLessThanOrEqual(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: path.join(SHOTS, 'sentchat-phone.png') });
    await page.locator('#menu').click();
    await expect.poll(async () => (await page.locator('#sidebar').boundingBox())!.x).toBe(0);
    await page.screenshot({ path: path.join(SHOTS, 'sentchat-phone-channels.png') });
    await page.locator('#sidebar').getByRole('button', { name: /general/ }).click();
    await expect.poll(sidebarRight).toBeLessThanOrEqual(1);

    // Signing out returns to the form; the session no longer opens the API.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin').waitFor({ state: 'visible' });
    const me = await page.evaluate(async () => (await fetch('/sentchat/api/me')).status);
    expect(me).toBe(401);
    expect(problems.filter((p) => !p.includes('401'))).toEqual([]);
  }, 120_000);
});
