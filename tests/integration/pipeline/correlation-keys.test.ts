import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SentinelEvent } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';
import { correlationKeys } from '../../../src/pipeline/stages/case-stage.ts';
import { findIncidentsByKeys, recordCorrelationKeys, refreshCorrelationKeys } from '../../../src/store/correlation-keys.ts';
import { createIncident } from '../../../src/store/incidents.ts';
import { FIXTURES_DIR, fixtureText } from '../../helpers/fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

const TENANT = 'corr-co';

/** Every Wazuh alert, Cowrie event and OpenVAS result fixture, normalized. */
function fixtureEvents(): SentinelEvent[] {
  const wazuhDir = path.join(FIXTURES_DIR, 'wazuh');
  const wazuh = readdirSync(wazuhDir)
    .filter((f) => /^docs_alert_.*\.json$/.test(f))
    .flatMap((f) => normalize('wazuh', JSON.parse(readFileSync(path.join(wazuhDir, f), 'utf8')), { tenantId: TENANT }));
  const cowrie = normalize('cowrie', fixtureText('cowrie/cowrie_events_from_test_ocsf.jsonl'), { tenantId: TENANT });
  const openvas = normalize('openvas', fixtureText('openvas_gvm/defectdojo_openvas_one_vuln.xml'), { tenantId: TENANT });
  return [...wazuh, ...cowrie, ...openvas];
}

function withSubject(base: SentinelEvent, host: { name: string | null; ip: string | null }, ip: string[], hash: string[]): SentinelEvent {
  return { ...base, host, observables: { ...base.observables, ip, hash } };
}

describe('correlation keys', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insertInto('tenants').values({ id: TENANT, name: TENANT, config: '{}' }).execute();
  });
  afterAll(() => t.drop());

  async function insertAlert(event: SentinelEvent, lastReceivedAt = new Date()): Promise<string> {
    const row = await t.db
      .insertInto('alerts')
      .values({
        tenant_id: TENANT,
        fingerprint: `fp-${Math.random()}`,
        source: event.source,
        event_type: event.event_type,
        severity: event.severity,
        title: 'correlation test',
        first_seen: event.timestamp,
        last_seen: event.timestamp,
        event: JSON.stringify(event),
        last_received_at: lastReceivedAt,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  it('derives the same keys in SQL (correlation_keys_of) as in the case stage, for every fixture', async () => {
    const events = fixtureEvents();
    expect(events.length).toBeGreaterThan(10);
    const base = events[0]!;
    // Edge cases the fixtures may not hold: no host name, nothing at all, repeated observables.
    events.push(withSubject(base, { name: null, ip: '10.0.0.9' }, [], []));
    events.push(withSubject(base, { name: null, ip: null }, [], []));
    events.push(withSubject(base, { name: 'web-1', ip: '10.0.0.1' }, ['203.0.113.7', '203.0.113.7'], ['44d88612fea8a8f36de82e1278abb02f']));
    let withKeys = 0;
    for (const event of events) {
      const { rows } = await sql<{ key: string }>`select k as key from correlation_keys_of(${JSON.stringify(event)}::jsonb) as k`.execute(t.db);
      const expected = correlationKeys(event);
      expect(rows.map((r) => r.key).sort()).toEqual([...expected].sort());
      if (expected.length > 0) withKeys += 1;
    }
    expect(withKeys).toBeGreaterThan(10);
  });

  it('finds the open incident sharing a key within the window, and refreshes keys only when stale', async () => {
    const [base] = fixtureEvents();
    const linkedEvent = withSubject(base!, { name: 'db-7', ip: null }, ['198.51.100.77'], []);
    const linkedId = await insertAlert(linkedEvent);
    const incident = await createIncident(t.db, { tenantId: TENANT, title: 'keyed incident', severity: 2, createdBy: 'test', alertIds: [linkedId] });

    const keys = await t.db.selectFrom('correlation_keys').selectAll().where('incident_id', '=', incident.id).orderBy('key').execute();
    expect(keys.map((k) => k.key)).toEqual(['host:db-7', 'obs:198.51.100.77']);

    const asks = [
      { id: '00000000-0000-4000-8000-000000000001', keys: ['obs:198.51.100.77'] },
      { id: '00000000-0000-4000-8000-000000000002', keys: ['host:db-7', 'obs:192.0.2.1'] },
      { id: '00000000-0000-4000-8000-000000000003', keys: ['host:elsewhere'] },
      { id: '00000000-0000-4000-8000-000000000004', keys: [] },
    ];
    const found = await findIncidentsByKeys(t.db, TENANT, asks, 3600);
    expect(Object.fromEntries(found)).toEqual({ [asks[0]!.id]: incident.id, [asks[1]!.id]: incident.id });
    // Another tenant sees nothing of it.
    expect((await findIncidentsByKeys(t.db, 'other-tenant', asks, 3600)).size).toBe(0);

    // Out of the window: nothing; a repeat of the linked alert (refresh) brings it back.
    await sql`update correlation_keys set last_received_at = now() - interval '2 hours' where incident_id = ${incident.id}`.execute(t.db);
    expect((await findIncidentsByKeys(t.db, TENANT, asks, 3600)).size).toBe(0);
    await t.db.transaction().execute((trx) => refreshCorrelationKeys(trx, [linkedId]));
    expect((await findIncidentsByKeys(t.db, TENANT, asks, 3600)).size).toBe(2);

    // A refresh within the second after the last one leaves the rows alone.
    const before = await t.db.selectFrom('correlation_keys').select(['key', 'last_received_at']).where('incident_id', '=', incident.id).orderBy('key').execute();
    await t.db.transaction().execute((trx) => refreshCorrelationKeys(trx, [linkedId]));
    const after = await t.db.selectFrom('correlation_keys').select(['key', 'last_received_at']).where('incident_id', '=', incident.id).orderBy('key').execute();
    expect(after).toEqual(before);

    // Recording again keeps the later time; a closed incident is not a match.
    await recordCorrelationKeys(t.db, [linkedId]);
    expect(await t.db.selectFrom('correlation_keys').select(['key', 'last_received_at']).where('incident_id', '=', incident.id).orderBy('key').execute()).toEqual(before);
    await t.db.updateTable('incidents').set({ status: 'closed' }).where('id', '=', incident.id).execute();
    expect((await findIncidentsByKeys(t.db, TENANT, asks, 3600)).size).toBe(0);
  });

  it('records nothing for alerts not linked to an incident', async () => {
    const [base] = fixtureEvents();
    const id = await insertAlert(withSubject(base!, { name: 'lonely-1', ip: null }, ['192.0.2.200'], []));
    await recordCorrelationKeys(t.db, [id]);
    expect(await t.db.selectFrom('correlation_keys').selectAll().where('key', '=', 'host:lonely-1').execute()).toEqual([]);
  });
});
