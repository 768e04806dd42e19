import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { ContainmentFailure, ContainmentReceipt, MutationOptions } from '../containment-ports.ts';
import { BearerHttp } from '../msgraph/oauth-client-credentials.ts';
import type { TokenSource } from '../msgraph/oauth-client-credentials.ts';

export interface WazuhClientOptions {
  /** The manager's API, e.g. https://wazuh-manager.internal:55000. */
  baseUrl: string;
  /** An API user with the `active-response:command` RBAC action (tenant config `wazuh.api_user`). */
  username: string;
  /** Vault: `wazuh.api_password`. */
  password: string;
  /** Refresh the JWT this long before it expires. Default 60 s. */
  refreshMarginMs?: number;
  tokens?: TokenSource;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface ActiveResponseRequest {
  /**
   * Agent ids (`"003"`; `3` is padded to `"003"`). Required and never empty: Wazuh runs a
   * command without `agents_list` on every agent, which no playbook should do by accident.
   */
  agents: readonly string[];
  /** A command from the manager's ar.conf (`firewall-drop600`, `restart-wazuh0`), or `!script` for a script by name. */
  command: string;
  /** Passed to the script as `parameters.extra_args`. */
  arguments?: readonly string[];
  /** Merged into `alert.data`, which the script reads (firewall-drop reads `alert.data.srcip`). */
  alertData?: Record<string, unknown>;
}

export interface ActiveResponseReceipt extends ContainmentReceipt {
  /** Agents that accepted the command. */
  affectedAgents: string[];
}

/** What Wazuh's per-agent error codes mean for a retry (fact 3 of the fixtures README). */
const AGENT_ERRORS: Record<number, { reason: string; retryable: boolean }> = {
  // Disconnected or never connected. The manager does not queue AR for it, so a later attempt is
  // the only way the command ever arrives; agents come back after reboots and network blips.
  1707: { reason: 'agent is not active (disconnected or never connected)', retryable: true },
  1701: { reason: 'no such agent', retryable: false },
  1750: { reason: 'active response is disabled on the agent', retryable: false },
};

const VENDOR = 'Wazuh';
const COMMAND = /^!?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Retry hint when every target agent is offline: Wazuh agents report in every 10 s by default. */
const OFFLINE_RETRY_MS = 60_000;

/**
 * The Wazuh manager API (4.x): JWT login and `PUT /active-response`.
 *
 * `PUT /active-response?agents_list=…` answers 200 even when agents fail, with `error` 0 (all
 * agents got the command), 2 (some did) or 1 (none did) and per-agent codes in
 * `data.failed_items[].error.code` (1707 agent not active, 1701 no such agent, 1750 AR disabled).
 * A partial answer is a receipt whose `failures` name each failed agent and why; an all-failed
 * answer throws, retryable only when every failure is retryable (all 1707), `not_found` when
 * every agent is unknown (1701).
 *
 * Idempotency: the API has none. The agent's execd does: a stateful command (one with a timeout)
 * whose key (firewall-drop: the source IP) is already active is not run again, only its timeout
 * is restarted. The step's idempotency key travels to the script in `alert.data.sentreflex`.
 *
 * @example
 * const wazuh = new WazuhClient({ baseUrl: 'https://wazuh.internal:55000', username: 'sentreflex', password });
 * const r = await wazuh.runActiveResponse(
 *   { agents: ['001', '002'], command: 'firewall-drop600', alertData: { srcip: '198.51.100.7' } },
 *   { idempotencyKey: 'run_42:block_ip' },
 * );
 * // r.failures: [{ target: '002', code: '1707', reason: 'agent is not active …', retryable: true }]
 */
export class WazuhClient {
  readonly name = 'wazuh';
  private readonly api: BearerHttp;

  constructor(opts: WazuhClientOptions) {
    const common = {
      vendor: VENDOR,
      baseUrl: opts.baseUrl,
      describeError: describeWazuhError,
      mapError: mapWazuhError,
      ...(opts.now === undefined ? {} : { now: opts.now }),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    };
    const tokens = opts.tokens ?? new WazuhTokenSource(opts, common);
    this.api = new BearerHttp(new VendorHttpClient(common), tokens);
  }

