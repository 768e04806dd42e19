import { isIP } from 'node:net';
import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';
import type { IntelObservable, IntelObservableKind, IntelProvider, IntelVerdict, IntelVerdictLabel } from '../ports.ts';

export interface VirusTotalClientOptions {
  apiKey: string;
  /** Default https://www.virustotal.com (the `/api/v3` prefix is added here). */
  baseUrl?: string;
  timeoutMs?: number;
  /**
   * Engine counts, not ratios: ~90 engines dilute any ratio, while a handful of engines agreeing
   * is already a strong signal. `malicious` counts engines saying malicious; `suspicious` counts
   * engines saying malicious or suspicious.
   */
  thresholds?: { malicious?: number; suspicious?: number };
  fetch?: typeof fetch;
  now?: () => Date;
}

/** `last_analysis_stats` as VT sends it; files add keys (`type-unsupported`, `failure`, …) we ignore. */
interface AnalysisStats {
  harmless?: number;
  malicious?: number;
  suspicious?: number;
  undetected?: number;
  timeout?: number;
}

const PATH_BY_KIND: Record<IntelObservableKind, string> = {
  ip: 'ip_addresses',
  domain: 'domains',
  url: 'urls',
  hash: 'files',
};

// VirusTotal sends no Retry-After on quota errors; the public API's quota is per minute, so a
// minute is the shortest wait that can help.
const QUOTA_RETRY_MS = 60_000;

/**
 * VirusTotal API v3 as an `IntelProvider`.
 *
 * Score is the share of engines with an opinion (harmless + malicious + suspicious + undetected)
 * that flag the object, suspicious counting half; the verdict comes from engine-count thresholds
 * (default 5 malicious engines = malicious, 1 flagging engine = suspicious).
 *
 * @example
 * const vt = new VirusTotalClient({ apiKey: config.virustotal.apiKey });
 * const v = await vt.lookup({ kind: 'url', value: 'http://down.mykings.pw/ver.txt' });
 */
export class VirusTotalClient implements IntelProvider {
  readonly name = 'virustotal';
  private readonly http: VendorHttpClient;
  private readonly maliciousAt: number;
  private readonly suspiciousAt: number;
  private readonly now: () => Date;

  constructor(opts: VirusTotalClientOptions) {
    if (!opts.apiKey) throw new ReflexError('config.invalid', 'VirusTotal API key is empty');
    this.maliciousAt = opts.thresholds?.malicious ?? 5;
    this.suspiciousAt = opts.thresholds?.suspicious ?? 1;
    this.now = opts.now ?? (() => new Date());
    this.http = new VendorHttpClient({
      vendor: 'VirusTotal',
      baseUrl: opts.baseUrl ?? 'https://www.virustotal.com',
      headers: { 'X-Apikey': opts.apiKey },
      secretHeaders: ['X-Apikey'],
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
      now: () => this.now().getTime(),
      describeError: (body) => {
        const e = errorEnvelope(body);
        return e ? `${e.code}: ${e.message}` : undefined;
      },
      mapError: mapVirusTotalError,
    });
  }

  supports(kind: IntelObservableKind): boolean {
    return kind in PATH_BY_KIND;
  }

  async lookup(observable: IntelObservable): Promise<IntelVerdict> {
    const id = objectId(observable);
    const res = await this.http.request({
      method: 'GET',
      path: `/api/v3/${PATH_BY_KIND[observable.kind]}/${encodeURIComponent(id)}`,
      accept: [404],
    });
    const fetchedAt = this.now().toISOString();

    if (res.status === 404) {
      // Only VT's own NotFoundError means "never seen"; a bare 404 is a wrong base URL or a proxy,
      // and answering "unknown" for it would silently blind enrichment.
      if (errorEnvelope(res.body)?.code !== 'NotFoundError') {
        throw new ReflexError('upstream.rejected', `VirusTotal answered 404 without its error envelope for ${observable.kind}`, {
          retryable: false,
          details: { vendor: 'VirusTotal', status: 404 },
          safeMessage: 'VirusTotal answered in an unexpected way; check its base URL.',
        });
      }
      return {
        provider: this.name,
        observable,
        verdict: 'unknown',
        score: 0,
        summary: `VirusTotal has no record of this ${observable.kind}`,
        raw: res.body,
        fetchedAt,
      };
    }

    const stats = analysisStats(res.body);
    const { verdict, score, summary } = this.judge(stats);
    return { provider: this.name, observable, verdict, score, summary, raw: res.body, fetchedAt };
  }

