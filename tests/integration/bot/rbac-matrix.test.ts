import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import type { CommandDeps } from '../../../src/commands/command.ts';
import { dispatch, type InboundInvocation } from '../../../src/commands/dispatch.ts';
import type { PlaybookEngine } from '../../../src/commands/ports.ts';
import { createIncident, recordIncidentChannel, shortIncidentId } from '../../../src/store/incidents.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import type { Role } from '../../../src/store/schema.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

/**
 * Who may run what, written down here by hand (not read from the code under test): one row per
 * command, button and reaction; the roles that may use it. Everyone else is refused, and so is
 * a chat user SENTreflex does not know.
 */
const V: Role = 'viewer';
const A: Role = 'analyst';
const R: Role = 'responder';
const P: Role = 'approver';
const X: Role = 'admin';
const ALL = [V, A, R, P, X];

const MATRIX: [entry: string, allowed: Role[]][] = [
  ['help', ALL],
  ['whoami', ALL],
  ['enrich', [A, R, P, X]],
  ['incident new', [A, R, P, X]],
  ['incident list', ALL],
  ['incident show', ALL],
  ['incident sev', [R, X]],
  ['incident close', [R, X]],
  ['timeline', ALL],
  ['note', [A, R, P, X]],
  ['summary', ALL],
  ['suggest', [A, R, P, X]],
  ['playbooks', ALL],
  ['run', [R, X]],
  ['runs', ALL],
  ['approve', [P, X]],
  ['deny', [P, X]],
  ['role grant', [X]],
  ['role revoke', [X]],
  ['role list', [X]],
  ['button approval.approve', [P, X]],
  ['button approval.deny', [P, X]],
  ['button incident.close', [R, X]],
  ['button incident.timeline', ALL],
  ['reaction pushpin', [A, R, P, X]],
];

const APPROVAL = '9f8e7d6c-0000-4000-8000-00000000abcd';

const channelOf = (inc: string) => `CINC${shortIncidentId(inc).toUpperCase()}`;

/** What each entry sends, given a fresh incident to act on. */
function request(entry: string, inc: string): Pick<InboundInvocation, 'text' | 'action' | 'reaction'> & { channel?: string } {
  const short = shortIncidentId(inc);
  const typed: Record<string, string> = {
    help: 'help',
    whoami: 'whoami',
    enrich: 'enrich 198.51.100.7',
    'incident new': 'incident new 3 Suspicious login from a new country',
    'incident list': 'incident list',
    'incident show': `incident show ${short}`,
    'incident sev': `incident sev ${short} 1`,
    'incident close': `incident close ${short} false positive`,
    timeline: `timeline ${short}`,
    note: `note ${short} called the user`,
    summary: `summary ${short}`,
    suggest: `suggest ${short}`,
    playbooks: 'playbooks',
    run: 'run host-isolation host=web-01',
    runs: 'runs',
    approve: `approve ${APPROVAL}`,
    deny: `deny ${APPROVAL} not now`,
    'role grant': 'role grant @UTARGET analyst',
    'role revoke': 'role revoke @UTARGET viewer',
    'role list': 'role list',
  };
  if (entry in typed) return { text: typed[entry]! };
  if (entry.startsWith('button ')) {
    const actionId = entry.slice('button '.length);
    return { action: { actionId, value: actionId.startsWith('approval.') ? APPROVAL : inc } };
  }
  if (entry === 'reaction pushpin') {
    return { reaction: { name: 'pushpin', message: { id: '1700000000.000100', text: 'Attacker IP is 198.51.100.7', userId: 'UWITNESS' } }, channel: channelOf(inc) };
  }
  throw new Error(`no request for ${entry}`);
}

