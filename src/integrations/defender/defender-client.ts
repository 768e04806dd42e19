import { ReflexError } from '../../errors.ts';
import { isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type {
  ContainmentReceipt,
  HostContainment,
  HostContainmentState,
  HostContainmentStatus,
  MutationOptions,
} from '../containment-ports.ts';
import { entraAppApi, type BearerHttp } from '../msgraph/oauth-client-credentials.ts';
import type { TokenSource } from '../msgraph/oauth-client-credentials.ts';

export type DefenderIsolationType = 'Full' | 'Selective' | 'UnManagedDevice';

export interface DefenderClientOptions {
  tenantId: string;
  clientId: string;
  /** Vault: `defender.client_secret`. */
  clientSecret: string;
  /** Default https://api.securitycenter.microsoft.com (also https://api.security.microsoft.com, regional hosts). */
  baseUrl?: string;
  /** Default https://login.microsoftonline.com. */
  loginUrl?: string;
  /** Default https://api.securitycenter.microsoft.com/.default (the resource, whatever host serves it). */
  scope?: string;
  /** Default `Full`. `Selective` keeps Outlook, Teams and Skype working. */
  isolationType?: DefenderIsolationType;
  tokens?: TokenSource;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** A machineAction as Defender returns it (fields we read; the rest is kept in `raw`). */
export interface DefenderMachineAction {
  id: string;
  type: string;
  status: string;
  machineId: string;
  computerDnsName?: string | null;
  creationDateTimeUtc?: string;
  requestorComment?: string | null;
}

const VENDOR = 'Microsoft Defender for Endpoint';
const MACHINE_ID = /^[0-9a-f]{40}$/i;
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
/** Statuses of an action that is, or will become, the machine's state. Failed/TimeOut/Cancelled ones never took effect. */
const EFFECTIVE = new Set(['Pending', 'InProgress', 'Succeeded']);

/**
 * Microsoft Defender for Endpoint device isolation, as `HostContainment`.
 *
 * `POST /api/machines/{id}/isolate {Comment, IsolationType}` and `/unisolate {Comment}` answer
 * 201 with a machineAction that is usually `Pending` until the sensor checks in.
 *
 * Idempotency: Defender has no key, and repeating an isolate is not harmless. A duplicate call
 * answers either the pending action or `400 "Action is already in progress"`, and a duplicate
 * sent while the machine is already isolated can stay Pending and complete *after* a later
 * release, leaving the machine isolated (MicrosoftDocs/microsoft-365-docs#5903). So before
 * sending, this client reads the machine's latest isolate/unisolate action and sends nothing when
 * it already points the requested way; a 400 "already in progress" is taken as success too. The
 * idempotency key is written into the action's Comment, where it shows in the portal's Action
 * center next to the analyst's reason.
 *
 * Permissions (application): Machine.Isolate, Machine.Read.All. Rate limit: 100 calls/min, 1500/h.
 *
 * @example
 * const mde = new DefenderClient({ tenantId, clientId, clientSecret });
 * const r = await mde.isolate('7b1f4967d9728e5aa3c06a9e617a22a4a5a17378', { idempotencyKey: 'run_42:isolate', comment: 'INC-7' });
 * // r.state === 'pending', r.reference === the machineAction id
 */
export class DefenderClient implements HostContainment {
  readonly name = 'defender';
  private readonly api: BearerHttp;
  private readonly isolationType: DefenderIsolationType;

  constructor(opts: DefenderClientOptions) {
    this.api = entraAppApi(opts, {
      vendor: VENDOR,
      label: 'Defender',
      baseUrl: opts.baseUrl ?? 'https://api.securitycenter.microsoft.com',
      defaultScope: () => 'https://api.securitycenter.microsoft.com/.default',
      describeError: describeDefenderError,
      mapError: mapDefenderError,
    }).api;
    this.isolationType = opts.isolationType ?? 'Full';
  }

  isolate(host: string, opts: MutationOptions): Promise<ContainmentReceipt> {
    return this.act(host, opts, 'Isolate');
  }

  release(host: string, opts: MutationOptions): Promise<ContainmentReceipt> {
    return this.act(host, opts, 'Unisolate');
  }

  async status(host: string): Promise<HostContainmentStatus> {
    const machineId = await this.resolveMachineId(host);
    const latest = await this.latestContainmentAction(machineId);
    return { vendor: this.name, target: machineId, state: stateOf(latest), ...(latest ? { raw: latest } : {}) };
  }

  /** Resolves a hostname (computerDnsName) to its machine id; a 40-hex machine id is used as is. */
  async resolveMachineId(host: string): Promise<string> {
    const h = typeof host === 'string' ? host.trim() : '';
    if (MACHINE_ID.test(h)) return h.toLowerCase();
    if (!HOSTNAME.test(h)) {
      throw new ReflexError('input.invalid', `Defender: not a machine id or hostname: ${JSON.stringify(String(host).slice(0, 100))}`, {
        safeMessage: 'Give the host as a Defender machine id or its DNS name.',
      });
    }
    const res = await this.api.request({
      method: 'GET',
      path: '/api/machines',
      query: { $filter: `computerDnsName eq '${h.toLowerCase()}'` },
    });
    const machines = valueArray(res.body).filter(isRecord);
    const ids = [...new Set(machines.map((m) => m.id).filter((id): id is string => typeof id === 'string'))];
    if (ids.length === 0) {
      throw new ReflexError('not_found', `Defender has no machine named ${h}`, {
        details: { vendor: VENDOR },
        safeMessage: `Defender has no machine named ${h}.`,
      });
    }
    if (ids.length > 1) {
      // Re-imaged machines keep their old record; guessing would isolate the wrong one.
      throw new ReflexError('conflict', `Defender has ${ids.length} machines named ${h}: ${ids.join(', ')}`, {
        details: { vendor: VENDOR, machineIds: ids },
        safeMessage: `Defender has ${ids.length} machines named ${h}; give the machine id.`,
      });
    }
    return ids[0] as string;
  }

  /** The most recent isolate/unisolate action that took or will take effect, or undefined. */
  async latestContainmentAction(machineId: string): Promise<DefenderMachineAction | undefined> {
    const res = await this.api.request({
      method: 'GET',
      path: '/api/machineactions',
      query: { $filter: `machineId eq '${machineId}'` },
    });
    const actions = valueArray(res.body)
      .map(toMachineAction)
      .filter((a): a is DefenderMachineAction => a !== undefined)
      .filter((a) => (a.type === 'Isolate' || a.type === 'Unisolate') && EFFECTIVE.has(a.status));
    actions.sort((a, b) => timeOf(b) - timeOf(a));
    return actions[0];
  }

  private async act(host: string, opts: MutationOptions, type: 'Isolate' | 'Unisolate'): Promise<ContainmentReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const machineId = await this.resolveMachineId(host);
    const latest = await this.latestContainmentAction(machineId);
    if (latest?.type === type) return this.receipt(machineId, latest, true);

    const verb = type === 'Isolate' ? 'isolate' : 'unisolate';
    const reason = (opts.comment ?? (type === 'Isolate' ? 'Isolated by SENTreflex' : 'Released by SENTreflex')).trim();
    const json = {
      Comment: `${reason} [SENTreflex ${key}]`,
      ...(type === 'Isolate' ? { IsolationType: this.isolationType } : {}),
    };
    try {
      const res = await this.api.request({ method: 'POST', path: `/api/machines/${machineId}/${verb}`, json });
      const action = toMachineAction(res.body);
      if (!action) {
        throw new ReflexError('upstream.unavailable', `Defender answered ${res.status} to ${verb} without a machineAction`, {
          details: { vendor: VENDOR },
          safeMessage: 'Defender answered in an unexpected way.',
        });
      }
      return this.receipt(machineId, action, false, res.body);
    } catch (err) {
      if (err instanceof ReflexError && err.details?.defenderCode === 'ActiveRequestAlreadyExists') {
        return { vendor: this.name, target: machineId, state: 'pending', alreadyInState: true, failures: [] };
      }
      throw err;
    }
  }

  private receipt(machineId: string, action: DefenderMachineAction, alreadyInState: boolean, raw: unknown = action): ContainmentReceipt {
    return {
      vendor: this.name,
      target: machineId,
      state: action.status === 'Succeeded' ? 'done' : 'pending',
      alreadyInState,
      reference: action.id,
      failures: [],
      raw,
    };
  }
}

function stateOf(latest: DefenderMachineAction | undefined): HostContainmentState {
  if (!latest) return 'unknown';
  const done = latest.status === 'Succeeded';
  if (latest.type === 'Isolate') return done ? 'isolated' : 'isolating';
  return done ? 'released' : 'releasing';
}

function toMachineAction(v: unknown): DefenderMachineAction | undefined {
  if (!isRecord(v)) return undefined;
  const { id, type, status, machineId } = v;
  if (typeof id !== 'string' || typeof type !== 'string' || typeof status !== 'string' || typeof machineId !== 'string') return undefined;
  return {
    id,
    type,
    status,
    machineId,
    computerDnsName: typeof v.computerDnsName === 'string' ? v.computerDnsName : null,
    ...(typeof v.creationDateTimeUtc === 'string' ? { creationDateTimeUtc: v.creationDateTimeUtc } : {}),
    requestorComment: typeof v.requestorComment === 'string' ? v.requestorComment : null,
  };
}

function timeOf(a: DefenderMachineAction): number {
  const t = a.creationDateTimeUtc === undefined ? NaN : Date.parse(a.creationDateTimeUtc);
  return Number.isNaN(t) ? 0 : t;
}

/** OData collections: `{"@odata.context": …, "value": [...]}`. */
function valueArray(body: unknown): unknown[] {
  if (isRecord(body) && Array.isArray(body.value)) return body.value;
  throw new ReflexError('upstream.unavailable', 'Defender answered a list request without a value array', {
    details: { vendor: VENDOR },
    safeMessage: 'Defender answered in an unexpected way.',
  });
}

/** `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"…"}}`. */
function describeDefenderError(body: unknown): string | undefined {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { code, message } = body.error;
  return [code, message].filter((s) => typeof s === 'string' && s !== '').join(': ') || undefined;
}

function mapDefenderError(f: VendorFailure): ReflexError | undefined {
  const err = isRecord(f.body) && isRecord(f.body.error) ? f.body.error : {};
  const code = typeof err.code === 'string' ? err.code : undefined;
  const message = typeof err.message === 'string' ? err.message : '';
  if (f.status === 400 && (code === 'ActiveRequestAlreadyExists' || /already in progress/i.test(message))) {
    return new ReflexError('conflict', `Defender: ${f.detail ?? 'action already in progress'}`, {
      details: { vendor: VENDOR, status: f.status, defenderCode: 'ActiveRequestAlreadyExists' },
      safeMessage: 'Defender is already carrying out that action.',
    });
  }
  if (f.status === 404) {
    return new ReflexError('not_found', `Defender answered 404${f.detail ? `: ${f.detail}` : ''}`, {
      details: { vendor: VENDOR, status: 404 },
      safeMessage: 'Defender has no such machine.',
    });
  }
  return undefined;
}

