import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../src/app/config.ts';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { verifyIdToken, type Jwk } from '../../../src/bot/sentchat/oidc-id-token.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

/**
 * SENTchat's OpenID Connect sign-in against a stand-in issuer served by this test on 127.0.0.1:
 * discovery, an authorize endpoint that approves at once, a token endpoint that checks the PKCE
 * verifier and the redirect URI and redeems each code once, and a JWKS. The stand-in can be told
 * to misbehave (wrong nonce, foreign key, expired, another audience, `alg: none`).
 */
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

const CLIENT_ID = 'sentreflex-test';
const SUB = 'auth0|42';
type Mode = 'good' | 'wrong-nonce' | 'foreign-key' | 'expired' | 'other-audience' | 'alg-none';

const issuerKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const foreignKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | null, alg: string | null = 'sha256'): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const sig = key ? sign(alg, Buffer.from(input), key).toString('base64url') : '';
  return `${input}.${sig}`;
}

let issuer = '';
let mode: Mode = 'good';
const codes = new Map<string, { nonce: string; challenge: string; redirectUri: string; clientId: string }>();
const authorizeParams: URLSearchParams[] = [];
const tokenRequests: URLSearchParams[] = [];

const stand = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', issuer);
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === '/.well-known/openid-configuration') {
    return json(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, code_challenge_methods_supported: ['S256'], response_types_supported: ['code'] });
  }
  if (url.pathname === '/jwks') return json(200, { keys: [{ ...(issuerKey.publicKey.export({ format: 'jwk' }) as object), kid: 'k1', use: 'sig', alg: 'RS256' }] });
  if (url.pathname === '/authorize') {
    authorizeParams.push(url.searchParams);
    const code = randomBytes(16).toString('hex');
    codes.set(code, { nonce: url.searchParams.get('nonce')!, challenge: url.searchParams.get('code_challenge')!, redirectUri: url.searchParams.get('redirect_uri')!, clientId: url.searchParams.get('client_id')! });
    const back = new URL(url.searchParams.get('redirect_uri')!);
    back.searchParams.set('code', code);
    back.searchParams.set('state', url.searchParams.get('state')!);
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const p = new URLSearchParams(body);
      tokenRequests.push(p);
      const grant = codes.get(p.get('code') ?? '');
      codes.delete(p.get('code') ?? '');
      const verifierOk = grant && createHash('sha256').update(p.get('code_verifier') ?? '').digest('base64url') === grant.challenge;
      if (!grant || !verifierOk || p.get('redirect_uri') !== grant.redirectUri || p.get('client_id') !== grant.clientId) return json(400, { error: 'invalid_grant' });
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: issuer,
        sub: SUB,
        aud: mode === 'other-audience' ? 'someone-else' : CLIENT_ID,
        iat: mode === 'expired' ? now - 7200 : now,
        exp: mode === 'expired' ? now - 3600 : now + 300,
        nonce: mode === 'wrong-nonce' ? 'not-the-nonce' : grant.nonce,
        name: 'Grace Hopper',
        email: 'grace@acme.example',
      };
      const token =
        mode === 'alg-none'
          ? jwt({ alg: 'none', kid: 'k1' }, claims, null)
          : jwt({ alg: 'RS256', kid: 'k1', typ: 'JWT' }, claims, mode === 'foreign-key' ? foreignKey.privateKey : issuerKey.privateKey);
      return json(200, { access_token: 'at', token_type: 'Bearer', id_token: token });
    });
    return undefined;
  }
  return json(404, { error: 'not found' });
});

let s: TestServer;

