import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/app/config.ts';
import { ReflexError } from '../../../src/errors.ts';
import { parseTenantConfig } from '../../../src/pipeline/tenant-config.ts';

const PASSWORD = 'p@ss:w0rd-not-for-logs';

function configError(env: Record<string, string>): ReflexError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ReflexError);
    return err as ReflexError;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('SMTP_URL and SMTP_FROM', () => {
  it('are off unless set', () => {
    expect(loadConfig({}).smtp).toBeUndefined();
  });

  it('parse smtp:// (STARTTLS, port 587) and smtps:// (implicit TLS, port 465) with percent-encoded credentials', () => {
    expect(loadConfig({ SMTP_URL: 'smtp://mail.acme.example', SMTP_FROM: 'sentreflex@acme.example' }).smtp).toEqual({
      host: 'mail.acme.example',
      port: 587,
      secure: false,
      auth: undefined,
      from: { name: undefined, address: 'sentreflex@acme.example' },
    });
    const user = encodeURIComponent('reflex@acme.example');
    expect(loadConfig({ SMTP_URL: `smtps://${user}:${encodeURIComponent(PASSWORD)}@mail.acme.example`, SMTP_FROM: 'SENTreflex SOC <soc@acme.example>' }).smtp).toEqual({
      host: 'mail.acme.example',
      port: 465,
      secure: true,
      auth: { user: 'reflex@acme.example', password: PASSWORD },
      from: { name: 'SENTreflex SOC', address: 'soc@acme.example' },
    });
    expect(loadConfig({ SMTP_URL: 'smtp://127.0.0.1:2525', SMTP_FROM: 'a@example.test' }).smtp).toMatchObject({ host: '127.0.0.1', port: 2525 });
  });

  it.each([
    [{ SMTP_URL: `https://reflex:${encodeURIComponent(PASSWORD)}@mail.acme.example`, SMTP_FROM: 'a@example.test' }, 'SMTP_URL', /smtp:\/\/ .* or smtps:\/\//],
    [{ SMTP_URL: `smtp://reflex:${encodeURIComponent(PASSWORD)}@mail.acme.example/x?pool=true`, SMTP_FROM: 'a@example.test' }, 'SMTP_URL', /nothing after the host/],
    [{ SMTP_URL: 'not a url', SMTP_FROM: 'a@example.test' }, 'SMTP_URL', /SMTP_URL/],
    [{ SMTP_URL: 'smtp://mail.acme.example', SMTP_FROM: 'sentreflex' }, 'SMTP_FROM', /must be an e-mail address/],
    [{ SMTP_URL: 'smtp://mail.acme.example', SMTP_FROM: 'a@example.test\r\nBcc: all@evil.example' }, 'SMTP_FROM', /CR or LF/],
    [{ SMTP_URL: 'smtp://mail.acme.example' }, 'SMTP_FROM', /required when SMTP_URL is set/],
    [{ SMTP_FROM: 'a@example.test' }, 'SMTP_URL', /required when SMTP_FROM is set/],
  ])('refuses %j naming %s, without echoing the password', (env, variable, text) => {
    const err = configError(env);
    expect(err.code).toBe('config.invalid');
    expect(err.details).toEqual({ variables: expect.arrayContaining([variable]) as unknown });
    expect(err.message).toContain(`${variable}:`);
    expect(err.message).toMatch(text);
    expect(`${err.message} ${err.safeMessage}`).not.toContain(encodeURIComponent(PASSWORD));
  });
});

describe('notify.email_to', () => {
  it('is optional and keeps valid addresses', () => {
    expect(parseTenantConfig('t', {}).notify.email_to).toBeUndefined();
    expect(parseTenantConfig('t', { notify: { email_to: ['soc@acme.example', 'oncall+sev1@acme.example'] } }).notify.email_to).toEqual(['soc@acme.example', 'oncall+sev1@acme.example']);
  });

  it.each([['not-an-address'], ['soc@acme.example\r\nBcc: all@evil.example'], ['SOC <soc@acme.example>']])('refuses %j with the path of the bad entry', (bad) => {
    expect(() => parseTenantConfig('t', { notify: { email_to: ['ok@acme.example', bad] } })).toThrow(/notify\.email_to\.1/);
  });

  it('refuses more than 50 recipients', () => {
    const many = Array.from({ length: 51 }, (_, i) => `r${i}@acme.example`);
    expect(() => parseTenantConfig('t', { notify: { email_to: many } })).toThrow(/at most 50/);
  });
});
