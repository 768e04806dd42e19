import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

const KINDS = playbook(`
id: kinds
name: Every step kind
version: 1
trigger: { manual: true }
inputs:
  ip: { type: ip }
  token: { type: string, sensitive: true, default: "hunter2-secret-value" }
steps:
  - id: call_api
    action: http.request
    with:
      method: POST
      url: "https://api.vendor.test/block"
      body: { ip: "\${{ inputs.ip }}", token: "\${{ inputs.token }}" }
  - id: score
    script:
      javascript: |
        log('scoring ' + input.ip);
        return { score: input.status === 200 ? 90 : 10 };
    with: { ip: "\${{ inputs.ip }}", status: "\${{ steps.call_api.output.status }}" }
  - id: echo
    script: { file: echo-input.sh }
    with: { ip: "\${{ inputs.ip }}" }
  - id: branch
    condition:
      if: steps.score.output.score >= 70
      then:
        - id: high
          notify: { channel: incident, text: "hostile \${{ inputs.ip }}" }
      else:
        - id: low
          notify: { channel: incident, text: benign }
  - id: fan
    parallel:
      a:
        - id: pa
          script: { javascript: "return 'a'" }
      b:
        - id: pb
          script: { javascript: "return 'b'" }
  - id: pause
    wait: { duration: 1s }
  - id: skipped_one
    if: "false"
    notify: { channel: incident, text: never }
`);

const RETRIES = playbook(`
id: retries
name: Retries and on_error
version: 1
trigger: { manual: true }
steps:
  - id: flaky
    action: http.request
    with: { method: GET, url: "https://api.vendor.test/flaky" }
    retry: { max_attempts: 3, delay: 1s, backoff: fixed }
  - id: bad_continue
    action: http.request
    with: { method: GET, url: "https://api.vendor.test/missing" }
    on_error: continue
  - id: bad_goto
    action: http.request
    with: { method: GET, url: "https://api.vendor.test/missing" }
    on_error: { goto: recover }
  - id: never_runs
    script: { javascript: "return 1" }
  - id: recover
    script: { javascript: "return 'recovered'" }
  - id: not_configured
    action: firewall.block
    with: { ip: 198.51.100.7 }
  - id: after_failure
    script: { javascript: "return 'unreachable'" }
`);

const REVERT = playbook(`
id: revert
name: Block then unblock
version: 1
trigger: { manual: true }
inputs:
  ip: { type: ip }
steps:
  - id: block_ip
    action: firewall.block
    with: { ip: "\${{ inputs.ip }}", reason: test }
  - id: unblock_later
    revert: { step: block_ip, after: 1s }
  - id: wait_event
    wait:
      until: event.event_type = 'auth.success' and $inputs.ip in event.observables.ip
      timeout: 1h
`);

const TRIGGERED = playbook(`
id: triggered
name: Triggered
version: 1
trigger:
  event_type: auth.bruteforce
  severity: [1, 2]
  when: event.host.name = 'web-01'
inputs:
  ip: { type: ip, from: "event.observables.ip[0]" }
steps:
  - id: note
    script: { javascript: "return input.ip" }
    with: { ip: "\${{ inputs.ip }}" }
`);

const WAITING = playbook(`
id: waiting
name: Waits a long time
version: 1
trigger: { manual: true }
steps:
  - id: long_wait
    wait: { duration: 1h }
  - id: after_wait
    script: { javascript: "return 'after'" }
`);

function event(overrides: Record<string, unknown> = {}) {
  return {
    version: '1.0',
    client_id: 'acme',
    source: 'wazuh',
    source_event_id: '1',
    event_type: 'auth.bruteforce',
    severity: 2,
    timestamp: '2026-11-21T10:00:00Z',
    rule: null,
    host: { name: 'web-01', ip: null },
    principal: { user: 'ana' },
    process: null,
    file: null,
    vulnerability: null,
    observables: { ip: ['203.0.113.9'], domain: [], url: [], hash: [] },
    raw: {},
    ...overrides,
  };
}