beforeAll(async () => {
  await new Promise<void>((resolve) => stand.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(stand.address() as AddressInfo).port}`;
  s = await startTestServer({ env: { SENTCHAT_OIDC_ISSUER: issuer, SENTCHAT_OIDC_CLIENT_ID: CLIENT_ID } });
  await ensureTenant(s.store.db, 'acme', 'Acme');
});

afterAll(async () => {
  await s?.stop();
  await new Promise<void>((resolve) => stand.close(() => resolve()));
});

beforeEach(() => {
  mode = 'good';
});

function cookiesOf(res: Response): Map<string, string> {
  return new Map(res.headers.getSetCookie().map((c) => [c.split('=')[0]!, c]));
}

/** The browser's trip: start -> issuer -> callback. Returns the callback's answer. */
async function signInThroughIssuer(opts: { tamperState?: boolean; dropCookie?: boolean } = {}): Promise<Response> {
  const start = await fetch(`${s.url}/sentchat/auth/oidc/start`, { redirect: 'manual' });
  expect(start.status).toBe(302);
  const pending = cookiesOf(start).get('sentchat_oidc')!;
  expect(pending).toMatch(/HttpOnly/);
  expect(pending).toMatch(/SameSite=Lax/);
  expect(pending).toMatch(/Path=\/sentchat\/auth\/oidc/);
  const atIssuer = await fetch(start.headers.get('location')!, { redirect: 'manual' });
  expect(atIssuer.status).toBe(302);
  const back = new URL(atIssuer.headers.get('location')!);
  if (opts.tamperState) back.searchParams.set('state', 'x'.repeat(32));
  return fetch(back, { redirect: 'manual', headers: opts.dropCookie ? {} : { cookie: pending.split(';')[0]! } });
}

async function sessionCount(): Promise<number> {
  return (await s.store.db.selectFrom('sentchat_sessions').select('token_sha256').execute()).length;
}

describe('SENTchat OpenID Connect sign-in', () => {
  it('advertises single sign-on', async () => {
    const cfg = (await (await fetch(`${s.url}/sentchat/api/config`)).json()) as { signIn: { oidc: boolean } };
    expect(cfg.signIn.oidc).toBe(true);
  });

  it('code flow with PKCE signs in as sentchat:<issuer realm>:<sub>; roles come from the principals store', async () => {
    const before = await sessionCount();
    const done = await signInThroughIssuer();
    expect(done.status).toBe(302);
    expect(done.headers.get('location')).toBe('/');
    const cookies = cookiesOf(done);
    const session = cookies.get('sentchat_session')!;
    expect(session).toMatch(/HttpOnly; SameSite=Strict/);
    expect(cookies.get('sentchat_oidc')).toMatch(/Max-Age=0/);
    expect(await sessionCount()).toBe(before + 1);

    // What the issuer saw: S256 PKCE, our client, our callback; the token request proved the verifier.
    const asked = authorizeParams.at(-1)!;
    expect(asked.get('code_challenge_method')).toBe('S256');
    expect(asked.get('response_type')).toBe('code');
    expect(asked.get('client_id')).toBe(CLIENT_ID);
    expect(asked.get('redirect_uri')).toBe(`${s.url}/sentchat/auth/oidc/callback`);
    expect(asked.get('scope')).toContain('openid');
    expect(tokenRequests.at(-1)!.get('code_verifier')).toMatch(/^[A-Za-z0-9_-]{43,128}$/);

    const port = new URL(issuer).port;
    const identity = `sentchat:127.0.0.1-${port}:auth0_7c42`;
    const cookie = session.split(';')[0]!;
    const me1 = (await (await fetch(`${s.url}/sentchat/api/me`, { headers: { cookie } })).json()) as Record<string, unknown>;
    // Signed in, but a stranger until the realm has a tenant and an admin grants a role.
    expect(me1).toMatchObject({ identity, displayName: 'Grace Hopper', method: 'oidc', authorised: false, reason: 'workspace_not_connected' });
    expect((await fetch(`${s.url}/sentchat/api/channels`, { headers: { cookie } })).status).toBe(403);

    await mapWorkspace(s.store.db, { platform: 'sentchat', workspace: `127.0.0.1-${port}`, tenantId: 'acme', actor: 'test' });
    const me2 = (await (await fetch(`${s.url}/sentchat/api/me`, { headers: { cookie } })).json()) as Record<string, unknown>;
    expect(me2).toMatchObject({ authorised: false, reason: 'unknown_user', hint: `Ask an admin to grant you a role: reflex role grant ${identity} viewer --tenant acme` });

    await grantRole(s.store.db, { identity: { platform: 'sentchat', workspace: `127.0.0.1-${port}`, userId: 'auth0_7c42' }, tenantId: 'acme', role: 'analyst', actor: 'test' });
    const me3 = (await (await fetch(`${s.url}/sentchat/api/me`, { headers: { cookie } })).json()) as Record<string, unknown>;
    expect(me3).toMatchObject({ identity, tenant: 'acme', roles: ['analyst'], authorised: true });
    expect((await fetch(`${s.url}/sentchat/api/channels`, { headers: { cookie } })).status).toBe(200);
  });

  it.each<[Mode, string]>([
    ['wrong-nonce', 'nonce'],
    ['foreign-key', 'signature'],
    ['expired', 'expired'],
    ['other-audience', 'client'],
    ['alg-none', 'algorithm'],
  ])('refuses an ID token with %s and makes no session', async (m) => {
    mode = m;
    const before = await sessionCount();
    const done = await signInThroughIssuer();
    expect(done.status).toBe(302);
    expect(done.headers.get('location')).toMatch(/^\/#signin-error=/);
    expect(decodeURIComponent(done.headers.get('location')!)).toContain('could not be verified');
    expect(cookiesOf(done).has('sentchat_session')).toBe(false);
    expect(await sessionCount()).toBe(before);
  });

  it('refuses a callback whose state does not match, or that did not start in this browser', async () => {
    const before = await sessionCount();
    const tampered = await signInThroughIssuer({ tamperState: true });
    expect(decodeURIComponent(tampered.headers.get('location')!)).toContain('state mismatch');
    const foreign = await signInThroughIssuer({ dropCookie: true });
    expect(decodeURIComponent(foreign.headers.get('location')!)).toContain('did not start in this browser');
    expect(await sessionCount()).toBe(before);
  });

  it('says so when the issuer refuses the code (used twice)', async () => {
    const start = await fetch(`${s.url}/sentchat/auth/oidc/start`, { redirect: 'manual' });
    const pending = cookiesOf(start).get('sentchat_oidc')!.split(';')[0]!;
    const back = (await fetch(start.headers.get('location')!, { redirect: 'manual' })).headers.get('location')!;
    const first = await fetch(back, { redirect: 'manual', headers: { cookie: pending } });
    expect(cookiesOf(first).has('sentchat_session')).toBe(true);
    const replay = await fetch(back, { redirect: 'manual', headers: { cookie: pending } });
    expect(decodeURIComponent(replay.headers.get('location')!)).toContain('refused the sign-in');
    expect(cookiesOf(replay).has('sentchat_session')).toBe(false);
  });
});

describe('verifyIdToken', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys: Jwk[] = [{ ...(ec.publicKey.export({ format: 'jwk' }) as Jwk), kid: 'e1' }];
  const now = 1_800_000_000;
  const claims = { iss: 'https://idp.example', sub: 'u1', aud: ['sentreflex', 'other'], azp: 'sentreflex', iat: now, exp: now + 300, nonce: 'n-123' };
  const es256 = (c: Record<string, unknown>) => {
    const input = `${b64({ alg: 'ES256', kid: 'e1' })}.${b64(c)}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  const check = (token: string, at = now * 1000) => verifyIdToken({ idToken: token, keys, issuer: 'https://idp.example', clientId: 'sentreflex', nonce: 'n-123', nowMs: at });

  it('accepts ES256 with several audiences when azp is us', () => {
    expect(check(es256(claims))).toMatchObject({ ok: true, claims: { sub: 'u1' } });
  });

  it('refuses: azp not us, another issuer, expired beyond the skew, issued in the future, unknown kid, HMAC', () => {
    expect(check(es256({ ...claims, azp: 'other' }))).toEqual({ ok: false, reason: 'several audiences and azp is not this client' });
    expect(check(es256({ ...claims, iss: 'https://evil.example' }))).toEqual({ ok: false, reason: 'issued by another issuer' });
    expect(check(es256(claims), (now + 300 + 61) * 1000)).toEqual({ ok: false, reason: 'expired' });
    expect(check(es256(claims), (now + 300 + 59) * 1000).ok).toBe(true);
    expect(check(es256(claims), (now - 61) * 1000)).toEqual({ ok: false, reason: 'issued in the future' });
    const unknownKid = `${b64({ alg: 'ES256', kid: 'zz' })}.${es256(claims).split('.').slice(1).join('.')}`;
    expect(check(unknownKid)).toMatchObject({ ok: false, reason: expect.stringContaining('no EC signing key with kid zz') });
    expect(check(`${b64({ alg: 'HS256', kid: 'e1' })}.${b64(claims)}.AAAA`)).toMatchObject({ ok: false, reason: 'algorithm HS256 is not accepted' });
  });
});

describe('SENTchat OIDC configuration', () => {
  it('needs the issuer and the client id together, and https in production', () => {
    expect(() => loadConfig({ SENTCHAT_OIDC_ISSUER: 'https://login.acme.example' })).toThrow(/SENTCHAT_OIDC_CLIENT_ID: required when SENTCHAT_OIDC_ISSUER is set/);
    expect(() => loadConfig({ SENTCHAT_OIDC_CLIENT_ID: 'x' })).toThrow(/SENTCHAT_OIDC_ISSUER: required/);
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/x', SENTCHAT_OIDC_ISSUER: 'http://login.acme.example', SENTCHAT_OIDC_CLIENT_ID: 'x' })).toThrow(/must be https/);
    const c = loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/x', SENTCHAT_OIDC_ISSUER: 'https://login.acme.example/', SENTCHAT_OIDC_CLIENT_ID: 'x' });
    expect(c.sentchat).toEqual({ realm: 'local', apiTokenSignIn: false, sessionHours: 12, oidc: { issuer: 'https://login.acme.example', clientId: 'x', clientSecret: undefined } });
    expect(loadConfig({}).sentchat.apiTokenSignIn).toBe(true);
  });
});
