import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { pagerSeverityFor } from '../../../src/integrations/containment-ports.ts';
import { PagerDutyClient } from '../../../src/integrations/pagerduty/pagerduty-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const TRIGGER_EXAMPLE = JSON.parse(fixture('oncall_phone/pagerduty_events_v2_enqueue_trigger_example.json')) as Record<string, unknown> & {
  payload: Record<string, unknown>;
};
const SUCCESS_JSON = fixture('oncall_phone/pagerduty_events_v2_response_202_success_example.json');
const ERROR_JSON = fixture('oncall_phone/pagerduty_events_v2_response_error_example.json');
const OPENAPI = JSON.parse(fixture('oncall_phone/pagerduty_events_v2_openapi_excerpt.json')) as {
  components: { schemas: { Payload: { required: string[]; properties: { severity: { enum: string[] } } } } };
};
/** The 202 fixture with dedup_key changed to the key the test sent (PagerDuty echoes the event's key). */
const successFor = (dedupKey: string): string => JSON.stringify({ ...(JSON.parse(SUCCESS_JSON) as object), dedup_key: dedupKey });

const BASE = 'https://events.pagerduty.com';
const ROUTING_KEY = String(TRIGGER_EXAMPLE.routing_key);
const NOW = new Date('2025-03-01T12:00:00.000Z');
const pd = (extra: Partial<ConstructorParameters<typeof PagerDutyClient>[0]> = {}) =>
  new PagerDutyClient({ routingKeys: { default: ROUTING_KEY, dba: 'routing-key-for-dba-000000000001' }, now: () => NOW, ...extra });
const KEY = 'run_42:page';

type Sent = Record<string, unknown> & { payload?: Record<string, unknown> };
function stageEnqueue(status: number, body: string | undefined, sent: Sent[] = [], headers: Record<string, string> = {}): Sent[] {
  nock(BASE)
    .post('/v2/enqueue', (b: Sent) => {
      sent.push(b);
      return true;
    })
    .reply(status, body, { 'Content-Type': 'application/json', ...headers });
  return sent;
}


useStrictNock();

