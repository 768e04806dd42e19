import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHttpRequestExecutor } from '../../../src/engine/actions/http-request.ts';
import type { ActionContext } from '../../../src/engine/actions/registry.ts';
import { ReflexError } from '../../../src/errors.ts';

function ctx(over: Partial<ActionContext> = {}): ActionContext {
  const secrets: Record<string, string> = { 'kiosk.token': 'tok-123456', 'hook.url': 'https://hooks.vendor.test/T1/secret-path' };
  return {
    tenantId: 'acme',
    runId: 'r1',
    stepId: 'lock',
    idempotencyKey: 'reflex-r1-lock',
    attempt: 1,
    secrets: {
      get: async (n) => secrets[n],
      require: async (n) => {
        if (!secrets[n]) throw new ReflexError('config.invalid', `secret ${n} is not set`, { retryable: false });
        return secrets[n]!;
      },
    },
    config: {},
    signal: new AbortController().signal,
    timeoutMs: 5_000,
    expressionContext: { inputs: { site: 'hq' } },
    log: () => undefined,
    ...over,
  };
}

const exec = createHttpRequestExecutor({ allowPrivateNetworks: false });

async function failure(p: Promise<unknown>): Promise<ReflexError> {
  const e = await p.catch((err: unknown) => err);
  if (!(e instanceof ReflexError)) throw new Error(`expected a ReflexError, got ${String(e)}`);
  return e;
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('http.request', () => {
  it('sends the JSON body, the vault bearer token and the idempotency key, and checks success with JSONata', async () => {
    const scope = nock('https://kiosk.vendor.test')
      .post('/sites/hq/lockdown', { mode: 'lockdown' })
      .matchHeader('authorization', 'Bearer tok-123456')
      .matchHeader('idempotency-key', 'reflex-r1-lock')
      .reply(200, { locked: true });
    const out = await exec({ method: 'POST', url: 'https://kiosk.vendor.test/sites/hq/lockdown', body: { mode: 'lockdown' }, secret: 'kiosk.token', success: 'response.status = 200 and response.body.locked = true and inputs.site = "hq"' }, ctx());
    expect(out).toMatchObject({ status: 200, body: { locked: true } });
    expect(scope.isDone()).toBe(true);
  });

  it('fails a refused success check, retryable only for 5xx', async () => {
    nock('https://api.vendor.test').get('/a').reply(200, { locked: false }).get('/b').reply(503, 'down');
    const soft = await failure(exec({ method: 'GET', url: 'https://api.vendor.test/a', success: 'response.body.locked = true' }, ctx()));
    expect(soft).toMatchObject({ code: 'upstream.rejected', retryable: false });
    const hard = await failure(exec({ method: 'GET', url: 'https://api.vendor.test/b' }, ctx()));
    expect(hard).toMatchObject({ code: 'upstream.unavailable', retryable: true });
  });

  it('follows a redirect on the same host and refuses one to another host, keeping the token at home', async () => {
    const same = nock('https://api.vendor.test').get('/old').reply(302, '', { location: '/new' }).get('/new').reply(200, 'ok');
    expect(await exec({ method: 'GET', url: 'https://api.vendor.test/old', secret: 'kiosk.token' }, ctx())).toMatchObject({ status: 200, body: 'ok' });
    expect(same.isDone()).toBe(true);
    nock('https://api.vendor.test').get('/away').reply(302, '', { location: 'https://evil.test/steal' });
    const evil = nock('https://evil.test').get('/steal').reply(200, 'thanks');
    const e = await failure(exec({ method: 'GET', url: 'https://api.vendor.test/away', secret: 'kiosk.token' }, ctx()));
    expect(e.message).toMatch(/redirected to https:\/\/evil\.test, another host; refused/);
    expect(e.retryable).toBe(false);
    expect(evil.isDone()).toBe(false);
  });

  it('takes the URL from the vault with secret:, and refuses metadata and (unless allowed) private addresses', async () => {
    const hook = nock('https://hooks.vendor.test').post('/T1/secret-path').reply(200, {});
    await exec({ method: 'POST', url: 'secret:hook.url', body: 'hi' }, ctx());
    expect(hook.isDone()).toBe(true);
    expect((await failure(exec({ method: 'GET', url: 'http://169.254.169.254/latest/meta-data' }, ctx()))).message).toMatch(/metadata/);
    expect((await failure(exec({ method: 'GET', url: 'http://10.0.0.5/admin' }, ctx()))).message).toMatch(/private or loopback/);
    expect((await failure(exec({ method: 'TRACE', url: 'https://api.vendor.test/' }, ctx()))).code).toBe('input.invalid');
    const allowed = createHttpRequestExecutor({ allowPrivateNetworks: true });
    expect((await failure(allowed({ method: 'GET', url: 'http://[fe80::1]/' }, ctx()))).message).toMatch(/metadata/);
  });
});
