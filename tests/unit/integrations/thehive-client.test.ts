import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { TheHiveClient, toTheHiveSeverity } from '../../../src/integrations/thehive/thehive-client.ts';
import type { CaseAlertInput } from '../../../src/integrations/ports.ts';

import {
  ALERT_MD,
  ALERT_OBSERVABLE_MD,
  CASE_MD,
  OBSERVABLE_MD,
  PROMOTE_MD,
  asV5,
  docEntity,
  docError,
  docJson,
  duplicateAnswer,
} from '../../helpers/thehive-fixtures.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const BASE = 'https://thehive.example.test';
const KEY = 'thehive-api-key-9e8d7c6b';
const hive = (organisation?: string) => new TheHiveClient({ baseUrl: BASE, apiKey: KEY, ...(organisation ? { organisation } : {}) });
const api = () => nock(BASE, { reqheaders: { authorization: `Bearer ${KEY}` } });

const ALERT: CaseAlertInput = {
  type: 'wazuh',
  source: 'sentinelnet',
  sourceRef: 'fp-4f1c2a',
  title: 'sshd: brute force on web-01',
  description: 'Wazuh rule 5716 fired 12 times from 198.51.100.100',
  severity: 1,
  tags: ['tenant:acme', 'sshd', 'tenant:acme', ' '],
  tlp: 'amber',
  observables: [{ kind: 'ip', value: '198.51.100.100', ioc: true, tags: ['attacker'] }],
};


useStrictNock();