  async runActiveResponse(req: ActiveResponseRequest, opts: MutationOptions): Promise<ActiveResponseReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const agents = normaliseAgents(req.agents);
    if (!COMMAND.test(req.command)) {
      throw new ReflexError('input.invalid', `Wazuh: not an active-response command name: ${JSON.stringify(req.command.slice(0, 100))}`, {
        safeMessage: 'The active-response command must be a command name from ar.conf or !script-name.',
      });
    }
    const args = (req.arguments ?? []).map(String);
    const res = await this.api.request({
      method: 'PUT',
      path: '/active-response',
      query: { agents_list: agents.join(',') },
      json: {
        command: req.command,
        ...(args.length > 0 ? { arguments: args } : {}),
        alert: { data: { ...req.alertData, sentreflex: { idempotency_key: key } } },
      },
    });
    return interpretActiveResponse(res.body, agents, req.command);
  }
}

/** Agent ids as Wazuh spells them: at least three digits, zero-padded. */
export function normaliseAgents(agents: readonly (string | number)[]): string[] {
  if (!Array.isArray(agents) || agents.length === 0) {
    throw new ReflexError('input.invalid', 'Wazuh: active response needs at least one agent id (an empty list would mean every agent)', {
      safeMessage: 'Name the Wazuh agent(s) to run the command on.',
    });
  }
  const out = agents.map((a) => {
    const text = String(a).trim();
    if (!/^\d{1,6}$/.test(text)) {
      throw new ReflexError('input.invalid', `Wazuh: not an agent id: ${JSON.stringify(text.slice(0, 50))}`, {
        safeMessage: `Not a Wazuh agent id: ${text.slice(0, 50)}`,
      });
    }
    return text.padStart(3, '0');
  });
  return [...new Set(out)];
}

/**
 * Reads the `{error, data:{affected_items, failed_items}}` answer of `PUT /active-response`.
 * Exported for the firewall adapter and tests.
 */
export function interpretActiveResponse(body: unknown, requested: readonly string[], command: string): ActiveResponseReceipt {
  if (!isRecord(body) || !isRecord(body.data) || typeof body.error !== 'number') {
    throw new ReflexError('upstream.unavailable', 'Wazuh answered PUT /active-response without {error, data}', {
      details: { vendor: VENDOR },
      safeMessage: 'Wazuh answered in an unexpected way.',
    });
  }
  const data = body.data;
  const affected = (Array.isArray(data.affected_items) ? data.affected_items : []).map(agentId).filter((a): a is string => a !== undefined);
  const failures: ContainmentFailure[] = [];
  for (const item of Array.isArray(data.failed_items) ? data.failed_items : []) {
    if (!isRecord(item)) continue;
    const err = isRecord(item.error) ? item.error : {};
    const code = typeof err.code === 'number' ? err.code : undefined;
    const known = code === undefined ? undefined : AGENT_ERRORS[code];
    const reason = known?.reason ?? (typeof err.message === 'string' ? err.message : 'failed');
    const ids = Array.isArray(item.id) ? item.id : [item.id];
    for (const id of ids.map(agentId).filter((a): a is string => a !== undefined)) {
      failures.push({ target: id, code: String(code ?? 'unknown'), reason, retryable: known?.retryable ?? false });
    }
  }

  if (body.error === 1 || (affected.length === 0 && failures.length > 0)) throw allFailed(failures, command);
  if (body.error !== 0 && body.error !== 2) {
    throw new ReflexError('upstream.unavailable', `Wazuh answered PUT /active-response with error ${body.error}`, {
      details: { vendor: VENDOR },
      safeMessage: 'Wazuh answered in an unexpected way.',
    });
  }
  return {
    vendor: 'wazuh',
    target: (affected.length > 0 ? affected : requested).join(','),
    // Wazuh confirms the command reached the agents' queues; nothing later reports completion.
    state: 'done',
    alreadyInState: false,
    affectedAgents: affected,
    failures,
    raw: body,
  };
}

