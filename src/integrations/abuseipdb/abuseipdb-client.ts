import { isIP } from 'node:net';
import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { IntelObservable, IntelObservableKind, IntelProvider, IntelVerdict, IntelVerdictLabel } from '../ports.ts';

export interface AbuseIpdbClientOptions {
  apiKey: string;
  /** Default https://api.abuseipdb.com. */
  baseUrl?: string;
  /** How far back reports count (AbuseIPDB accepts 1..365). Default 90. */
  maxAgeInDays?: number;
  /** abuseConfidenceScore at or above which an IP is malicious / suspicious. Default 75 / 25. */
  thresholds?: { malicious?: number; suspicious?: number };
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
}

export interface AbuseIpdbBlockReport {
  networkAddress: string;
  netmask: string;
  numPossibleHosts: number;
  reportedAddresses: {
    ipAddress: string;
    numReports: number;
    mostRecentReport: string | null;
    abuseConfidenceScore: number;
    countryCode: string | null;
  }[];
  raw: unknown;
}

export interface AbuseIpdbReportResult {
  ipAddress: string;
  abuseConfidenceScore: number;
}

/** AbuseIPDB rejects longer comments (docs: "max 1024 characters"). */
export const ABUSEIPDB_COMMENT_MAX = 1024;

/**
 * AbuseIPDB API v2: IP reputation (`IntelProvider`, ip only), network block checks and reporting.
 *
 * Score is AbuseIPDB's own `abuseConfidenceScore` (0..100). A whitelisted IP is harmless whatever
 * its score; an IP nobody has reported is `unknown`, not harmless.
 *
 * @example
 * const abuse = new AbuseIpdbClient({ apiKey: config.abuseipdb.apiKey });
 * const v = await abuse.lookup({ kind: 'ip', value: '198.51.100.100' }); // verdict 'malicious', score 100
 * await abuse.report('198.51.100.100', [18, 22], 'sshd brute force against web-01');
 */
export class AbuseIpdbClient implements IntelProvider {
  readonly name = 'abuseipdb';
  private readonly http: VendorHttpClient;
  private readonly maxAgeInDays: number;
  private readonly maliciousAt: number;
  private readonly suspiciousAt: number;
  private readonly now: () => Date;

