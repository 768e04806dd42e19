import type { ChatButton, ChatMessage } from '../bot/chat-types.ts';
import { shortIncidentId } from '../store/incidents.ts';
import type { Incident } from '../store/schema.ts';

/**
 * Shared wording for command answers. Message text uses the small markup every transport can
 * render: `*bold*`, `_italic_` and `` `code` ``; transports escape everything else.
 */
const SEVERITY_NAMES: Record<number, string> = { 1: 'critical', 2: 'high', 3: 'medium', 4: 'info' };

export function severityLabel(severity: number): string {
  return `SEV${severity} (${SEVERITY_NAMES[severity] ?? 'unknown'})`;
}

/** `2026-11-21 09:04 UTC`: one zone for everyone in an incident channel. */
export function formatTime(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function formatDuration(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function incidentLine(inc: Incident): string {
  return `\`${shortIncidentId(inc.id)}\` SEV${inc.severity} · ${inc.status} · ${inc.title}`;
}

/** The card `incident new` and `incident show` answer with. */
export function incidentCard(inc: Incident, opts: { headline?: string } = {}): ChatMessage {
  const buttons: ChatButton[] = [{ actionId: 'incident.timeline', label: 'Timeline', value: inc.id }];
  if (inc.status !== 'closed') buttons.push({ actionId: 'incident.close', label: 'Close', value: inc.id, style: 'danger' });
  return {
    title: `Incident ${shortIncidentId(inc.id)}: ${inc.title}`,
    text: opts.headline ?? (inc.summary ? inc.summary : `${severityLabel(inc.severity)}, ${inc.status}.`),
    fields: [
      { label: 'Severity', value: severityLabel(inc.severity) },
      { label: 'Status', value: inc.status },
      { label: 'Opened', value: `${formatTime(inc.created_at)} by ${inc.created_by}` },
      ...(inc.closed_at ? [{ label: 'Closed', value: formatTime(inc.closed_at) }] : []),
    ],
    buttons,
    context: [`id ${inc.id}`],
  };
}

export function problem(text: string, usage?: string): ChatMessage {
  return { text: `:warning: ${text}${usage ? `\nUsage: \`${usage}\`` : ''}`, ephemeral: true };
}