let h: Harness;
beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  h = await createHarness({ playbooks: [KINDS, RETRIES, REVERT, TRIGGERED, WAITING] });
});
afterAll(async () => {
  await h.stop();
  nock.cleanAll();
  nock.enableNetConnect();
});
afterEach(() => {
  h.actions.unregister('firewall.block');
  h.actions.unregister('firewall.unblock');
});

describe('step kinds', () => {
  it('runs action, script (js and bash), condition, notify, parallel, wait and skipped steps, logging each', async () => {
    const incidentId = await h.incident();
    const api = nock('https://api.vendor.test')
      .post('/block', { ip: '203.0.113.9', token: 'hunter2-secret-value' })
      .matchHeader('idempotency-key', /^reflex-[0-9a-f-]{36}-call_api$/)
      .reply(200, { blocked: true });
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'kinds', inputs: { ip: '203.0.113.9' }, startedBy: 'test', manual: true, incidentId });
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });
    expect(api.isDone()).toBe(true);

    const steps = Object.fromEntries((await h.steps(run.id)).map((s) => [s.step_id, s]));
    expect(Object.keys(steps).sort()).toEqual(['branch', 'call_api', 'echo', 'fan', 'high', 'pa', 'pause', 'pb', 'score', 'skipped_one'].sort());
    expect(steps['low']).toBeUndefined();
    expect(steps['score']!.output).toEqual({ score: 90 });
    expect((steps['echo']!.output as { env: Record<string, string> }).env['REFLEX_INPUT_IP']).toBe('203.0.113.9');
    expect(steps['branch']).toMatchObject({ status: 'succeeded', output: { branch: 'then' } });
    expect(steps['pa']!.output).toBe('a');
    expect(steps['pb']!.output).toBe('b');
    expect(steps['fan']).toMatchObject({ status: 'succeeded', output: { branches: { a: 'succeeded', b: 'succeeded' } } });
    expect(steps['pause']!.status).toBe('succeeded');
    expect(steps['skipped_one']!.status).toBe('skipped');
    expect(h.chat.posts.map((p) => p.message.text)).toContain('hostile 203.0.113.9');

    // The execution log masks the sensitive input, and has start, end and duration.
    const log = await h.engine.runs.log(run.id);
    const call = log!.steps.find((s) => s.step_id === 'call_api')!;
    expect(call.input).toEqual({ method: 'POST', url: 'https://api.vendor.test/block', body: { ip: '203.0.113.9', token: '[masked]' } });
    expect(JSON.stringify(log)).not.toContain('hunter2-secret-value');
    expect(call.started_at).toBeInstanceOf(Date);
    expect(call.finished_at!.getTime()).toBeGreaterThanOrEqual(call.started_at!.getTime());
    expect(typeof call.duration_ms).toBe('number');
    expect(log!.steps.find((s) => s.step_id === 'score')!.logs).toEqual(['scoring 203.0.113.9']);

    // Every step appended a timeline entry to the incident, and an audit row.
    const timeline = await h.db.selectFrom('timeline_entries').select(['kind', 'text']).where('incident_id', '=', incidentId).execute();
    const stepEntries = timeline.filter((t) => t.kind.startsWith('playbook.step.'));
    expect(stepEntries).toHaveLength(10);
    expect(timeline.map((t) => t.kind)).toEqual(expect.arrayContaining(['playbook.run.started', 'playbook.run.succeeded']));
    const audit = await h.db.selectFrom('audit_log').select(['action', 'target']).where('target', 'like', `run:${run.id}%`).execute();
    expect(audit.filter((a) => /^run\.step\.(succeeded|skipped)$/.test(a.action))).toHaveLength(10);
    expect(JSON.stringify(await h.db.selectFrom('audit_log').select('delta').execute())).not.toContain('hunter2-secret-value');
  });

  it('retries a retryable failure with the same idempotency key, and applies on_error continue, goto and fail', async () => {
    const keys: string[] = [];
    const api = nock('https://api.vendor.test')
      .get('/flaky')
      .times(2)
      .reply(function () {
        keys.push(String(this.req.headers['idempotency-key']));
        return [503, 'busy'];
      })
      .get('/flaky')
      .reply(function () {
        keys.push(String(this.req.headers['idempotency-key']));
        return [200, { ok: true }];
      })
      .get('/missing')
      .times(2)
      .reply(404, 'no');
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'retries', inputs: {}, startedBy: 'test', manual: true });
    const done = await h.waitForRun(run.id);
    expect(api.isDone()).toBe(true);
    expect(keys).toHaveLength(3);
    expect(new Set(keys)).toEqual(new Set([`reflex-${run.id}-flaky`]));

    const steps = await h.steps(run.id);
    expect(steps.filter((s) => s.step_id === 'flaky').map((s) => [s.attempt, s.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'succeeded'],
    ]);
    const byId = Object.fromEntries(steps.map((s) => [`${s.step_id}`, s]));
    // A 404 cannot succeed on retry: one attempt, despite the default of three.
    expect(steps.filter((s) => s.step_id === 'bad_continue')).toHaveLength(1);
    expect(byId['bad_continue']!.status).toBe('failed');
    expect(byId['bad_goto']!.status).toBe('failed');
    expect(byId['never_runs']).toBeUndefined();
    expect(byId['recover']).toMatchObject({ status: 'succeeded', output: 'recovered' });
    expect(byId['not_configured']).toMatchObject({ status: 'failed', error: 'action firewall.block is not configured on this server' });
    expect(steps.filter((s) => s.step_id === 'not_configured')).toHaveLength(1);
    expect(byId['after_failure']).toBeUndefined();
    expect(done.status).toBe('failed');
    expect(done.error).toContain('not_configured');
  });

  it('schedules a revert as a delayed job that undoes the containment once, and resumes a wait on a matching event', async () => {
    const calls: { path: string; key: string; ip: unknown }[] = [];
    for (const action of ['firewall.block', 'firewall.unblock'] as const) {
      h.actions.register(action, async (input, ctx) => {
        const res = await fetch(`https://firewall.test/${action}`, { method: 'POST', headers: { 'idempotency-key': ctx.idempotencyKey, 'content-type': 'application/json' }, body: JSON.stringify(input), signal: ctx.signal });
        return res.json();
      });
    }
    nock('https://firewall.test')
      .post(/firewall\.(un)?block/)
      .times(2)
      .reply(function (path, body) {
        calls.push({ path, key: String(this.req.headers['idempotency-key']), ip: (body as { ip: unknown }).ip });
        return [200, { ok: true }];
      });
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'revert', inputs: { ip: '198.51.100.23' }, startedBy: 'test', manual: true });
    await h.waitForRun(run.id, ['waiting']);
    const revert = await h.db.selectFrom('run_steps').select(['status', 'output']).where('run_id', '=', run.id).where('step_id', '=', 'unblock_later').executeTakeFirstOrThrow();
    expect(revert).toMatchObject({ status: 'succeeded', output: { scheduled: true, action: 'firewall.unblock', input: { ip: '198.51.100.23', reason: 'reverted by SENTreflex' } } });

    // An event of another kind does not resume the wait; the matching one does and is its output.
    expect(await h.engine.waits.deliverEvent(h.tenantId, event({ event_type: 'auth.failed' }))).toEqual([]);
    const success = event({ event_type: 'auth.success', observables: { ip: ['198.51.100.23'], domain: [], url: [], hash: [] } });
    expect(await h.engine.waits.deliverEvent(h.tenantId, success)).toEqual([run.id]);
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });
    const wait = await h.db.selectFrom('run_steps').select(['output']).where('run_id', '=', run.id).where('step_id', '=', 'wait_event').executeTakeFirstOrThrow();
    expect(wait.output).toMatchObject({ event_type: 'auth.success' });

    // The undo outlives the run and fires once.
    await vi.waitFor(async () => {
      const r = await engineDb(h.db).selectFrom('run_reverts').select('status').where('run_id', '=', run.id).executeTakeFirstOrThrow();
      expect(r.status).toBe('succeeded');
    }, { timeout: 15_000, interval: 50 });
    expect(calls).toEqual([
      { path: '/firewall.block', key: `reflex-${run.id}-block_ip`, ip: '198.51.100.23' },
      { path: '/firewall.unblock', key: `reflex-${run.id}-unblock_later-revert`, ip: '198.51.100.23' },
    ]);
  });

  it('starts event-triggered runs once per (alert, playbook) and only when the trigger matches', async () => {
    const first = await h.service.onAlert({ tenantId: h.tenantId, alertId: '00000000-0000-4000-8000-000000000001', incidentId: null, event: event() });
    const again = await h.service.onAlert({ tenantId: h.tenantId, alertId: '00000000-0000-4000-8000-000000000001', incidentId: null, event: event() });
    expect(first.runIds).toHaveLength(1);
    expect(again.runIds).toEqual(first.runIds);
    expect(await h.waitForRun(first.runIds[0]!)).toMatchObject({ status: 'succeeded' });
    const note = await h.db.selectFrom('run_steps').select('output').where('run_id', '=', first.runIds[0]!).executeTakeFirstOrThrow();
    expect(note.output).toBe('203.0.113.9');
    const wrongSeverity = await h.service.onAlert({ tenantId: h.tenantId, alertId: '00000000-0000-4000-8000-000000000002', incidentId: null, event: event({ severity: 3 }) });
    const wrongHost = await h.service.onAlert({ tenantId: h.tenantId, alertId: '00000000-0000-4000-8000-000000000003', incidentId: null, event: event({ host: { name: 'db-01', ip: null } }) });
    expect(wrongSeverity.runIds).toEqual([]);
    expect(wrongHost.runIds).toEqual([]);
    const count = await h.db.selectFrom('playbook_runs').select((eb) => eb.fn.countAll<string>().as('n')).where('playbook_id', '=', 'triggered').executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });

  it('settles a step exactly once when two workers race to complete it', async () => {
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'waiting', inputs: {}, startedBy: 'test', manual: true });
    await h.waitForRun(run.id, ['waiting']);
    await Promise.all([
      h.engine.steps.settle(run.id, 'long_wait', 1, { status: 'succeeded', output: { by: 'one' } }, 'test'),
      h.engine.steps.settle(run.id, 'long_wait', 1, { status: 'succeeded', output: { by: 'two' } }, 'test'),
      h.engine.steps.settle(run.id, 'long_wait', 1, { status: 'succeeded', output: { by: 'three' } }, 'test'),
    ]);
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });
    const settled = await h.db.selectFrom('run_steps').select(['output']).where('run_id', '=', run.id).where('step_id', '=', 'long_wait').execute();
    expect(settled).toHaveLength(1);
    expect(['one', 'two', 'three']).toContain((settled[0]!.output as { by: string }).by);
    const audits = await h.db.selectFrom('audit_log').select('action').where('target', '=', `run:${run.id}/step:long_wait`).execute();
    expect(audits.filter((a) => a.action !== 'run.step.wait')).toHaveLength(1);
    const after = await h.db.selectFrom('run_steps').select(['attempt']).where('run_id', '=', run.id).where('step_id', '=', 'after_wait').execute();
    expect(after).toHaveLength(1);
  });

  it('fans a playbook out to every tenant, one run each', async () => {
    const { ensureTenant } = await import('../../../src/app/runtime.ts');
    await ensureTenant(h.db, 'globex', 'Globex');
    nock('https://api.vendor.test').post('/block').times(2).reply(200, {});
    const out = await h.engine.runs.fanOut({ playbookId: 'kinds', tenants: 'all', inputs: { ip: '192.0.2.10' }, startedBy: 'test' });
    expect(out.runs.map((r) => r.tenantId).sort()).toEqual(['acme', 'globex']);
    for (const r of out.runs) await h.waitForRun(r.runId!);
    const progress = await h.engine.runs.batchProgress(out.batchId);
    expect(progress.map((p) => [p.tenantId, p.status])).toEqual([
      ['acme', 'succeeded'],
      ['globex', 'succeeded'],
    ]);
  });
});
