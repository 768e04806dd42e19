import { formatTime, severityLabel } from '../../commands/format.ts';
import type { IntelVerdict } from '../../integrations/ports.ts';
import type { StoredVerdict } from '../../store/intel-reports.ts';
import type { EnrichmentRecord } from '../../pipeline/stages/enrich-stage.ts';
import type { SentinelEvent } from '../../pipeline/event.ts';
import { shortIncidentId } from '../../store/incidents.ts';
import type { Incident } from '../../store/schema.ts';
import type { ChatMessage } from '../chat-types.ts';

/** Button action ids of the card. Each button carries only the incident id. */
export const CARD_ACTIONS = { runPlaybook: 'incident.run_playbook', escalate: 'incident.escalate', close: 'incident.close' } as const;

/** What the card shows of an alert linked to the incident. */
export interface CardAlert {
  event: SentinelEvent;
  enrichment: EnrichmentRecord | null;
}

const MAX_OBSERVABLES = 12;
const RANK: Record<IntelVerdict['verdict'], number> = { malicious: 0, suspicious: 1, unknown: 2, harmless: 3 };

/**
 * The summary card pinned in a SEV1 channel: what, where, severity, observables with what intel
 * said of them, and Run playbook / Escalate / Close buttons. Platform-neutral; each transport's
 * renderer (Block Kit for Slack) escapes it.
 *
 * @example
 * await transport.post({ channelId }, incidentSummaryCard(incident, alerts));
 */
export function incidentSummaryCard(incident: Incident, alerts: readonly CardAlert[]): ChatMessage {
  const hosts = unique(alerts.map((a) => [a.event.host.name, a.event.host.ip].filter(Boolean).join(' / ')).filter(Boolean));
  const users = unique(alerts.map((a) => a.event.principal.user ?? '').filter(Boolean));
  const sources = unique(alerts.map((a) => a.event.source));
  const observables = observableLines(alerts);
  return {
    title: `:rotating_light: ${severityLabel(incident.severity)}: ${incident.title}`,
    text: incident.summary ?? incident.title,
    fields: [
      { label: 'What', value: incident.title },
      { label: 'Where', value: hosts.length ? hosts.join(', ') : 'no host reported' },
      { label: 'Severity', value: severityLabel(incident.severity) },
      { label: 'Opened', value: `${formatTime(incident.created_at)} by ${incident.created_by}` },
      ...(users.length ? [{ label: 'User', value: users.join(', ') }] : []),
      ...(sources.length ? [{ label: 'Source', value: `${sources.join(', ')} (${alerts.length} alert${alerts.length === 1 ? '' : 's'})` }] : []),
      { label: 'Observables', value: observables.length ? observables.join('\n') : 'none reported' },
    ],
    buttons: [
      { actionId: CARD_ACTIONS.runPlaybook, label: 'Run playbook', value: incident.id, style: 'primary' },
      { actionId: CARD_ACTIONS.escalate, label: 'Escalate', value: incident.id },
      { actionId: CARD_ACTIONS.close, label: 'Close', value: incident.id, style: 'danger' },
    ],
    context: [`incident ${shortIncidentId(incident.id)}`, `id ${incident.id}`],
  };
}

/** `ip 203.0.113.9: malicious (AbuseIPDB 100, VirusTotal 87)`, worst verdict first. */
function observableLines(alerts: readonly CardAlert[]): string[] {
  const seen = new Map<string, { kind: string; value: string; verdicts: StoredVerdict[]; enriched: boolean }>();
  for (const a of alerts) {
    for (const kind of ['ip', 'domain', 'url', 'hash'] as const) {
      for (const value of a.event.observables[kind]) {
        const key = `${kind}:${value}`;
        const entry = seen.get(key) ?? { kind, value, verdicts: [], enriched: false };
        const verdicts = (a.enrichment?.verdicts ?? []).filter((v) => v.observable.kind === kind && v.observable.value === value);
        entry.verdicts.push(...verdicts);
        entry.enriched ||= Boolean(a.enrichment) && a.enrichment!.status !== 'not_enriched';
        seen.set(key, entry);
      }
    }
  }
  const rows = [...seen.values()].map((o) => {
    const worst = o.verdicts.reduce<IntelVerdict['verdict'] | undefined>((w, v) => (w === undefined || RANK[v.verdict] < RANK[w] ? v.verdict : w), undefined);
    const detail = unique(o.verdicts.map((v) => `${v.provider} ${v.score}`)).join(', ');
    const intel = worst ? `${worst} (${detail})` : o.enriched ? 'no verdict' : 'not enriched';
    return { rank: worst ? RANK[worst] : 4, line: `${o.kind} ${o.value}: ${intel}` };
  });
  rows.sort((a, b) => a.rank - b.rank);
  const lines = rows.slice(0, MAX_OBSERVABLES).map((r) => r.line);
  if (rows.length > MAX_OBSERVABLES) lines.push(`… and ${rows.length - MAX_OBSERVABLES} more`);
  return lines;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
