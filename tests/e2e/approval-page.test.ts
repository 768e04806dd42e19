import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../src/app/runtime.ts';
import type { ApprovalLinkSender } from '../../src/approvals/approval-ports.ts';
import { ENGINE_PORTS } from '../../src/engine/engine-ports.ts';
import { grantRole } from '../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../helpers/test-server.ts';

/**
 * The mobile approval page in headless Chromium at a phone's size: the one-time link an on-call
 * engineer gets by SMS or e-mail opens the page, shows what is asked, and takes one decision.
 */
const TENANT = 'acme';
const sent: { principalId: string; url: string }[] = [];
const sender: ApprovalLinkSender = {
  async send(to, link) {
    sent.push({ principalId: to.principalId, url: link.url });
    return { via: 'email' };
  },
};

let server: TestServer;
let context: BrowserContext;
let userDataDir: string;
let approverId: string;

beforeAll(async () => {
  ENGINE_PORTS.linkSender = sender;
  server = await startTestServer();
  await ensureTenant(server.store.db, TENANT, 'ACME Corp');
  approverId = (
    await grantRole(server.store.db, {
      identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-oncall' },
      tenantId: TENANT,
      role: 'approver',
      actor: 'test',
      displayName: 'Olga On-call',
      email: 'olga@acme.example',
    })
  ).principalId;
  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'reflex-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  rmSync(userDataDir, { recursive: true, force: true });
  await server?.stop();
  ENGINE_PORTS.linkSender = undefined;
});

describe('mobile approval page', () => {
  it('shows the request on a phone screen, records one approval, and refuses the link after that', async () => {
    const res = await fetch(`${server.url}/api/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ playbook: 'host-isolation', tenant: TENANT, inputs: { agent_id: '003', host: 'web-01' } }),
    });
    expect(res.status).toBe(201);
    const runId = ((await res.json()) as { id: string }).id;
    await vi.waitFor(() => expect(sent.find((s) => s.principalId === approverId)).toBeDefined(), { timeout: 15_000, interval: 50 });
    const link = sent.find((s) => s.principalId === approverId)!.url;
    expect(link.startsWith(`${server.url}/approve/`)).toBe(true);

    const page = await context.newPage();
    await page.goto(link);
    await expect.poll(() => page.locator('#summary').textContent()).toContain('Isolate `web-01` (agent 003) from the network?');
    expect(await page.locator('dl').textContent()).toContain('Olga On-call');
    // Laid out for the phone: nothing wider than the screen, both buttons big enough to tap.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    for (const name of ['Approve', 'Deny']) {
      const box = (await page.getByRole('button', { name }).boundingBox())!;
      expect(box.height).toBeGreaterThanOrEqual(44);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    mkdirSync('.reflex-test', { recursive: true });
    const shot = path.join('.reflex-test', 'approval-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(5_000);

    await page.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => page.locator('#outcome').textContent()).toContain('The request is now approved.');
    await page.screenshot({ path: path.join('.reflex-test', 'approval-page-done.png') });

    // The link worked once: opening it again is refused.
    await page.goto(link);
    await expect.poll(() => page.locator('#outcome').textContent()).toContain('used already');

    const decisions = await server.store.db.selectFrom('approval_decisions').select(['principal_id', 'decision', 'via']).execute();
    expect(decisions).toEqual([{ principal_id: approverId, decision: 'approve', via: 'mobile-link' }]);
    // The gate opened: the run moved on to the gated step (this tenant has no Wazuh configured).
    await vi.waitFor(
      async () => {
        const step = await server.store.db.selectFrom('run_steps').select(['status', 'error']).where('run_id', '=', runId).where('step_id', '=', 'isolate_host').executeTakeFirst();
        expect(step).toMatchObject({ status: 'failed', error: 'tenant acme: config key wazuh.base_url is not set (the step runs a Wazuh active response)' });
      },
      { timeout: 15_000, interval: 50 },
    );
  }, 60_000);
});
