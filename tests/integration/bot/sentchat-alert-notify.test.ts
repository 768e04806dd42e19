import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * Pipeline alerts in SENTchat: the tenant's `notify.chat.sentchat` channel is made on the first
 * alert, gets the alert card once, and the repeat goes into that card's thread.
 */
describe('alert notifications in SENTchat', () => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startTestServer();
    await ensureTenant(s.store.db, 'acme', 'Acme');
    await s.store.db
      .updateTable('tenants')
      .set({ config: JSON.stringify({ notify: { chat: { sentchat: 'alerts' }, min_severity: 4, repeat_interval_seconds: 1 } }) })
      .where('id', '=', 'acme')
      .execute();
    token = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId: 'acme', source: '*', token, actor: 'test' });
  });
  afterAll(() => s?.stop());

  async function post(alert: unknown) {
    const res = await fetch(`${s.url}/hooks/wazuh`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(alert) });
    expect(res.status).toBe(202);
  }

  async function messages() {
    return s.store.db
      .selectFrom('sentchat_messages as m')
      .innerJoin('sentchat_channels as c', 'c.id', 'm.channel_id')
      .select(['m.id', 'm.text', 'm.thread_parent_id', 'c.name', 'c.tenant_id'])
      .where('c.name', '=', 'alerts')
      .orderBy('m.created_at')
      .execute();
  }

  it('makes the channel, posts the alert once and threads its repeat', async () => {
    const alert = fixtureJson('wazuh/docs_alert_5716_sshd_auth_failed.json');
    await post(alert);
    await vi.waitFor(async () => expect(await messages()).toHaveLength(1), { timeout: 60_000, interval: 100 });
    const [first] = await messages();
    expect(first).toMatchObject({ tenant_id: 'acme', thread_parent_id: null });

    await post(alert);
    await vi.waitFor(async () => expect(await messages()).toHaveLength(2), { timeout: 60_000, interval: 100 });
    const [, repeat] = await messages();
    expect(repeat!.thread_parent_id).toBe(first!.id);
    expect(repeat!.text).toMatch(/^2nd occurrence of /);
  });
});
