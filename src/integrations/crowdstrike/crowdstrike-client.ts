import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorResponse } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type {
  ContainmentFailure,
  ContainmentReceipt,
  HostContainment,
  HostContainmentState,
  HostContainmentStatus,
  MutationOptions,
} from '../containment-ports.ts';
import { BearerHttp, ClientCredentialsTokenSource } from '../msgraph/oauth-client-credentials.ts';
import type { TokenSource } from '../msgraph/oauth-client-credentials.ts';

export interface CrowdStrikeClientOptions {
  clientId: string;
  /** Vault: `crowdstrike.client_secret`. */
  clientSecret: string;
  /** Your cloud's API host. Default https://api.crowdstrike.com (US-1); api.us-2.crowdstrike.com, api.eu-1.crowdstrike.com, … */
  baseUrl?: string;
  /** An MSSP's child CID to act in (form field `member_cid` at login). */
  memberCid?: string;
  tokens?: TokenSource;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** The Falcon API envelope (fixture: crowdstrike_envelope__demisto_online_states_response.json). */
interface FalconEnvelope {
  resources: unknown[];
  errors: { code: number | undefined; message: string }[];
}

const VENDOR = 'CrowdStrike';
/** A Falcon agent id (AID) is 32 hex characters. */
const AID = /^[0-9a-f]{32}$/i;
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

const DEVICE_STATE: Record<string, HostContainmentState> = {
  contained: 'isolated',
  containment_pending: 'isolating',
  lift_containment_pending: 'releasing',
  normal: 'released',
};

/**
 * CrowdStrike Falcon network containment, as `HostContainment`.
 *
 * `POST /devices/entities/devices-actions/v2?action_name=contain|lift_containment {ids:[aid]}`
 * answers the Falcon envelope `{meta, resources, errors}`: resources name the hosts the action was
 * queued for (containment completes when the sensor checks in: `containment_pending` →
 * `contained`), errors carry `{code, message}` per host. Code 409 means "already in that state"
 * (the approach of CrowdStrike's own Ansible `host_contain` module) and is success here, so
 * repeating a step is safe. The action has no comment or key field: the idempotency key is not
 * sent to Falcon.
 *
 * Rate limits answer 429 with `X-RateLimit-RetryAfter` (epoch seconds) rather than `Retry-After`.
 * API client scope: Hosts read + write.
 *
 * @example
 * const falcon = new CrowdStrikeClient({ clientId, clientSecret, baseUrl: 'https://api.eu-1.crowdstrike.com' });
 * await falcon.isolate('0bde2c4645294245aca522971ccc4567', { idempotencyKey: 'run_42:isolate' });
 */
export class CrowdStrikeClient implements HostContainment {
  readonly name = 'crowdstrike';
  private readonly api: BearerHttp;

