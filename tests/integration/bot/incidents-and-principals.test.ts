import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { ReflexError } from '../../../src/errors.ts';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import {
  IncidentEvents,
  appendTimeline,
  closeIncident,
  createIncident,
  findIncidentByChannel,
  isNowSev1,
  listIncidents,
  listTimeline,
  recordIncidentChannel,
  resolveIncidentRef,
  setSeverity,
  type IncidentEvent,
} from '../../../src/store/incidents.ts';
import { grantRole, listRoles, mapWorkspace, resolvePrincipal, resolveWorkspaceTenant, revokeRole } from '../../../src/store/principals.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

describe('incidents and principals stores', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await ensureTenant(t.db, 'acme', 'Acme');
    await ensureTenant(t.db, 'globex', 'Globex');
  });
  afterAll(() => t.drop());

  const auditHead = async () => (await t.db.selectFrom('audit_log').select(sql<string>`coalesce(max(seq), 0)`.as('seq')).executeTakeFirstOrThrow()).seq;
  const auditSince = async (seq: string) => (await t.db.selectFrom('audit_log').select(['action', 'actor']).where('seq', '>', seq).orderBy('seq').execute()).map((r) => `${r.action} by ${r.actor}`);
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as ReflexError);

  describe('createIncident', () => {
    it('writes the incident, its incident.created entry and its audit row together', async () => {
      const head = await auditHead();
      const inc = await createIncident(t.db, { tenantId: 'acme', title: '  SSH   brute force on web-01 ', severity: 2, createdBy: 'pipeline' });
      expect(inc).toMatchObject({ tenant_id: 'acme', title: 'SSH brute force on web-01', severity: 2, status: 'open', created_by: 'pipeline', summary: null });
      expect((await listTimeline(t.db, 'acme', inc.id)).map((e) => [e.kind, e.actor, e.text])).toEqual([['incident.created', 'pipeline', 'Incident opened at SEV2: SSH brute force on web-01']]);
      expect(await auditSince(head)).toEqual(['incident.create by pipeline']);
    });

    it('links alerts of its own tenant; an alert of another tenant rolls the whole incident back', async () => {
      const alert = async (tenant: string) =>
        auditedWrite(t.db, 'test', async (trx, audit) => {
          const a = await trx
            .insertInto('alerts')
            .values({ tenant_id: tenant, fingerprint: 'fp', source: 'wazuh', event_type: 'auth.bruteforce', severity: 2, title: 't', first_seen: new Date(), last_seen: new Date(), event: '{}', case_refs: '{}' })
            .returning('id')
            .executeTakeFirstOrThrow();
          audit({ tenantId: tenant, action: 'alert.create', target: `alert:${a.id}`, delta: {} });
          return a.id;
        });
      const mine = await alert('acme');
      const theirs = await alert('globex');
      const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Linked alerts', severity: 3, createdBy: 'pipeline', alertIds: [mine] });
      expect((await t.db.selectFrom('alerts').select('incident_id').where('id', '=', mine).executeTakeFirstOrThrow()).incident_id).toBe(inc.id);

      const head = await auditHead();
      const err = await failure(createIncident(t.db, { tenantId: 'acme', title: 'Cross-tenant link', severity: 3, createdBy: 'pipeline', alertIds: [mine, theirs] }));
      expect(err).toMatchObject({ code: 'not_found' });
      expect(await t.db.selectFrom('incidents').select('id').where('title', '=', 'Cross-tenant link').execute()).toEqual([]);
      expect(await auditSince(head)).toEqual([]);
      expect((await t.db.selectFrom('alerts').select('incident_id').where('id', '=', theirs).executeTakeFirstOrThrow()).incident_id).toBeNull();
    });

    it('refuses bad input with a specific message and writes nothing', async () => {
      const head = await auditHead();
      expect(await failure(createIncident(t.db, { tenantId: 'acme', title: 'no', severity: 2, createdBy: 'x' }))).toMatchObject({ code: 'input.invalid', safeMessage: 'the title needs at least 3 characters' });
      expect(await failure(createIncident(t.db, { tenantId: 'acme', title: 'Too severe', severity: 5 as never, createdBy: 'x' }))).toMatchObject({ code: 'input.invalid', safeMessage: 'severity must be from 1 (critical) to 4 (info)' });
      expect(await failure(createIncident(t.db, { tenantId: 'acme', title: 'Bell\u0007 in title', severity: 2, createdBy: 'x' }))).toMatchObject({ safeMessage: 'the title contains control characters' });
      expect(await auditSince(head)).toEqual([]);
    });
  });

  describe('IncidentEvents', () => {
    it('tells listeners after the commit, marks SEV1s, and survives a failing listener', async () => {
      const seen: { type: string; sev1: boolean; committed: boolean }[] = [];
      const errors: unknown[] = [];
      const events = new IncidentEvents((err) => errors.push(err));
      events.on(async (e: IncidentEvent) => {
        const row = await t.db.selectFrom('incidents').select('id').where('id', '=', e.incident.id).executeTakeFirst();
        seen.push({ type: e.type, sev1: isNowSev1(e), committed: row !== undefined });
      });
      events.on(() => {
        throw new Error('channel creation is down');
      });
      const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Ransomware on file-02', severity: 1, createdBy: 'x' }, events);
      const low = await createIncident(t.db, { tenantId: 'acme', title: 'Odd login', severity: 3, createdBy: 'x' }, events);
      await setSeverity(t.db, { tenantId: 'acme', incidentId: low.id, severity: 1, actor: 'x' }, events);
      await setSeverity(t.db, { tenantId: 'acme', incidentId: low.id, severity: 2, actor: 'x' }, events);
      await closeIncident(t.db, { tenantId: 'acme', incidentId: inc.id, actor: 'x' }, events);
      expect(seen).toEqual([
        { type: 'incident.created', sev1: true, committed: true },
        { type: 'incident.created', sev1: false, committed: true },
        { type: 'incident.severity_changed', sev1: true, committed: true },
        { type: 'incident.severity_changed', sev1: false, committed: true },
        { type: 'incident.closed', sev1: false, committed: true },
      ]);
      expect(errors).toHaveLength(5);
    });
  });

  describe('state changes', () => {
    it('closes once, changes severity only to a new value, and never on a closed incident', async () => {
      const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Data exfil suspicion', severity: 3, createdBy: 'x' });
      expect(await failure(setSeverity(t.db, { tenantId: 'acme', incidentId: inc.id, severity: 3, actor: 'x' }))).toMatchObject({ code: 'conflict' });
      const { previous, incident } = await setSeverity(t.db, { tenantId: 'acme', incidentId: inc.id, severity: 2, actor: 'x' });
      expect([previous, incident.severity]).toEqual([3, 2]);
      const closed = await closeIncident(t.db, { tenantId: 'acme', incidentId: inc.id, actor: 'y', reason: 'contained' });
      expect(closed.status).toBe('closed');
      expect(closed.closed_at).toBeInstanceOf(Date);
      expect(await failure(closeIncident(t.db, { tenantId: 'acme', incidentId: inc.id, actor: 'y' }))).toMatchObject({ code: 'conflict' });
      expect(await failure(setSeverity(t.db, { tenantId: 'acme', incidentId: inc.id, severity: 1, actor: 'y' }))).toMatchObject({ code: 'conflict' });
      // Another tenant cannot touch it.
      expect(await failure(closeIncident(t.db, { tenantId: 'globex', incidentId: inc.id, actor: 'z' }))).toMatchObject({ code: 'not_found' });
      expect((await listTimeline(t.db, 'acme', inc.id)).map((e) => e.text)).toEqual([
        'Incident opened at SEV3: Data exfil suspicion',
        'Severity raised from SEV3 to SEV2',
        'Incident closed: contained',
      ]);
      expect((await listIncidents(t.db, 'acme', { status: 'closed' })).map((i) => i.id)).toContain(inc.id);
      expect((await listIncidents(t.db, 'acme')).map((i) => i.id)).not.toContain(inc.id);
    });
  });

  describe('resolveIncidentRef', () => {
    it('finds an incident by its full id or a unique 8+ hex prefix, within the tenant only', async () => {
      const ids = ['abcdef01-0000-4000-8000-000000000001', 'abcdef01-1111-4000-8000-000000000002'];
      await auditedWrite(t.db, 'test', async (trx, audit) => {
        for (const id of ids) await trx.insertInto('incidents').values({ id, tenant_id: 'acme', title: `Fixed id ${id}`, severity: 4, created_by: 'test' } as never).execute();
        audit({ tenantId: 'acme', action: 'seed', target: 'incidents', delta: {} });
      });
      expect((await resolveIncidentRef(t.db, 'acme', ids[0]!)).id).toBe(ids[0]);
      expect((await resolveIncidentRef(t.db, 'acme', 'ABCDEF01-1')).id).toBe(ids[1]);
      expect(await failure(resolveIncidentRef(t.db, 'acme', 'abcdef01'))).toMatchObject({ code: 'input.invalid', safeMessage: 'More than one incident starts with abcdef01; give more of the id.' });
      expect(await failure(resolveIncidentRef(t.db, 'globex', 'abcdef01'))).toMatchObject({ code: 'not_found' });
      expect(await failure(resolveIncidentRef(t.db, 'acme', "abcdef01' or '1'='1"))).toMatchObject({ code: 'input.invalid' });
      expect(await failure(resolveIncidentRef(t.db, 'acme', 'abcd%'))).toMatchObject({ code: 'input.invalid' });
    });
  });

  describe('timeline', () => {
    it('appends on its own (audited) or inside the caller\'s transaction, never across tenants', async () => {
      const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Timeline host', severity: 4, createdBy: 'x' });
      const head = await auditHead();
      await appendTimeline(t.db, { tenantId: 'acme', incidentId: inc.id, kind: 'note', actor: 'slack:T1:U1', text: 'Called the ISP' });
      await auditedWrite(t.db, 'engine', async (trx, audit) => {
        await appendTimeline(trx, { tenantId: 'acme', incidentId: inc.id, kind: 'action.firewall.block', actor: 'engine', text: 'Blocked 198.51.100.7', data: { ttl: '24h' } });
        audit({ tenantId: 'acme', action: 'firewall.block', target: 'ip:198.51.100.7', delta: {} });
      });
      expect(await auditSince(head)).toEqual(['timeline.append by slack:T1:U1', 'firewall.block by engine']);
      expect(await failure(appendTimeline(t.db, { tenantId: 'globex', incidentId: inc.id, kind: 'note', actor: 'x', text: 'sneaky' }))).toMatchObject({ code: 'not_found' });
      expect(await failure(appendTimeline(t.db, { tenantId: 'acme', incidentId: inc.id, kind: 'Not A Kind', actor: 'x', text: 'y' }))).toMatchObject({ code: 'input.invalid' });
      expect((await listTimeline(t.db, 'acme', inc.id)).map((e) => e.kind)).toEqual(['incident.created', 'note', 'action.firewall.block']);
      expect((await listTimeline(t.db, 'acme', inc.id, { limit: 2 })).map((e) => e.kind)).toEqual(['note', 'action.firewall.block']);
    });

    it('records an incident channel once per platform and finds the incident by it', async () => {
      const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Needs a war room', severity: 1, createdBy: 'x' });
      const first = await recordIncidentChannel(t.db, { tenantId: 'acme', incidentId: inc.id, platform: 'slack', channelId: 'CWAR1', name: 'inc-war', actor: 'x' });
      const head = await auditHead();
      const again = await recordIncidentChannel(t.db, { tenantId: 'acme', incidentId: inc.id, platform: 'slack', channelId: 'CWAR2', name: 'inc-war-2', actor: 'x' });
      expect(first.created).toBe(true);
      expect(again).toEqual({ channel: first.channel, created: false });
      expect(await auditSince(head)).toEqual([]);
      expect((await findIncidentByChannel(t.db, 'slack', 'CWAR1'))?.id).toBe(inc.id);
      expect(await findIncidentByChannel(t.db, 'slack', 'CWAR2')).toBeUndefined();
    });
  });

  describe('principals, roles and workspaces', () => {
    const ann = { platform: 'slack' as const, workspace: 'T9', userId: 'UANN' };

    it('grants (creating the principal once), refuses to grant twice, revokes, lists', async () => {
      expect(await resolvePrincipal(t.db, ann, 'acme')).toBeUndefined();
      const head = await auditHead();
      const g1 = await grantRole(t.db, { identity: ann, tenantId: 'acme', role: 'analyst', actor: 'cli', displayName: 'Ann' });
      const g2 = await grantRole(t.db, { identity: ann, tenantId: 'acme', role: 'approver', actor: 'cli' });
      const again = await grantRole(t.db, { identity: ann, tenantId: 'acme', role: 'analyst', actor: 'cli' });
      await grantRole(t.db, { identity: ann, tenantId: 'globex', role: 'viewer', actor: 'cli' });
      expect(g1.granted && g2.granted).toBe(true);
      expect(again).toEqual({ principalId: g1.principalId, granted: false });
      expect(g2.principalId).toBe(g1.principalId);
      expect(await auditSince(head)).toEqual(['principal.create by cli', 'role.grant by cli', 'role.grant by cli', 'role.grant by cli']);
      expect(await resolvePrincipal(t.db, ann, 'acme')).toMatchObject({ displayName: 'Ann', roles: ['analyst', 'approver'] });
      expect((await resolvePrincipal(t.db, ann, 'globex'))?.roles).toEqual(['viewer']);
      expect((await listRoles(t.db, { tenantId: 'acme', identity: ann })).map((r) => [r.role, r.identities])).toEqual([
        ['analyst', ['slack:T9:UANN']],
        ['approver', ['slack:T9:UANN']],
      ]);

      const head2 = await auditHead();
      expect(await revokeRole(t.db, { identity: ann, tenantId: 'acme', role: 'admin', actor: 'cli' })).toEqual({ revoked: false });
      expect(await auditSince(head2)).toEqual([]);
      expect(await revokeRole(t.db, { identity: ann, tenantId: 'acme', role: 'approver', actor: 'cli' })).toEqual({ revoked: true });
      expect((await resolvePrincipal(t.db, ann, 'acme'))?.roles).toEqual(['analyst']);
      expect(await failure(grantRole(t.db, { identity: ann, tenantId: 'nope', role: 'viewer', actor: 'cli' }))).toMatchObject({ code: 'not_found', safeMessage: 'There is no tenant "nope".' });
      expect(await failure(grantRole(t.db, { identity: ann, tenantId: 'acme', role: 'root' as never, actor: 'cli' }))).toMatchObject({ code: 'input.invalid' });
    });

    it('maps a workspace to one tenant; mapping it again to the same tenant writes nothing', async () => {
      expect(await resolveWorkspaceTenant(t.db, 'slack', 'TMAP')).toBeUndefined();
      expect(await mapWorkspace(t.db, { platform: 'slack', workspace: 'TMAP', tenantId: 'acme', actor: 'cli' })).toEqual({ changed: true, previousTenantId: undefined });
      const head = await auditHead();
      expect(await mapWorkspace(t.db, { platform: 'slack', workspace: 'TMAP', tenantId: 'acme', actor: 'cli' })).toEqual({ changed: false, previousTenantId: 'acme' });
      expect(await auditSince(head)).toEqual([]);
      expect(await mapWorkspace(t.db, { platform: 'slack', workspace: 'TMAP', tenantId: 'globex', actor: 'cli' })).toEqual({ changed: true, previousTenantId: 'acme' });
      expect(await resolveWorkspaceTenant(t.db, 'slack', 'TMAP')).toBe('globex');
      expect(await failure(mapWorkspace(t.db, { platform: 'slack', workspace: 'T/../x', tenantId: 'acme', actor: 'cli' }))).toMatchObject({ code: 'input.invalid' });
    });
  });
});