function allFailed(failures: ContainmentFailure[], command: string): ReflexError {
  const list = failures.map((f) => `${f.target} (${f.code} ${f.reason})`).join(', ') || 'no agent named';
  const message = `Wazuh could not run ${command} on any agent: ${list}`;
  const details = { vendor: VENDOR, failures };
  if (failures.length > 0 && failures.every((f) => f.code === '1701')) {
    return new ReflexError('not_found', message, { details, safeMessage: `Wazuh has no agent ${failures.map((f) => f.target).join(', ')}.` });
  }
  if (failures.length > 0 && failures.every((f) => f.retryable)) {
    return new ReflexError('upstream.unavailable', message, {
      retryAfterMs: OFFLINE_RETRY_MS,
      details,
      safeMessage: `Wazuh agent(s) ${failures.map((f) => f.target).join(', ')} are not connected; retrying later.`,
    });
  }
  return new ReflexError('upstream.rejected', message, {
    retryable: false,
    details,
    safeMessage: `Wazuh could not run ${command}: ${failures.map((f) => `${f.target} ${f.reason}`).join('; ') || 'no agent accepted it'}.`,
  });
}

function agentId(v: unknown): string | undefined {
  // Real answers hold strings ("009"). Numbers are padded back: a YAML reader other than PyYAML
  // (Wazuh's own tests) reads an unquoted 009 as the number 9.
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return String(v).padStart(3, '0');
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * JWT login: `POST /security/user/authenticate` with HTTP basic auth answers
 * `{"data":{"token":"<jwt>"},"error":0}`. Tokens last `auth_token_exp_timeout` (default 900 s);
 * the expiry is read from the JWT's `exp`, and any change to the security config revokes all
 * tokens early (BearerHttp then logs in again on the 401).
 */
class WazuhTokenSource implements TokenSource {
  private readonly http: VendorHttpClient;
  private readonly marginMs: number;
  private readonly now: () => number;
  private cached: { token: string; expiresAt: number } | undefined;
  private inflight: Promise<string> | undefined;

  constructor(opts: WazuhClientOptions, common: ConstructorParameters<typeof VendorHttpClient>[0]) {
    if (!opts.username || !opts.password) throw new ReflexError('config.invalid', 'Wazuh API user or password is empty');
    this.marginMs = opts.refreshMarginMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.http = new VendorHttpClient({
      ...common,
      headers: { Authorization: `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}` },
      secretHeaders: ['Authorization'],
      mapError: (f) =>
        f.status === 401
          ? new ReflexError('upstream.rejected', `Wazuh refused the API user's credentials${f.detail ? `: ${f.detail}` : ''}`, {
              retryable: false,
              details: { vendor: VENDOR, status: 401 },
              safeMessage: "Wazuh rejected SENTreflex's API user name or password.",
            })
          : mapWazuhError(f),
    });
  }

  async token(): Promise<string> {
    const cached = this.cached;
    if (cached && this.now() < cached.expiresAt - this.marginMs) return cached.token;
    if (!this.inflight) {
      this.inflight = this.login().finally(() => {
        this.inflight = undefined;
      });
    }
    return this.inflight;
  }

  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async login(): Promise<string> {
    const startedAt = this.now();
    const res = await this.http.request({ method: 'POST', path: '/security/user/authenticate' });
    const token = isRecord(res.body) && isRecord(res.body.data) && typeof res.body.data.token === 'string' ? res.body.data.token : undefined;
    if (!token) {
      throw new ReflexError('upstream.unavailable', 'Wazuh login answered without data.token', {
        details: { vendor: VENDOR },
        safeMessage: 'Wazuh answered the login in an unexpected way.',
      });
    }
    this.cached = { token, expiresAt: jwtExpiry(token) ?? startedAt + 900_000 };
    return token;
  }
}

/** The `exp` claim of a JWT in epoch milliseconds, without verifying it (we are its audience, not its judge). */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return isRecord(claims) && typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** `{title, detail, remediation?, error?}` (RequestError / ApiError in the 4.9 spec). */
function describeWazuhError(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const parts = [body.title, body.detail].filter((s): s is string => typeof s === 'string' && s !== '');
  return parts.length > 0 ? parts.join(': ') : undefined;
}

function mapWazuhError(f: VendorFailure): ReflexError | undefined {
  if (f.status === 429 && f.retryAfterMs === undefined) {
    // The API's limit is per minute (max_request_per_minute) and it sends no Retry-After.
    return new ReflexError('upstream.rate_limited', `Wazuh answered 429${f.detail ? `: ${f.detail}` : ''}`, {
      retryAfterMs: 60_000,
      details: { vendor: VENDOR, status: 429 },
      safeMessage: 'Wazuh is rate limiting us; retrying later.',
    });
  }
  return undefined;
}

