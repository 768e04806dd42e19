import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIncident, getIncident } from '../../../src/store/incidents.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { blockActionsBody, captureResponses, eventually, grant, jobTotal, send, shown, startSlackApp, stopSlackApp } from './slack-test-kit.ts';

// The app runs real workers on the machine's PostgreSQL/Redis: allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

// response_url of the block_actions fixture.
const RESPONSE_PATH = '/actions/T111/111/random-value';

describe('Slack interactivity: button clicks on POST /slack/events', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startSlackApp();
    // The fixture's clicker is W111 in T111; W333 is only a viewer.
    await grant(s, 'W111', 'responder');
    await grant(s, 'W333', 'viewer');
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
  afterAll(() => stopSlackApp(s));

  it('acknowledges the fixture click with an empty 200 and says the button is unknown', async () => {
    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, blockActionsBody(), 'form');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(replies.bodies[0]!.text).toContain('That button (`a`) is not one SENTreflex knows.');
  });

  it('closes an incident from its Close button (the button carries only the id)', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Malware beacon on lab-3', severity: 3, createdBy: 'test' });
    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, blockActionsBody({ action_id: 'incident.close', value: inc.id }), 'form');
    expect(res.status).toBe(200);
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]).toMatchObject({ response_type: 'in_channel' });
    expect(shown(replies.bodies[0]!.text)).toContain(`Incident \`${inc.id.slice(0, 8)}\` (Malware beacon on lab-3) closed by slack:T111:W111.`);
    expect((await getIncident(s.store.db, 'acme', inc.id))?.status).toBe('closed');
    const audit = await s.store.db.selectFrom('audit_log').select(['action', 'actor']).where('target', 'in', [`incident:${inc.id}`, 'chat:slack:T111:W111']).orderBy('seq', 'desc').limit(2).execute();
    expect(audit.reverse()).toEqual([
      { action: 'incident.close', actor: 'slack:T111:W111' },
      { action: 'command.incident.close', actor: 'slack:T111:W111' },
    ]);
  });

  it('checks the role of whoever clicks: a viewer cannot close, and nothing changes', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Port scan from 203.0.113.9', severity: 4, createdBy: 'test' });
    const replies = captureResponses(RESPONSE_PATH);
    await send(s, blockActionsBody({ action_id: 'incident.close', value: inc.id }, 'W333'), 'form');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]!.text).toContain('`incident close` needs one of these roles: responder, admin. You have: viewer.');
    expect((await getIncident(s.store.db, 'acme', inc.id))?.status).toBe('open');
    const refused = await s.store.db.selectFrom('audit_log').select(['action', 'delta']).where('actor', '=', 'slack:T111:W333').execute();
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ action: 'command.refused', delta: { reason: 'role', command: 'incident close', via: 'slack.button' } });
  });

  it('refuses a forged click with 401 and queues nothing', async () => {
    const jobs = await jobTotal(s, 'chat.commands');
    const res = await send(s, blockActionsBody({ action_id: 'incident.close', value: '00000000-0000-4000-8000-000000000000' }), 'form', { signature: `v0=${'f'.repeat(64)}` });
    expect(res.status).toBe(401);
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
  });

  it('answers a click whose value is not an id with the problem, and writes nothing', async () => {
    const replies = captureResponses(RESPONSE_PATH);
    await send(s, blockActionsBody({ action_id: 'approval.approve', value: 'click_me_123' }), 'form');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]!.text).toContain('needs one of these roles: approver, admin');
    const replies2 = captureResponses(RESPONSE_PATH);
    await send(s, blockActionsBody({ action_id: 'incident.timeline', value: 'click_me_123' }), 'form');
    await eventually(() => expect(replies2.bodies).toHaveLength(1));
    expect(replies2.bodies[0]!.text).toContain('"click_me_123" is not an incident id');
  });
});
