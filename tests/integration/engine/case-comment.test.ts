import { randomUUID } from 'node:crypto';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCaseExecutors } from '../../../src/engine/actions/case-actions.ts';
import { DatabaseIdempotencyStore } from '../../../src/engine/actions/database-idempotency-store.ts';
import type { ActionExecutor } from '../../../src/engine/actions/registry.ts';
import { TenantIntegrations } from '../../../src/engine/actions/tenant-integrations.ts';
import { ReflexError } from '../../../src/errors.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

/**
 * `case.comment` through the engine: the comment lands on the run's incident timeline and, when
 * the incident's alert is linked to a TheHive case, on that case (`POST /api/v1/case/{id}/comment`,
 * nock). A retried step, whether TheHive failed the first attempt or the worker died after
 * everything was done, leaves one timeline entry and one posted comment.
 *
 * No TheHive comment fixture exists in ../shared/fixtures: the answer follows TheHive 5's
 * OutputComment (docs.strangebee.com, TheHive API reference, "Create a comment in a case":
 * `_id`, `_type`, `createdBy`, `createdAt`, `message`, `isEdited`).
 */

const HIVE = 'https://thehive.example.test';
const API_KEY = 'thehive-api-key-0123456789';
const CASE_ID = '~8400';

const CASE_NOTE = playbook(`
id: case-note
name: Case note
version: 1
trigger: { manual: true }
inputs:
  host: { type: string }
steps:
  - id: record_on_case
    action: case.comment
    with:
      text: "Contained \${{ inputs.host }}: isolated and credentials rotated."
    retry: { max_attempts: 2, delay: 1s, backoff: fixed }
`);