  constructor(opts: CrowdStrikeClientOptions) {
    const baseUrl = opts.baseUrl ?? 'https://api.crowdstrike.com';
    const http = new VendorHttpClient({
      vendor: VENDOR,
      baseUrl,
      rateLimitResetHeader: 'X-RateLimit-RetryAfter',
      describeError: (body) => {
        const env = envelopeOf(body);
        return env && env.errors.length > 0 ? env.errors.map((e) => `${e.code ?? '?'} ${e.message}`).join('; ') : undefined;
      },
      ...(opts.now === undefined ? {} : { now: opts.now }),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
    const tokens =
      opts.tokens ??
      new ClientCredentialsTokenSource({
        vendor: VENDOR,
        tokenUrl: `${http.url('/oauth2/token').href}`,
        clientId: opts.clientId,
        clientSecret: opts.clientSecret,
        ...(opts.memberCid ? { extraParams: { member_cid: opts.memberCid } } : {}),
        ...(opts.now === undefined ? {} : { now: opts.now }),
        ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
        ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
      });
    this.api = new BearerHttp(http, tokens);
  }

  isolate(host: string, opts: MutationOptions): Promise<ContainmentReceipt> {
    return this.act(host, opts, 'contain');
  }

  release(host: string, opts: MutationOptions): Promise<ContainmentReceipt> {
    return this.act(host, opts, 'lift_containment');
  }

  async status(host: string): Promise<HostContainmentStatus> {
    const aid = await this.resolveDeviceId(host);
    const res = await this.api.request({ method: 'GET', path: '/devices/entities/devices/v2', query: { ids: aid }, accept: [404] });
    const device = envelopeOf(res.body)?.resources.filter(isRecord).find((d) => d.device_id === aid || d.id === aid);
    if (res.status === 404 || !device) throw notFound(aid);
    const state = typeof device.status === 'string' ? (DEVICE_STATE[device.status] ?? 'unknown') : 'unknown';
    return { vendor: this.name, target: aid, state, raw: device };
  }

  /** A 32-hex AID is used as is; a hostname is looked up (exactly one device must match). */
  async resolveDeviceId(host: string): Promise<string> {
    const h = typeof host === 'string' ? host.trim() : '';
    if (AID.test(h)) return h.toLowerCase();
    if (!HOSTNAME.test(h)) {
      throw new ReflexError('input.invalid', `CrowdStrike: not an agent id or hostname: ${JSON.stringify(String(host).slice(0, 100))}`, {
        safeMessage: 'Give the host as a Falcon agent id (AID) or its hostname.',
      });
    }
    const res = await this.api.request({ method: 'GET', path: '/devices/queries/devices/v1', query: { filter: `hostname:'${h}'` } });
    const ids = [...new Set((envelopeOf(res.body)?.resources ?? []).filter((r): r is string => typeof r === 'string'))];
    if (ids.length === 0) throw notFound(h);
    if (ids.length > 1) {
      throw new ReflexError('conflict', `CrowdStrike has ${ids.length} devices named ${h}: ${ids.join(', ')}`, {
        details: { vendor: VENDOR, deviceIds: ids },
        safeMessage: `CrowdStrike has ${ids.length} devices named ${h}; give the agent id.`,
      });
    }
    return ids[0] as string;
  }

  private async act(host: string, opts: MutationOptions, action: 'contain' | 'lift_containment'): Promise<ContainmentReceipt> {
    requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const aid = await this.resolveDeviceId(host);
    const res = await this.api.request({
      method: 'POST',
      path: '/devices/entities/devices-actions/v2',
      query: { action_name: action },
      json: { ids: [aid] },
      // Per-host failures come back as errors[] in the envelope, sometimes with a 4xx status.
      accept: [400, 404, 409],
    });
    return this.interpret(res, aid, action);
  }

  private interpret(res: VendorResponse, aid: string, action: string): ContainmentReceipt {
    const env = envelopeOf(res.body);
    const queued = env?.resources.some((r) => isRecord(r) && typeof r.id === 'string' && r.id.toLowerCase() === aid) ?? false;
    if (queued) return { vendor: this.name, target: aid, state: 'pending', alreadyInState: false, reference: aid, failures: [], raw: res.body };

    if (!env || env.errors.length === 0) {
      if (res.status === 404) throw notFound(aid);
      throw new ReflexError(res.status < 300 ? 'upstream.unavailable' : 'upstream.rejected', `CrowdStrike answered ${res.status} to ${action} without naming ${aid}`, {
        details: { vendor: VENDOR, status: res.status },
        safeMessage: 'CrowdStrike answered in an unexpected way.',
      });
    }
    // An error names its host in the message; with a single host, an unnamed error is about it.
    const mine = env.errors.filter((e) => e.message.toLowerCase().includes(aid) || env.errors.length === 1);
    if (mine.some((e) => e.code === 409)) {
      return { vendor: this.name, target: aid, state: 'done', alreadyInState: true, reference: aid, failures: [], raw: res.body };
    }
    const detail = mine.map((e) => `${e.code ?? '?'} ${e.message}`).join('; ') || `HTTP ${res.status}`;
    const failures: ContainmentFailure[] = mine.map((e) => ({ target: aid, code: String(e.code ?? res.status), reason: e.message, retryable: false }));
    if (mine.some((e) => e.code === 404)) {
      throw notFound(aid, detail);
    }
    if (mine.some((e) => e.code !== undefined && e.code >= 500)) {
      throw new ReflexError('upstream.unavailable', `CrowdStrike could not ${action} ${aid}: ${detail}`, {
        details: { vendor: VENDOR, status: res.status, failures },
        safeMessage: 'CrowdStrike is unavailable; retrying later.',
      });
    }
    throw new ReflexError('upstream.rejected', `CrowdStrike refused to ${action} ${aid}: ${detail}`, {
      retryable: false,
      details: { vendor: VENDOR, status: res.status, failures },
      safeMessage: `CrowdStrike refused to ${action === 'contain' ? 'contain' : 'release'} that host.`,
    });
  }
}

function notFound(host: string, detail?: string): ReflexError {
  return new ReflexError('not_found', `CrowdStrike has no device ${host}${detail ? `: ${detail}` : ''}`, {
    details: { vendor: VENDOR },
    safeMessage: `CrowdStrike has no device ${host}.`,
  });
}

function envelopeOf(body: unknown): FalconEnvelope | undefined {
  if (!isRecord(body)) return undefined;
  const resources = Array.isArray(body.resources) ? body.resources : [];
  const errors = (Array.isArray(body.errors) ? body.errors : []).filter(isRecord).map((e) => ({
    code: typeof e.code === 'number' ? e.code : undefined,
    message: typeof e.message === 'string' ? e.message : '',
  }));
  if (!('resources' in body) && !('errors' in body)) return undefined;
  return { resources, errors };
}