  constructor(opts: AbuseIpdbClientOptions) {
    if (!opts.apiKey) throw new ReflexError('config.invalid', 'AbuseIPDB API key is empty');
    this.maxAgeInDays = validMaxAge(opts.maxAgeInDays ?? 90, 'config.invalid');
    this.maliciousAt = opts.thresholds?.malicious ?? 75;
    this.suspiciousAt = opts.thresholds?.suspicious ?? 25;
    this.now = opts.now ?? (() => new Date());
    this.http = new VendorHttpClient({
      vendor: 'AbuseIPDB',
      baseUrl: opts.baseUrl ?? 'https://api.abuseipdb.com',
      headers: { Key: opts.apiKey },
      secretHeaders: ['Key'],
      // AbuseIPDB sends Retry-After on 429; the reset header covers answers that lack it.
      rateLimitResetHeader: 'X-RateLimit-Reset',
      describeError: describeAbuseIpdbError,
      now: () => this.now().getTime(),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  supports(kind: IntelObservableKind): boolean {
    return kind === 'ip';
  }

  async lookup(observable: IntelObservable): Promise<IntelVerdict> {
    if (observable.kind !== 'ip') {
      throw new ReflexError('input.invalid', `AbuseIPDB cannot look up a ${observable.kind}`, {
        safeMessage: 'AbuseIPDB only knows IP addresses.',
      });
    }
    const ip = validIp(observable.value);
    const res = await this.http.request({
      method: 'GET',
      path: '/api/v2/check',
      query: { ipAddress: ip, maxAgeInDays: this.maxAgeInDays, verbose: true },
    });
    const data = dataOf(res.body);
    const score = clampScore(data.abuseConfidenceScore);
    const reports = typeof data.totalReports === 'number' ? data.totalReports : 0;
    const users = typeof data.numDistinctUsers === 'number' ? data.numDistinctUsers : 0;

    let verdict: IntelVerdictLabel;
    if (data.isWhitelisted === true) verdict = 'harmless';
    else if (score >= this.maliciousAt) verdict = 'malicious';
    else if (score >= this.suspiciousAt) verdict = 'suspicious';
    else if (reports === 0) verdict = 'unknown';
    else verdict = 'harmless';

    const where = [data.countryCode, data.isp].filter((s) => typeof s === 'string' && s !== '').join(', ');
    const summary =
      `abuse confidence ${score}%, ${reports} report(s) from ${users} user(s) in ${this.maxAgeInDays} days` +
      (data.isWhitelisted === true ? ', whitelisted' : '') +
      (where ? ` (${where})` : '');
    return { provider: this.name, observable, verdict, score, summary, raw: res.body, fetchedAt: this.now().toISOString() };
  }

  /** Reports on every reported address inside a network, e.g. `198.51.100.0/24` (AbuseIPDB allows up to /24). */
  async checkBlock(network: string, maxAgeInDays = 30): Promise<AbuseIpdbBlockReport> {
    if (!/^[0-9a-f:.]+\/\d{1,3}$/i.test(network.trim())) {
      throw new ReflexError('input.invalid', `AbuseIPDB check-block: not a CIDR network: ${network}`, {
        safeMessage: 'Give the network in CIDR form, e.g. 198.51.100.0/24.',
      });
    }
    const res = await this.http.request({
      method: 'GET',
      path: '/api/v2/check-block',
      query: { network: network.trim(), maxAgeInDays: validMaxAge(maxAgeInDays, 'input.invalid') },
    });
    const data = dataOf(res.body);
    const reported = Array.isArray(data.reportedAddress) ? data.reportedAddress : [];
    return {
      networkAddress: String(data.networkAddress ?? ''),
      netmask: String(data.netmask ?? ''),
      numPossibleHosts: typeof data.numPossibleHosts === 'number' ? data.numPossibleHosts : 0,
      reportedAddresses: reported.filter(isRecord).map((r) => ({
        ipAddress: String(r.ipAddress ?? ''),
        numReports: typeof r.numReports === 'number' ? r.numReports : 0,
        mostRecentReport: typeof r.mostRecentReport === 'string' ? r.mostRecentReport : null,
        abuseConfidenceScore: clampScore(r.abuseConfidenceScore),
        countryCode: typeof r.countryCode === 'string' ? r.countryCode : null,
      })),
      raw: res.body,
    };
  }

  /**
   * Reports an IP for abuse. `categories` are AbuseIPDB category ids (1..23, e.g. 18 brute force,
   * 22 SSH). The comment is shared publicly: keep personal data out of it. AbuseIPDB accepts one
   * report per IP per 15 minutes and answers a repeat with 429, which surfaces as rate limited.
   */
  async report(ip: string, categories: readonly number[], comment?: string): Promise<AbuseIpdbReportResult> {
    const address = validIp(ip);
    if (categories.length === 0 || categories.some((c) => !Number.isInteger(c) || c < 1 || c > 23)) {
      throw new ReflexError('input.invalid', `AbuseIPDB report: bad categories ${JSON.stringify(categories)}`, {
        safeMessage: 'AbuseIPDB categories must be one or more ids between 1 and 23.',
      });
    }
    const form: Record<string, string> = { ip: address, categories: [...new Set(categories)].join(',') };
    if (comment !== undefined && comment.trim() !== '') {
      // Better a truncated report than a rejected one; the full text stays on our timeline.
      form.comment = comment.length > ABUSEIPDB_COMMENT_MAX ? `${comment.slice(0, ABUSEIPDB_COMMENT_MAX - 1)}…` : comment;
    }
    const res = await this.http.request({ method: 'POST', path: '/api/v2/report', form });
    const data = dataOf(res.body);
    return { ipAddress: String(data.ipAddress ?? address), abuseConfidenceScore: clampScore(data.abuseConfidenceScore) };
  }
}

function dataOf(body: unknown): Record<string, unknown> {
  if (isRecord(body) && isRecord(body.data)) return body.data;
  throw new ReflexError('upstream.unavailable', 'AbuseIPDB answered 2xx without a data object', {
    details: { vendor: 'AbuseIPDB' },
    safeMessage: 'AbuseIPDB answered in an unexpected way.',
  });
}

/** AbuseIPDB's error envelope: `{"errors":[{"detail": "...", "status": 429}]}`. */
function describeAbuseIpdbError(body: unknown): string | undefined {
  if (!isRecord(body) || !Array.isArray(body.errors)) return undefined;
  const details = body.errors.filter(isRecord).map((e) => e.detail).filter((d): d is string => typeof d === 'string');
  return details.length > 0 ? details.join('; ') : undefined;
}

function validIp(value: string): string {
  const ip = value.trim();
  if (isIP(ip) === 0) {
    throw new ReflexError('input.invalid', `AbuseIPDB: not an IP address: ${ip.slice(0, 100)}`, {
      safeMessage: `Not a valid IP address: ${ip.slice(0, 100)}`,
    });
  }
  return ip;
}

function validMaxAge(days: number, code: 'config.invalid' | 'input.invalid'): number {
  if (!Number.isInteger(days) || days < 1 || days > 365) {
    throw new ReflexError(code, `AbuseIPDB maxAgeInDays must be 1..365, got ${days}`, {
      safeMessage: 'AbuseIPDB looks back between 1 and 365 days.',
    });
  }
  return days;
}

function clampScore(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) ? Math.max(0, Math.min(100, Math.round(n))) : 0;
}