describe('TheHiveClient.createAlert', () => {
  it('posts the alert with TheHive severity, deduped tags and observables', async () => {
    let body: unknown;
    nock(BASE, { reqheaders: { authorization: `Bearer ${KEY}`, 'x-organisation': 'acme' } })
      .post('/api/v1/alert', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(201, JSON.stringify(asV5(docEntity(ALERT_MD, 'alert'))));

    const res = await hive('acme').createAlert(ALERT);

    expect(res).toEqual({ id: '~987889880', created: true });
    expect(body).toEqual({
      type: 'wazuh',
      source: 'sentinelnet',
      sourceRef: 'fp-4f1c2a',
      title: 'sshd: brute force on web-01',
      description: 'Wazuh rule 5716 fired 12 times from 198.51.100.100',
      severity: 4, // our 1 = critical is TheHive's 4 = critical
      tags: ['tenant:acme', 'sshd'],
      tlp: 2,
      observables: [{ dataType: 'ip', data: '198.51.100.100', ioc: true, tags: ['attacker'] }],
    });
  });

  it('inverts severity in both directions', () => {
    expect([1, 2, 3, 4].map((s) => toTheHiveSeverity(s as 1 | 2 | 3 | 4))).toEqual([4, 3, 2, 1]);
  });

  it('treats the duplicate 400 CreateError as already created and returns the existing id', async () => {
    let query: unknown;
    // The v4 alert example as the query finds it: sourceRef, source and type changed to ours, in
    // other letter case (the docs show TheHive lower-casing `type`). A second copy keeps the
    // example's own source/type ("misp server"/"misp event") and must not be taken for ours.
    const existing = { ...asV5(docEntity(ALERT_MD, 'alert')), sourceRef: 'fp-4f1c2a', source: 'SentinelNet', type: 'WAZUH' };
    const otherSource = { ...asV5(docEntity(ALERT_MD, 'alert')), _id: '~1', sourceRef: 'fp-4f1c2a' };
    api()
      .post('/api/v1/alert')
      .reply(400, duplicateAnswer(), { 'Content-Type': 'application/json' })
      .post('/api/v1/query', (b: unknown) => {
        query = b;
        return true;
      })
      .reply(200, JSON.stringify([otherSource, existing]));

    const res = await hive().createAlert(ALERT);

    expect(res).toEqual({ id: '~987889880', created: false });
    expect(query).toEqual({
      query: [
        { _name: 'listAlert' },
        { _name: 'filter', _eq: { _field: 'sourceRef', _value: 'fp-4f1c2a' } },
        { _name: 'page', from: 0, to: 50 },
      ],
    });
  });

  it('reports a conflict when TheHive says duplicate but the query cannot see it', async () => {
    api().post('/api/v1/alert').reply(400, duplicateAnswer()).post('/api/v1/query').reply(200, JSON.stringify([]));
    const err = await failure(hive().createAlert(ALERT));
    expect([err.code, err.retryable]).toEqual(['conflict', false]);
  });

  it('does not mistake another 400 for a duplicate', async () => {
    const badRequest = { ...docError(CASE_MD, 'AuthenticationError'), type: 'BadRequest', message: 'Invalid json' };
    api().post('/api/v1/alert').reply(400, JSON.stringify(badRequest));
    const err = await failure(hive().createAlert(ALERT));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(err.message).toContain('BadRequest: Invalid json');
  });

  it('maps 401 to a non-retryable rejection naming TheHive', async () => {
    api().post('/api/v1/alert').reply(401, JSON.stringify(docError(ALERT_OBSERVABLE_MD, 'AuthenticationError')));
    const err = await failure(hive().createAlert(ALERT));
    expect([err.code, err.retryable, err.safeMessage]).toEqual(['upstream.rejected', false, 'TheHive rejected the API key.']);
    expect(err.message).toContain('AuthenticationError: Authentication failure');
    expect(err.message).not.toContain(KEY);
  });

  it('maps 500 to retryable upstream.unavailable', async () => {
    api().post('/api/v1/alert').reply(500);
    const err = await failure(hive().createAlert(ALERT));
    expect([err.code, err.retryable]).toEqual(['upstream.unavailable', true]);
  });

  it('refuses a type longer than TheHive accepts before calling it', async () => {
    const err = await failure(hive().createAlert({ ...ALERT, type: 'x'.repeat(33) }));
    expect(err.code).toBe('input.invalid');
  });
});

describe('TheHiveClient cases', () => {
  it('promotes an alert and reads the v4 case number', async () => {
    let body: unknown;
    api()
      .post('/api/v1/alert/~987889880/case', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(201, JSON.stringify(docEntity(PROMOTE_MD, 'case')));
    const c = await hive().promoteAlertToCase('~987889880', { caseTemplate: 'SIEM_Alert' });
    expect(body).toEqual({ caseTemplate: 'SIEM_Alert' });
    expect(c).toEqual({ id: '~907709843', number: 126, created: true });
  });

  it('returns the existing case when a retried promotion is refused', async () => {
    const refused = { ...docError(CASE_MD, 'AuthenticationError'), type: 'BadRequest', message: 'Alert already imported' };
    // The v4 alert example with `case` set, as an already-promoted alert reads.
    const promoted = { ...docEntity(ALERT_MD, 'alert'), case: '~907709843' };
    api()
      .post('/api/v1/alert/~987889880/case')
      .reply(400, JSON.stringify(refused))
      .get('/api/v1/alert/~987889880')
      .reply(200, JSON.stringify(promoted));
    expect(await hive().promoteAlertToCase('~987889880')).toEqual({ id: '~907709843', created: false });
  });

  it('passes the refusal on when the alert has no case', async () => {
    const refused = { ...docError(CASE_MD, 'AuthenticationError'), type: 'BadRequest', message: 'Alert is closed' };
    api()
      .post('/api/v1/alert/~987889880/case')
      .reply(400, JSON.stringify(refused))
      .get('/api/v1/alert/~987889880')
      .reply(200, JSON.stringify(docEntity(ALERT_MD, 'alert')));
    const err = await failure(hive().promoteAlertToCase('~987889880'));
    expect(err.code).toBe('upstream.rejected');
    expect(err.message).toContain('Alert is closed');
  });

  it('creates a case with tasks, reading the v5 number field', async () => {
    let body: unknown;
    // The v4 example answered as v5 would: `_id` only and `number` instead of v4's `caseId`.
    const { caseId, ...v4Case } = asV5(docEntity(CASE_MD, 'case'));
    api()
      .post('/api/v1/case', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(201, JSON.stringify({ ...v4Case, number: caseId }));
    const c = await hive().createCase({
      title: 'my first case',
      description: 'my first case description',
      severity: 3,
      tasks: [{ title: 'mytask', description: 'description of my task' }],
    });
    expect(body).toEqual({
      title: 'my first case',
      description: 'my first case description',
      severity: 2,
      tags: [],
      tasks: [{ title: 'mytask', description: 'description of my task' }],
    });
    expect(c).toEqual({ id: '~41644112', number: 4, created: true });
  });
});

describe('TheHiveClient observables and comments', () => {
  it('adds an observable to a case', async () => {
    let body: unknown;
    const created = docJson(OBSERVABLE_MD).filter(Array.isArray).at(-1);
    api()
      .post('/api/v1/case/~41644112/observable', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(201, JSON.stringify(created));
    const res = await hive().addObservable({ kind: 'case', id: '~41644112' }, { kind: 'ip', value: '1.2.3.4', ioc: true, tlp: 'amber+strict' });
    expect(body).toEqual({ dataType: 'ip', data: '1.2.3.4', ioc: true, tlp: 4 });
    expect(res).toEqual({ ids: ['~4104'] });
  });

  it('adds an observable to an alert', async () => {
    const created = docJson(ALERT_OBSERVABLE_MD).find(Array.isArray);
    api().post('/api/v1/alert/~987889880/observable', { dataType: 'hostname', data: 'server.local', message: 'sample description' }).reply(201, JSON.stringify(created));
    const res = await hive().addObservable(
      { kind: 'alert', id: '~987889880' },
      { kind: 'hostname', value: 'server.local', message: 'sample description' },
    );
    expect(res).toEqual({ ids: ['~1564784'] });
  });

  it('treats a duplicate observable as present', async () => {
    const dup = { ...docError(CASE_MD, 'AuthenticationError'), type: 'CreateError', message: 'Observable ip:1.2.3.4 already exists' };
    api().post('/api/v1/case/~41644112/observable').reply(400, JSON.stringify(dup));
    expect(await hive().addObservable({ kind: 'case', id: '~41644112' }, { kind: 'ip', value: '1.2.3.4' })).toEqual({ ids: [] });
  });

  // No comment or task-log response exists in the fixtures; the client ignores those bodies, so
  // these answer 201 with no body and assert what we send.
  it('comments on a case and logs to a task', async () => {
    api()
      .post('/api/v1/case/~41644112/comment', { message: 'Blocked 198.51.100.100 at the edge.' })
      .reply(201)
      .post('/api/v1/task/~555/log', { message: 'Step 2 done' })
      .reply(201);
    await hive().addComment({ kind: 'case', id: '~41644112' }, 'Blocked 198.51.100.100 at the edge.');
    await hive().addTaskLog('~555', 'Step 2 done');
  });

  it('refuses empty comments', async () => {
    expect((await failure(hive().addComment({ kind: 'alert', id: '~1' }, '  '))).code).toBe('input.invalid');
  });
});