describe('PagerDutyClient.page', () => {
  it('triggers an event shaped like the official example, with dedup_key = the idempotency key', async () => {
    const sent = stageEnqueue(202, successFor(KEY));
    const r = await pd({ clientUrl: 'https://reflex.example.test' }).page(
      { summary: 'SEV1: ransomware on web-01', severity: 'critical', source: 'web-01', details: { incident: 42 }, links: [{ href: 'https://reflex.example.test/i/42', text: 'Incident 42' }] },
      { idempotencyKey: KEY },
    );
    const body = sent[0] ?? {};
    expect(body).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: KEY,
      payload: { summary: 'SEV1: ransomware on web-01', severity: 'critical', source: 'web-01', timestamp: NOW.toISOString(), custom_details: { incident: 42 } },
      client: 'SENTreflex',
      client_url: 'https://reflex.example.test',
      links: [{ href: 'https://reflex.example.test/i/42', text: 'Incident 42' }],
    });
    // Every field we send is one the official example uses; the payload satisfies the spec.
    for (const k of Object.keys(body)) expect(Object.keys(TRIGGER_EXAMPLE), k).toContain(k);
    for (const k of Object.keys(body.payload ?? {})) expect(Object.keys(TRIGGER_EXAMPLE.payload), k).toContain(k);
    for (const k of OPENAPI.components.schemas.Payload.required) expect(body.payload?.[k], k).toBeDefined();
    expect(r).toEqual({ vendor: 'pagerduty', dedupKey: KEY, raw: JSON.parse(successFor(KEY)) });
  });

  it('returns the dedup_key PagerDuty filed the event under (the 202 fixture as published)', async () => {
    stageEnqueue(202, SUCCESS_JSON);
    const r = await pd().page({ summary: 's', severity: 'warning' }, { idempotencyKey: KEY });
    expect(r.dedupKey).toBe('srv01/HTTP');
  });

  it('sends the same dedup_key on a retry, so PagerDuty folds it into the open incident', async () => {
    const sent = stageEnqueue(202, successFor(KEY));
    stageEnqueue(202, successFor(KEY), sent);
    const c = pd();
    await c.page({ summary: 'SEV1', severity: 'critical' }, { idempotencyKey: KEY });
    await c.page({ summary: 'SEV1', severity: 'critical' }, { idempotencyKey: KEY });
    expect(sent.map((b) => b.dedup_key)).toEqual([KEY, KEY]);
  });

  it("uses the caller's dedup key when given, and hashes keys longer than PagerDuty's 255", async () => {
    const sent = stageEnqueue(202, successFor('srv01/mysql'));
    stageEnqueue(202, SUCCESS_JSON, sent);
    const c = pd();
    await c.page({ summary: 's', severity: 'info', dedupKey: String(TRIGGER_EXAMPLE.dedup_key) }, { idempotencyKey: KEY });
    await c.page({ summary: 's', severity: 'info', dedupKey: 'x'.repeat(300) }, { idempotencyKey: KEY });
    expect(sent[0]?.dedup_key).toBe('srv01/mysql');
    expect(sent[1]?.dedup_key).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('routes by schedule and refuses an unknown one without calling PagerDuty', async () => {
    const sent = stageEnqueue(202, successFor(KEY));
    await pd().page({ summary: 's', severity: 'error', schedule: 'dba' }, { idempotencyKey: KEY });
    expect(sent[0]?.routing_key).toBe('routing-key-for-dba-000000000001');
    const err = await failure(pd().page({ summary: 's', severity: 'error', schedule: 'nobody' }, { idempotencyKey: KEY }));
    expect(err.code).toBe('input.invalid');
  });

  it('truncates summaries to 1024 characters and refuses an empty one or an unknown severity', async () => {
    const sent = stageEnqueue(202, successFor(KEY));
    await pd().page({ summary: 'y'.repeat(5000), severity: 'critical' }, { idempotencyKey: KEY });
    expect(String(sent[0]?.payload?.summary)).toHaveLength(1024);
    expect((await failure(pd().page({ summary: '  ', severity: 'critical' }, { idempotencyKey: KEY }))).code).toBe('input.invalid');
    expect(OPENAPI.components.schemas.Payload.properties.severity.enum).not.toContain('sev1');
    expect((await failure(pd().page({ summary: 's', severity: 'sev1' as 'critical' }, { idempotencyKey: KEY }))).code).toBe('input.invalid');
  });

  it('maps SentinelNet severities onto PagerDuty\'s, all of which the spec allows', () => {
    const mapped = ([1, 2, 3, 4] as const).map(pagerSeverityFor);
    expect(mapped).toEqual(['critical', 'error', 'warning', 'info']);
    for (const s of mapped) expect(OPENAPI.components.schemas.Payload.properties.severity.enum).toContain(s);
  });
});

describe('PagerDutyClient acknowledge, resolve and errors', () => {
  it('acknowledges and resolves by dedup_key', async () => {
    const sent = stageEnqueue(202, successFor(KEY));
    stageEnqueue(202, successFor(KEY), sent);
    const c = pd();
    await c.acknowledge(KEY, { idempotencyKey: 'run_42:ack' });
    const r = await c.resolve(KEY, { idempotencyKey: 'run_42:resolve' });
    expect(sent).toEqual([
      { routing_key: ROUTING_KEY, event_action: 'acknowledge', dedup_key: KEY },
      { routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: KEY },
    ]);
    expect(r.dedupKey).toBe(KEY);
  });

  it('maps the 400 error fixture to a non-retryable rejection that never shows the routing key', async () => {
    stageEnqueue(400, ERROR_JSON);
    const err = await failure(pd().page({ summary: 's', severity: 'critical' }, { idempotencyKey: KEY }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(err.message).toContain('Event object format is unrecognized: JSON parse error');
    expect(`${err.message}${err.safeMessage}${JSON.stringify(err.details)}`).not.toContain(ROUTING_KEY);
  });

  it('maps 429 to a rate limit and 5xx (with the error fixture body) to retryable', async () => {
    stageEnqueue(429, undefined, [], { 'Retry-After': '30' });
    stageEnqueue(502, ERROR_JSON);
    const c = pd();
    const e429 = await failure(c.page({ summary: 's', severity: 'critical' }, { idempotencyKey: KEY }));
    expect([e429.code, e429.retryable, e429.retryAfterMs]).toEqual(['upstream.rate_limited', true, 30_000]);
    const e502 = await failure(c.page({ summary: 's', severity: 'critical' }, { idempotencyKey: KEY }));
    expect([e502.code, e502.retryable]).toEqual(['upstream.unavailable', true]);
  });

  it('needs a routing key to be configured at all', () => {
    expect(() => new PagerDutyClient({ routingKeys: {} })).toThrow(ReflexError);
  });
});