describe('RBAC: every command, button and reaction x every role', () => {
  let t: TestDatabase;
  let deps: CommandDeps;
  const engineCalls: string[] = [];

  const engine: PlaybookEngine = {
    list: async () => [{ id: 'host-isolation', name: 'Host isolation', version: '1', inputs: [{ name: 'host', type: 'string', required: true }] }],
    start: async (_t, playbookId) => {
      engineCalls.push(`start ${playbookId}`);
      return { id: randomUUID(), playbookId, status: 'queued', startedBy: 'x', createdAt: new Date() };
    },
    getRun: async () => undefined,
    listRuns: async () => [],
    decide: async (_t, approvalId, _p, decision) => {
      engineCalls.push(`${decision} ${approvalId}`);
      return { approvalId, status: decision === 'approve' ? 'approved' : 'denied', summary: 'Isolate web-01' };
    },
  };

  beforeAll(async () => {
    t = await createTestDatabase();
    await ensureTenant(t.db, 'acme', 'Acme');
    await ensureTenant(t.db, 'other', 'Other');
    await mapWorkspace(t.db, { platform: 'slack', workspace: 'T111', tenantId: 'acme', actor: 'test' });
    for (const role of ALL) {
      await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T111', userId: `U${role.toUpperCase()}` }, tenantId: 'acme', role, actor: 'test' });
    }
    // Roles elsewhere are no roles here.
    await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T111', userId: 'UELSEWHERE' }, tenantId: 'other', role: 'admin', actor: 'test' });
    deps = {
      db: t.db,
      engine,
      assistant: { summarize: async () => 'prose', suggest: async () => [{ text: 'Reset the password' }] },
      lookupIntel: async () => [{ provider: 'stub', status: 'not_configured' }],
    };
  });
  afterAll(() => t.drop());

  async function freshIncident(): Promise<string> {
    const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Impossible travel for jdoe', severity: 3, createdBy: 'test' });
    await recordIncidentChannel(t.db, { tenantId: 'acme', incidentId: inc.id, platform: 'slack', channelId: channelOf(inc.id), name: `inc-${shortIncidentId(inc.id)}`, actor: 'test' });
    return inc.id;
  }

  async function auditFor(deliveryId: string) {
    const rows = await t.db
      .selectFrom('audit_log')
      .select(['action', 'tenant_id', 'delta'])
      .where(sql<string>`delta->>'deliveryId'`, '=', deliveryId)
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({ action: r.action, tenant: r.tenant_id, delta: (typeof r.delta === 'string' ? JSON.parse(r.delta) : r.delta) as Record<string, unknown> }));
  }

  const cases = MATRIX.flatMap(([entry, allowed]) => [
    ...ALL.map((role) => ({ entry, who: role, userId: `U${role.toUpperCase()}`, allowed: allowed.includes(role) })),
    { entry, who: 'unknown user', userId: 'UNOBODY', allowed: false },
    { entry, who: 'admin of another tenant only', userId: 'UELSEWHERE', allowed: false },
  ]);

  it.each(cases)('$entry as $who: allowed=$allowed', async ({ entry, userId, allowed, who }) => {
    // Every incident is used by one case only, so a close or a sev change always has work to do.
    const inc = await freshIncident();
    if (entry === 'role revoke') {
      await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T111', userId: 'UTARGET' }, tenantId: 'acme', role: 'viewer', actor: 'test' });
    }
    const deliveryId = `rbac-${randomUUID()}`;
    const { channel, ...req } = request(entry, inc);
    const incidentsBefore = await t.db.selectFrom('incidents').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
    const result = await dispatch(
      { platform: 'slack', user: { platform: 'slack', workspace: 'T111', userId }, channel: { id: channel ?? 'CGENERAL' }, ...req, deliveryId, receivedAt: new Date() },
      deps,
    );
    const audit = await auditFor(deliveryId);
    if (allowed) {
      expect(result.outcome).toBe('ok');
      expect(audit).toHaveLength(1);
      expect(audit[0]!.action).toMatch(/^command\./);
      expect(audit[0]!.tenant).toBe('acme');
    } else {
      expect(result.outcome).toBe('refused');
      expect(audit).toEqual([
        {
          action: 'command.refused',
          tenant: 'acme',
          delta: expect.objectContaining({
            reason: who === 'unknown user' ? 'unknown_user' : who.startsWith('admin of another') ? 'no_role' : 'role',
            deliveryId,
          }),
        },
      ]);
      if (req.reaction) expect(result.message).toBeNull();
      else expect(result.message?.text).toMatch(/not authorised|needs one of these roles/);
      // A refusal writes nothing but its audit row.
      const incidentsAfter = await t.db.selectFrom('incidents').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
      expect(incidentsAfter.n).toBe(incidentsBefore.n);
      const timeline = await t.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', inc).execute();
      expect(timeline.map((e) => e.kind)).toEqual(['incident.created', 'incident.channel']);
    }
  });

  it('the refusal of an unknown user names the identity an admin must grant', async () => {
    const r = await dispatch(
      { platform: 'slack', user: { platform: 'slack', workspace: 'T111', userId: 'UNEWBIE' }, channel: { id: 'C1' }, text: 'incident list', receivedAt: new Date() },
      deps,
    );
    expect(r.message?.text).toContain('reflex role grant slack:T111:UNEWBIE viewer --tenant acme');
    expect(await t.db.selectFrom('chat_identities').select('id').where('user_id', '=', 'UNEWBIE').execute()).toEqual([]);
  });

  it('the engine was reached only by allowed roles', () => {
    // approve/deny: 2 typed + 2 buttons, each by approver and admin; run: responder and admin.
    expect(engineCalls.filter((c) => c.startsWith('approve')).length).toBe(4);
    expect(engineCalls.filter((c) => c.startsWith('deny')).length).toBe(4);
    expect(engineCalls.filter((c) => c.startsWith('start')).length).toBe(2);
  });
});