  private judge(stats: AnalysisStats | undefined): { verdict: IntelVerdictLabel; score: number; summary: string } {
    const malicious = count(stats?.malicious);
    const suspicious = count(stats?.suspicious);
    const total = malicious + suspicious + count(stats?.harmless) + count(stats?.undetected);
    if (total === 0) {
      return { verdict: 'unknown', score: 0, summary: 'VirusTotal has no analysis of it yet' };
    }
    const score = Math.min(100, Math.round((100 * (malicious + suspicious / 2)) / total));
    const verdict: IntelVerdictLabel =
      malicious >= this.maliciousAt ? 'malicious' : malicious + suspicious >= this.suspiciousAt ? 'suspicious' : 'harmless';
    return { verdict, score, summary: `${malicious}/${total} engines flag it malicious, ${suspicious} suspicious` };
  }
}

/** The identifier VT expects in the path for each kind; validates the value on the way. */
function objectId(o: IntelObservable): string {
  const value = o.value.trim();
  const invalid = (why: string) =>
    new ReflexError('input.invalid', `VirusTotal lookup: ${why}`, { safeMessage: `Not a valid ${o.kind}: ${value.slice(0, 100)}` });
  switch (o.kind) {
    case 'ip':
      if (isIP(value) === 0) throw invalid('not an IP address');
      return value;
    case 'domain': {
      const d = value.toLowerCase().replace(/\.$/, '');
      if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(d)) throw invalid('not a domain name');
      return d;
    }
    case 'url':
      if (value === '') throw invalid('empty URL');
      // VT's URL identifier is the URL in unpadded base64url (docs.virustotal.com "URL identifiers").
      return Buffer.from(value, 'utf8').toString('base64url');
    case 'hash':
      if (!/^([a-f0-9]{32}|[a-f0-9]{40}|[a-f0-9]{64})$/i.test(value)) throw invalid('not an MD5, SHA-1 or SHA-256');
      return value.toLowerCase();
    default:
      throw invalid(`unsupported kind ${String((o as { kind: unknown }).kind)}`);
  }
}

function mapVirusTotalError(f: VendorFailure): ReflexError | undefined {
  const code = errorEnvelope(f.body)?.code;
  if (code === undefined) return undefined;
  const message = `VirusTotal answered ${f.status} ${f.detail ?? code}`;
  const details = { vendor: 'VirusTotal', status: f.status, vendorCode: code };
  switch (code) {
    case 'QuotaExceededError':
    case 'TooManyRequestsError':
      return new ReflexError('upstream.rate_limited', message, {
        retryAfterMs: f.retryAfterMs ?? QUOTA_RETRY_MS,
        details,
        safeMessage: 'VirusTotal quota exceeded; retrying later.',
      });
    case 'WrongCredentialsError':
    case 'AuthenticationRequiredError':
    case 'UserNotActiveError':
    case 'ForbiddenError':
      return new ReflexError('upstream.rejected', message, {
        retryable: false,
        details,
        safeMessage: 'VirusTotal rejected the API key.',
      });
    case 'TransientError':
      return new ReflexError('upstream.unavailable', message, { details, safeMessage: 'VirusTotal is unavailable; retrying later.' });
    case 'DeadlineExceededError':
      return new ReflexError('timeout', message, { details, safeMessage: 'VirusTotal timed out.' });
    case 'InvalidArgumentError':
    case 'BadRequestError':
      return new ReflexError('input.invalid', message, { details, safeMessage: 'VirusTotal says the observable is not valid.' });
    default:
      return undefined;
  }
}

function errorEnvelope(body: unknown): { code: string; message: string } | undefined {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { code, message } = body.error;
  return typeof code === 'string' ? { code, message: typeof message === 'string' ? message : '' } : undefined;
}

function analysisStats(body: unknown): AnalysisStats | undefined {
  if (!isRecord(body) || !isRecord(body.data) || !isRecord(body.data.attributes)) return undefined;
  const stats = body.data.attributes.last_analysis_stats;
  return isRecord(stats) ? (stats as AnalysisStats) : undefined;
}

function count(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