let h: Harness;
let comment: ActionExecutor;
beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  h = await createHarness({ playbooks: [CASE_NOTE] });
  await h.db.updateTable('tenants').set({ config: JSON.stringify({ thehive: { url: HIVE, organisation: 'acme-soc' } }) }).where('id', '=', h.tenantId).execute();
  await h.vault.set(h.tenantId, 'thehive.api_key', API_KEY, 'test');
  const integrations = new TenantIntegrations({ idempotencyStore: (t) => new DatabaseIdempotencyStore(h.db, t), mailer: () => undefined });
  comment = createCaseExecutors({ db: h.db, integrations })['case.comment']!;
});
afterAll(async () => {
  await h.stop();
  nock.cleanAll();
  nock.enableNetConnect();
});
afterEach(() => {
  h.actions.unregister('case.comment');
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

/** An incident whose alert the pipeline linked to TheHive case `caseId` (none: not linked). */
async function incidentWithCase(caseId?: string): Promise<string> {
  const incidentId = await h.incident();
  await h.db
    .insertInto('alerts')
    .values({
      tenant_id: h.tenantId,
      fingerprint: randomUUID(),
      source: 'wazuh',
      event_type: 'malware.detected',
      severity: 1,
      title: 'Ransomware on web-01',
      first_seen: new Date(),
      last_seen: new Date(),
      event: JSON.stringify({ event_type: 'malware.detected' }),
      incident_id: incidentId,
      case_refs: JSON.stringify(caseId ? { thehive: { alertId: '~4128', caseId } } : {}),
    })
    .execute();
  return incidentId;
}

function stageHive(replies: [number, unknown][]): { bodies: unknown[]; headers: Record<string, unknown>[] } {
  const seen = { bodies: [] as unknown[], headers: [] as Record<string, unknown>[] };
  for (const [status, body] of replies) {
    nock(HIVE)
      .post(`/api/v1/case/${encodeURIComponent(CASE_ID)}/comment`)
      .reply(function (_uri, reqBody) {
        seen.bodies.push(reqBody);
        seen.headers.push(this.req.headers);
        return [status, JSON.stringify(body), { 'Content-Type': 'application/json' }];
      });
  }
  return seen;
}

const OUTPUT_COMMENT = (message: string) => ({ _id: '~12296', _type: 'Comment', createdBy: 'sentreflex@acme-soc', createdAt: 1741080000000, message, isEdited: false });
const TEXT = 'Contained web-01: isolated and credentials rotated.';

async function caseComments(incidentId: string) {
  return h.db.selectFrom('timeline_entries').select(['kind', 'actor', 'text', 'data']).where('incident_id', '=', incidentId).where('kind', '=', 'case.comment').execute();
}

describe('case.comment', () => {
  it('writes the timeline entry and posts to TheHive once, even when the worker dies after both and the step runs again', async () => {
    h.actions.register('case.comment', async (input, ctx) => {
      const out = await comment(input, ctx);
      if (ctx.attempt === 1) throw new ReflexError('upstream.unavailable', 'worker lost after the side effects', { retryable: true });
      return out;
    });
    const incidentId = await incidentWithCase(CASE_ID);
    const hive = stageHive([[201, OUTPUT_COMMENT(TEXT)]]);
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'case-note', inputs: { host: 'web-01' }, startedBy: 'test', manual: true, incidentId });
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });

    const steps = await h.steps(run.id);
    expect(steps.map((s) => [s.attempt, s.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(hive.bodies).toEqual([{ message: TEXT }]);
    expect(hive.headers[0]).toMatchObject({ authorization: `Bearer ${API_KEY}`, 'x-organisation': 'acme-soc' });
    const entries = await caseComments(incidentId);
    expect(entries).toEqual([{ kind: 'case.comment', actor: 'playbook:case-note', text: TEXT, data: { runId: run.id, stepId: 'record_on_case', idempotencyKey: `reflex-${run.id}-record_on_case` } }]);
    expect(steps[1]?.output).toEqual({ incident_id: incidentId, timeline: { entry_id: expect.any(String), reused: true }, thehive: { case_id: CASE_ID, posted: true, reused: true } });
    const audit = await h.db.selectFrom('audit_log').select(['action', 'target']).where('action', 'like', 'case.comment%').where('delta', '@>', JSON.stringify({ runId: run.id }) as never).execute();
    expect(audit.map((a) => a.action).sort()).toEqual(['case.comment', 'case.comment.thehive']);
    expect(JSON.stringify(steps)).not.toContain(API_KEY);
  });

  it('TheHive down on the first attempt: the retry posts it, and the timeline still has one entry', async () => {
    h.actions.register('case.comment', comment);
    const incidentId = await incidentWithCase(CASE_ID);
    const hive = stageHive([
      [503, { type: 'ServiceUnavailable', message: 'busy' }],
      [201, OUTPUT_COMMENT(TEXT)],
    ]);
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'case-note', inputs: { host: 'web-01' }, startedBy: 'test', manual: true, incidentId });
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });
    const steps = await h.steps(run.id);
    expect(steps.map((s) => [s.attempt, s.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(steps[0]?.error).toContain('TheHive answered 503');
    expect(hive.bodies).toEqual([{ message: TEXT }, { message: TEXT }]);
    expect(await caseComments(incidentId)).toHaveLength(1);
    expect(steps[1]?.output).toMatchObject({ timeline: { reused: true }, thehive: { case_id: CASE_ID, posted: true, reused: false } });
  });

  it('an incident not linked to TheHive gets the timeline entry only; a run without incident or case fails once', async () => {
    h.actions.register('case.comment', comment);
    const incidentId = await incidentWithCase();
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'case-note', inputs: { host: 'web-02' }, startedBy: 'test', manual: true, incidentId });
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });
    const [step] = await h.steps(run.id);
    expect(step?.output).toMatchObject({ incident_id: incidentId, timeline: { reused: false }, thehive: { case_id: null, posted: false } });
    expect(await caseComments(incidentId)).toHaveLength(1);

    const orphan = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'case-note', inputs: { host: 'web-03' }, startedBy: 'test', manual: true });
    expect(await h.waitForRun(orphan.id)).toMatchObject({ status: 'failed' });
    const steps = await h.steps(orphan.id);
    expect(steps).toHaveLength(1);
    expect(steps[0]?.error).toContain('has no incident and no TheHive case');
  });
});
