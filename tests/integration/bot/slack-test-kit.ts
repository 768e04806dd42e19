import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import type { Role } from '../../../src/store/schema.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

/**
 * Slack as the tests see it: the real app started with Slack enabled, requests signed the way
 * Slack signs them (computed here, independently of src/bot/slack/signature.ts), fixtures from
 * ../shared/fixtures/slack, and the Web API and response_url hosts intercepted with nock.
 */
export const SIGNING_SECRET = 'test-signing-secret-8f742231b10e8888';
export const BOT_TOKEN = 'xoxb-0000000000-test-bot-token';
export const SLACK_API = 'https://slack.test';
export const VT_API = 'https://vt.test';
export const HOOKS = 'https://hooks.slack.com';

export function fixture(rel: string): string {
  return readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
}

export function webApiExample(method: string, which: '200' | 'default' = '200'): Record<string, unknown> {
  return (JSON.parse(fixture(`slack/webapi_${method}.examples.json`)) as Record<string, Record<string, unknown>>)[which]!;
}

export async function startSlackApp(opts: { queue?: 'postgres' | 'redis' } = {}): Promise<TestServer> {
  nock.disableNetConnect();
  nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.startsWith('localhost'));
  const s = await startTestServer({
    ...(opts.queue ? { queue: opts.queue } : {}),
    env: { SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: BOT_TOKEN, SLACK_API_URL: `${SLACK_API}/api/`, VIRUSTOTAL_API_URL: VT_API },
  });
  await ensureTenant(s.store.db, 'acme', 'Acme');
  await mapWorkspace(s.store.db, { platform: 'slack', workspace: 'T111', tenantId: 'acme', actor: 'test' });
  return s;
}

export async function stopSlackApp(s: TestServer | undefined): Promise<void> {
  nock.cleanAll();
  nock.enableNetConnect();
  await s?.stop();
}

export async function grant(s: TestServer, userId: string, ...roles: Role[]): Promise<void> {
  for (const role of roles) await grantRole(s.store.db, { identity: { platform: 'slack', workspace: 'T111', userId }, tenantId: 'acme', role, actor: 'test' });
}

export function signature(body: string, timestamp: string, secret = SIGNING_SECRET): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SendOptions {
  timestamp?: number;
  signature?: string;
  headers?: Record<string, string>;
}

/** POSTs a body to /slack/events as Slack would: signed, with its content type. */
export async function send(s: TestServer, body: string, contentType: 'form' | 'json', opts: SendOptions = {}): Promise<Response> {
  const ts = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  return fetch(`${s.url}/slack/events`, {
    method: 'POST',
    headers: {
      'content-type': contentType === 'json' ? 'application/json' : 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': ts,
      'x-slack-signature': opts.signature ?? signature(body, ts),
      ...opts.headers,
    },
    body,
  });
}

/** The slash-command fixture with some fields changed (a fresh trigger_id makes it a new delivery). */
export function slashBody(fields: Record<string, string>): string {
  const form = new URLSearchParams(fixture('slack/bolt_python_slash_command_body.txt'));
  form.set('trigger_id', `111.${Math.random().toString().slice(2, 12)}.xxx`);
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return form.toString();
}

/** The block_actions fixture, form-encoded as Slack sends it, with its action changed if asked. */
export function blockActionsBody(action?: { action_id: string; value: string }, user?: string): string {
  const payload = JSON.parse(fixture('slack/bolt_python_block_actions_payload.json')) as {
    actions: { action_id: string; value: string; action_ts: string }[];
    user: { id: string };
  };
  if (action) Object.assign(payload.actions[0]!, action);
  if (user) payload.user.id = user;
  payload.actions[0]!.action_ts = `${Date.now() / 1000}`;
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/** Captures the JSON bodies POSTed to a response_url path. */
export function captureResponses(pathname: string, times = 1): { bodies: Record<string, unknown>[]; scope: nock.Scope } {
  const bodies: Record<string, unknown>[] = [];
  const scope = nock(HOOKS)
    .post(pathname, (body: Record<string, unknown>) => {
      bodies.push(body);
      return true;
    })
    .times(times)
    .reply(200, 'ok');
  return { bodies, scope };
}

/** A Web API call's parameters, whether the client sent them form-encoded or as JSON. */
export function webApiParams(body: unknown): Record<string, unknown> {
  const raw = typeof body === 'string' ? Object.fromEntries(new URLSearchParams(body)) : (body as Record<string, unknown>);
  return Object.fromEntries(
    Object.entries(raw).map(([k, v]) => {
      if (typeof v === 'string' && /^[[{]/.test(v)) {
        try {
          return [k, JSON.parse(v)];
        } catch {
          return [k, v];
        }
      }
      return [k, v];
    }),
  );
}

// Generous: on a loaded 2-core machine a worker can take seconds to pick a job up; no assertion is about time.
export const eventually = (fn: () => void | Promise<void>, timeout = 45_000) => vi.waitFor(fn, { timeout, interval: 50 });

/** Jobs of a queue in any state: what an accepted request leaves behind. */
export async function jobTotal(s: TestServer, queue: string): Promise<number> {
  const counts = await s.queues.queue(queue).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'waiting-children');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** Text as Slack displays it: the three entities our renderer escapes, unescaped. */
export function shown(text: unknown): string {
  return String(text).replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
