import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord, describePlayError, unexpectedAnswer } from '../http.ts';
import type {
  IntelObservable,
  IntelObservableKind,
  IntelProvider,
  IntelVerdict,
  IntelVerdictLabel,
  Tlp,
} from '../ports.ts';

export interface CortexClientOptions {
  /** e.g. https://cortex.example.org:9001 */
  baseUrl: string;
  apiKey: string;
  /**
   * Analyzers `lookup` runs, by instance name (`AbuseIPDB_2_0`), definition id or instance id.
   * Only those that accept the observable's data type run.
   */
  analyzers: readonly string[];
  /** TLP sent with each job; analyzers with a lower `max_tlp` refuse to run. Default amber. */
  tlp?: Tlp;
  /** How long `lookup` waits for each report. Default 60 s. */
  waitMs?: number;
  /** Bypass Cortex's job cache (`?force=1`). Default false: cached reports save vendor quota. */
  force?: boolean;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
}

export type CortexTaxonomyLevel = 'info' | 'safe' | 'suspicious' | 'malicious';

export interface CortexTaxonomy {
  level: CortexTaxonomyLevel;
  namespace: string;
  predicate: string;
  value: string;
}

export interface CortexAnalyzer {
  id: string;
  name: string;
  analyzerDefinitionId: string | undefined;
  dataTypeList: string[];
}

export type CortexJobStatus = 'Waiting' | 'InProgress' | 'Success' | 'Failure' | 'Deleted';

export interface CortexJob {
  id: string;
  status: CortexJobStatus;
  analyzerId: string;
  analyzerName: string;
  dataType: string;
  /** Present once the job is done and fetched through a report endpoint. */
  report: CortexReport | undefined;
  raw: unknown;
}

export interface CortexReport {
  success: boolean;
  taxonomies: CortexTaxonomy[];
  errorMessage: string | undefined;
  full: unknown;
}

export interface CortexRunInput {
  data: string;
  dataType: string;
  tlp?: Tlp;
  message?: string;
  parameters?: Record<string, unknown>;
}

// Cortex speaks TLP 1.0 numbers. amber+strict has no number; red is the safe side of it.
const CORTEX_TLP: Record<Tlp, number> = { clear: 0, green: 1, amber: 2, 'amber+strict': 3, red: 3 };

const LEVEL_RANK: Record<CortexTaxonomyLevel, number> = { info: 0, safe: 1, suspicious: 2, malicious: 3 };
const LEVEL_VERDICT: Record<CortexTaxonomyLevel, IntelVerdictLabel> = {
  // `info` is a fact (an abuse contact, a country), not a judgement.
  info: 'unknown',
  safe: 'harmless',
  suspicious: 'suspicious',
  malicious: 'malicious',
};
const LEVEL_SCORE: Record<CortexTaxonomyLevel, number> = { info: 0, safe: 0, suspicious: 50, malicious: 100 };

const TERMINAL: ReadonlySet<string> = new Set(['Success', 'Failure', 'Deleted']);

/**
 * Cortex 3 analyzers, and an `IntelProvider` that runs the configured analyzers for an
 * observable's data type and takes the worst taxonomy level across their reports
 * (malicious 100, suspicious 50, safe and info 0; info alone is `unknown`).
 *
 * @example
 * const cortex = new CortexClient({ baseUrl, apiKey, analyzers: ['AbuseIPDB_2_0', 'VirusTotal_GetReport_3_1'] });
 * const v = await cortex.lookup({ kind: 'ip', value: '8.8.8.8' });
 * // or step by step:
 * const job = await cortex.runAnalyzer(analyzerId, { data: '8.8.8.8', dataType: 'ip' });
 * const done = await cortex.waitForReport(job.id, 30_000);
 */
export class CortexClient implements IntelProvider {
  readonly name = 'cortex';
  private readonly http: VendorHttpClient;
  private readonly analyzers: readonly string[];
  private readonly tlp: Tlp;
  private readonly waitMs: number;
  private readonly force: boolean;
  private readonly now: () => Date;

