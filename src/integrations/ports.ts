/**
 * Ports the SentinelNet enrich and case stages talk to (DESIGN.md §4). Vendors plug in behind
 * them; the pipeline never sees a vendor payload except as `raw`.
 */

/** What an intel provider can be asked about. */
export type IntelObservableKind = 'ip' | 'domain' | 'url' | 'hash';

export interface IntelObservable {
  kind: IntelObservableKind;
  value: string;
}

/**
 * `unknown` means the provider has no opinion (never seen it, not analysed yet), which is not
 * the same as `harmless`: a 404 from an intel source is an answer, not an error.
 */
export type IntelVerdictLabel = 'malicious' | 'suspicious' | 'harmless' | 'unknown';

export interface IntelVerdict {
  /** The provider's `name`. */
  provider: string;
  observable: IntelObservable;
  verdict: IntelVerdictLabel;
  /** 0 = no evidence of harm, 100 = certainly malicious; an integer. Each adapter documents its scale. */
  score: number;
  /** One line an analyst can read in chat. */
  summary: string;
  /** The vendor's answer as received, for the incident record. */
  raw: unknown;
  /** ISO-8601 instant of the lookup (a string so verdicts survive a queue hop unchanged). */
  fetchedAt: string;
}

/**
 * A threat-intel source.
 *
 * `lookup` answers a verdict for every observable it `supports`, including `unknown` for things
 * it has never seen; it throws a `ReflexError` only for failures (rate limit, outage, bad key),
 * and `input.invalid` for a kind it does not support or a malformed value.
 *
 * @example
 * const intel: IntelProvider = new VirusTotalClient({ apiKey });
 * if (intel.supports('domain')) {
 *   const v = await intel.lookup({ kind: 'domain', value: 'down.mykings.pw' });
 *   // v.verdict === 'malicious', v.score === 8, v.summary === '8/98 engines flag it malicious, 0 suspicious'
 * }
 */
export interface IntelProvider {
  readonly name: string;
  supports(kind: IntelObservableKind): boolean;
  lookup(observable: IntelObservable): Promise<IntelVerdict>;
}

/** SentinelNet severity: 1 = critical … 4 = info (inverted against most case systems). */
export type Severity = 1 | 2 | 3 | 4;

/** Traffic Light Protocol 2.0 labels. */
export type Tlp = 'clear' | 'green' | 'amber' | 'amber+strict' | 'red';

export type CaseObservableKind =
  | 'ip'
  | 'domain'
  | 'fqdn'
  | 'url'
  | 'hash'
  | 'hostname'
  | 'mail'
  | 'filename'
  | 'user-agent'
  | 'other';

export interface CaseObservable {
  kind: CaseObservableKind;
  value: string;
  ioc?: boolean;
  tags?: string[];
  message?: string;
  tlp?: Tlp;
}

export interface CaseAlertInput {
  /** With `source` and `sourceRef`, the key the case system dedupes alerts on. */
  type: string;
  source: string;
  /** Our dedupe fingerprint, so re-sending the same alert is a no-op. */
  sourceRef: string;
  title: string;
  description: string;
  severity: Severity;
  tags?: string[];
  tlp?: Tlp;
  date?: Date;
  externalLink?: string;
  observables?: CaseObservable[];
}

export interface CaseInput {
  title: string;
  description: string;
  severity: Severity;
  tags?: string[];
  tlp?: Tlp;
  /** Tasks to open with the case, e.g. a checklist from the playbook. */
  tasks?: { title: string; description?: string }[];
}

/** `created: false` when the case system already had it (a retried pipeline job). */
export interface CaseSystemRef {
  id: string;
  created: boolean;
}

export interface CaseRef extends CaseSystemRef {
  /** The human case number shown in the case system's UI, when it has one. */
  number?: number;
}

export interface ExistingAlert {
  id: string;
  /** Set once the alert has been promoted to (or merged into) a case. */
  caseId?: string;
}

export type CaseTarget = { kind: 'alert' | 'case'; id: string };

/**
 * An external case-management system (TheHive). The pipeline calls it from queue jobs that may
 * run twice, so `createAlert`, `promoteAlertToCase` and `addObservable` are safe to retry.
 * `createCase` and `addComment` are not (a case system has no key to dedupe them on): the
 * pipeline opens cases by promoting its alerts.
 *
 * @example
 * const cases: CaseSystem = new TheHiveClient({ baseUrl, apiKey });
 * const alert = await cases.createAlert({
 *   type: 'wazuh', source: 'sentinelnet', sourceRef: fingerprint, title: 'SSH brute force on web-01',
 *   description: '…', severity: 2, observables: [{ kind: 'ip', value: '198.51.100.100', ioc: true }],
 * });
 * if (!alert.created) log.info('already in TheHive', alert.id);
 * const c = await cases.promoteAlertToCase(alert.id);
 * await cases.addComment({ kind: 'case', id: c.id }, 'Blocked 198.51.100.100 at the edge firewall.');
 */
export interface CaseSystem {
  readonly name: string;
  /** Creates the alert, or returns the existing one with `created: false` for a duplicate sourceRef. */
  createAlert(input: CaseAlertInput): Promise<CaseSystemRef>;
  /** Narrow with `scope` when several sources or types share a sourceRef space. */
  findAlertBySourceRef(sourceRef: string, scope?: { source?: string; type?: string }): Promise<ExistingAlert | null>;
  createCase(input: CaseInput): Promise<CaseRef>;
  /** Returns the alert's existing case with `created: false` if it was promoted already. */
  promoteAlertToCase(alertId: string, options?: { caseTemplate?: string }): Promise<CaseRef>;
  /** Returns the ids of the observables created (one per value). */
  addObservable(target: CaseTarget, observable: CaseObservable): Promise<{ ids: string[] }>;
  addComment(target: CaseTarget, message: string): Promise<void>;
}
