import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { eventually, SLACK_API, startSlackApp, stopSlackApp, webApiExample, webApiParams } from './slack-test-kit.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const CHANNEL = 'C0ALERTS1';
const POSTED = webApiExample('chat.postMessage') as { ts: string } & Record<string, unknown>;

/**
 * Pipeline alerts in the tenant's Slack channel: the first message once (through a 429), and the
 * repeats of the same alert as "Nth occurrence" replies in its thread, not as new messages.
 */
describe('alert notifications in Slack', () => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startSlackApp();
    await s.store.db
      .updateTable('tenants')
      .set({ config: JSON.stringify({ notify: { chat: { slack: CHANNEL }, min_severity: 4, repeat_interval_seconds: 1 } }) })
      .where('id', '=', 'acme')
      .execute();
    token = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId: 'acme', source: '*', token, actor: 'test' });
  });
  afterAll(() => stopSlackApp(s));

  async function post(alert: unknown) {
    const res = await fetch(`${s.url}/hooks/wazuh`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(alert) });
    expect(res.status).toBe(202);
  }

  it('posts the first message once despite a 429, then threads the repeat under it', async () => {
    const posts: Record<string, unknown>[] = [];
    nock(SLACK_API).post('/api/chat.postMessage').once().reply(429, { ok: false, error: 'ratelimited' }, { 'retry-after': '1' });
    nock(SLACK_API)
      .post('/api/chat.postMessage')
      .times(2)
      .reply(200, (_uri, body) => {
        const p = webApiParams(body);
        posts.push(p);
        return { ...POSTED, channel: p.channel, ts: posts.length === 1 ? POSTED.ts : `${POSTED.ts}1` };
      });

    const alert = fixtureJson('wazuh/docs_alert_5716_sshd_auth_failed.json');
    await post(alert);
    await eventually(() => expect(posts).toHaveLength(1));
    expect(posts[0]).toMatchObject({ channel: CHANNEL });
    expect(posts[0]!.thread_ts).toBeUndefined();
    expect(JSON.stringify(posts[0]!.blocks)).toContain('sshd');

    await post(alert);
    await eventually(() => expect(posts).toHaveLength(2));
    expect(posts[1]).toMatchObject({ channel: CHANNEL, thread_ts: POSTED.ts });
    expect(String(posts[1]!.text)).toMatch(/^2nd occurrence of /);

    // The send is recorded after Slack answered: wait for that commit, not just for the call.
    await eventually(async () => {
      const throttle = await s.store.db.selectFrom('notification_throttle').selectAll().where('tenant_id', '=', 'acme').where('channel', '=', 'chat.slack').execute();
      expect(throttle).toHaveLength(1);
      expect(throttle[0]!.sent).toBe(2);
    });
    expect(nock.pendingMocks()).toEqual([]);
  });
});