  constructor(opts: CortexClientOptions) {
    if (!opts.apiKey) throw new ReflexError('config.invalid', 'Cortex API key is empty');
    this.analyzers = opts.analyzers.map((a) => a.toLowerCase());
    this.tlp = opts.tlp ?? 'amber';
    this.waitMs = opts.waitMs ?? 60_000;
    this.force = opts.force ?? false;
    this.now = opts.now ?? (() => new Date());
    this.http = new VendorHttpClient({
      vendor: 'Cortex',
      baseUrl: opts.baseUrl,
      headers: { Authorization: `Bearer ${opts.apiKey}` },
      secretHeaders: ['Authorization'],
      describeError: describePlayError,
      now: () => this.now().getTime(),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  supports(kind: IntelObservableKind): boolean {
    // Cortex's data type names match our kinds one to one.
    return kind === 'ip' || kind === 'domain' || kind === 'url' || kind === 'hash';
  }

  /** Enabled analyzers that accept a data type (`GET /api/analyzer/type/{dataType}`). */
  async listAnalyzers(dataType: string): Promise<CortexAnalyzer[]> {
    const res = await this.http.request({ method: 'GET', path: `/api/analyzer/type/${encodeURIComponent(dataType)}` });
    if (!Array.isArray(res.body)) throw unexpectedAnswer('Cortex', 'analyzer list is not an array');
    return res.body.filter(isRecord).map((a) => ({
      id: str(a.id ?? a._id),
      name: str(a.name),
      analyzerDefinitionId: typeof a.analyzerDefinitionId === 'string' ? a.analyzerDefinitionId : undefined,
      dataTypeList: Array.isArray(a.dataTypeList) ? a.dataTypeList.filter((t): t is string => typeof t === 'string') : [],
    }));
  }

  /** Starts a job; Cortex may hand back a cached job that is already finished. */
  async runAnalyzer(analyzerId: string, input: CortexRunInput): Promise<CortexJob> {
    const res = await this.http.request({
      method: 'POST',
      path: `/api/analyzer/${encodeURIComponent(analyzerId)}/run`,
      query: { force: this.force ? 1 : undefined },
      json: {
        data: input.data,
        dataType: input.dataType,
        tlp: CORTEX_TLP[input.tlp ?? this.tlp],
        message: input.message ?? '',
        ...(input.parameters ? { parameters: input.parameters } : {}),
      },
    });
    return toJob(res.body);
  }

  /** `GET /api/job/{id}` without the report. */
  async getJob(jobId: string): Promise<CortexJob> {
    const res = await this.http.request({ method: 'GET', path: `/api/job/${encodeURIComponent(jobId)}` });
    return toJob(res.body);
  }

  /**
   * Waits up to `atMostMs` for a job to finish (`waitreport?atMost=`). Throws a retryable
   * `timeout` when the job is still running; the job id is in `details` to resume with.
   */
  async waitForReport(jobId: string, atMostMs: number = this.waitMs): Promise<CortexJob> {
    const seconds = Math.max(1, Math.ceil(atMostMs / 1000));
    const res = await this.http.request({
      method: 'GET',
      path: `/api/job/${encodeURIComponent(jobId)}/waitreport`,
      query: { atMost: `${seconds}second` },
      // Cortex holds the request open for up to atMost; give the network some slack on top.
      timeoutMs: seconds * 1000 + 10_000,
    });
    const job = toJob(res.body);
    if (!TERMINAL.has(job.status)) {
      throw new ReflexError('timeout', `Cortex job ${jobId} (${job.analyzerName}) still ${job.status} after ${seconds} s`, {
        details: { vendor: 'Cortex', jobId, status: job.status },
        safeMessage: `Cortex analyzer ${job.analyzerName} is still running.`,
      });
    }
    return job;
  }

  async lookup(observable: IntelObservable): Promise<IntelVerdict> {
    if (!this.supports(observable.kind)) {
      throw new ReflexError('input.invalid', `Cortex cannot look up a ${String(observable.kind)}`);
    }
    const dataType = observable.kind;
    const available = await this.listAnalyzers(dataType);
    const chosen = available.filter((a) =>
      [a.id, a.name, a.analyzerDefinitionId].some((n) => n !== undefined && this.analyzers.includes(n.toLowerCase())),
    );
    if (chosen.length === 0) {
      return this.verdict(observable, 'unknown', 0, `no configured Cortex analyzer accepts ${dataType}`, { jobs: [] });
    }

    const settled = await Promise.allSettled(
      chosen.map(async (a) => {
        const started = await this.runAnalyzer(a.id, { data: observable.value.trim(), dataType, message: 'SENTreflex enrichment' });
        return TERMINAL.has(started.status) && started.report ? started : this.waitForReport(started.id);
      }),
    );

    const jobs = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const succeeded = jobs.filter((j) => j.status === 'Success' && j.report?.success === true);
    const failures = [
      ...settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : [])),
      ...jobs.filter((j) => !succeeded.includes(j)).map((j) => `${j.analyzerName}: ${j.report?.errorMessage ?? j.status}`),
    ];
    if (succeeded.length === 0) {
      // When no job even ran, the first transport failure keeps its own code (rate limit, bad key).
      const first = settled[0];
      if (jobs.length === 0 && first?.status === 'rejected') throw first.reason;
      throw new ReflexError('upstream.unavailable', `every Cortex analyzer failed: ${failures.join('; ')}`, {
        details: { vendor: 'Cortex' },
        safeMessage: 'Cortex could not analyse the observable; retrying later.',
      });
    }

    const taxonomies = succeeded.flatMap((j) => (j.report?.taxonomies ?? []).map((t) => ({ job: j, t })));
    const worst = taxonomies.reduce<CortexTaxonomyLevel>(
      (acc, { t }) => (LEVEL_RANK[t.level] > LEVEL_RANK[acc] ? t.level : acc),
      'info',
    );
    const parts = taxonomies.map(({ job, t }) => `${job.analyzerName} ${t.namespace}:${t.predicate}=${t.value} (${t.level})`);
    if (failures.length > 0) parts.push(`${failures.length} analyzer(s) failed`);
    const summary = parts.length > 0 ? parts.join('; ') : `${succeeded.length} analyzer(s) reported nothing`;
    return this.verdict(observable, LEVEL_VERDICT[worst], LEVEL_SCORE[worst], summary, {
      jobs: jobs.map((j) => j.raw),
    });
  }

  private verdict(
    observable: IntelObservable,
    verdict: IntelVerdictLabel,
    score: number,
    summary: string,
    raw: unknown,
  ): IntelVerdict {
    return { provider: this.name, observable, verdict, score, summary, raw, fetchedAt: this.now().toISOString() };
  }
}

function toJob(body: unknown): CortexJob {
  if (!isRecord(body)) throw unexpectedAnswer('Cortex', 'job is not an object');
  const id = str(body.id ?? body._id);
  if (id === '') throw unexpectedAnswer('Cortex', 'job has no id');
  const status = str(body.status);
  return {
    id,
    status: (['Waiting', 'InProgress', 'Success', 'Failure', 'Deleted'].includes(status) ? status : 'InProgress') as CortexJobStatus,
    analyzerId: str(body.analyzerId),
    analyzerName: str(body.analyzerName) || str(body.analyzerDefinitionId) || str(body.analyzerId),
    dataType: str(body.dataType),
    // An unfinished job's `report` is a status string, not an object (Cortex API guide).
    report: isRecord(body.report) ? toReport(body.report) : undefined,
    raw: body,
  };
}

function toReport(r: Record<string, unknown>): CortexReport {
  const summary = isRecord(r.summary) ? r.summary : {};
  const taxonomies = (Array.isArray(summary.taxonomies) ? summary.taxonomies : []).filter(isRecord).flatMap((t) => {
    const level = str(t.level).toLowerCase();
    if (!(level in LEVEL_RANK)) return [];
    return [{ level: level as CortexTaxonomyLevel, namespace: str(t.namespace), predicate: str(t.predicate), value: str(t.value) }];
  });
  return {
    success: r.success === true,
    taxonomies,
    errorMessage: typeof r.errorMessage === 'string' ? r.errorMessage : undefined,
    full: r.full,
  };
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

