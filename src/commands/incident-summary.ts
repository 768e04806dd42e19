import type { ChatMessage } from '../bot/chat-types.ts';
import { shortIncidentId, type TimelineEntry } from '../store/incidents.ts';
import type { Incident } from '../store/schema.ts';
import { formatDuration, formatTime, severityLabel } from './format.ts';

/**
 * A summary built only from the incident and its timeline, so `summary` answers the same way
 * every time and works with no assistant configured: what happened, when, how severe, what was
 * done, and who decided.
 *
 * Timeline kinds it reads (the convention other parts write to):
 * - `incident.created`, `incident.closed`, `incident.severity_changed`
 * - `approval.*` with `data.decision` `approve` | `deny`: decisions
 * - `action.*`, `playbook.*`, `containment.*`: actions taken
 * - `note`, `chat.pinned`: notes
 */
export function summarizeIncident(incident: Incident, timeline: readonly TimelineEntry[], now: Date): ChatMessage {
  const decisions = timeline.filter((e) => e.kind.startsWith('approval.'));
  const actions = timeline.filter((e) => /^(action|playbook|containment)\./.test(e.kind));
  const notes = timeline.filter((e) => e.kind === 'note' || e.kind === 'chat.pinned');
  const sevChanges = timeline.filter((e) => e.kind === 'incident.severity_changed');

  const end = incident.closed_at ?? now;
  const lines: string[] = [];
  lines.push(
    `*What:* ${incident.title}${incident.summary ? `. ${incident.summary}` : ''}`,
    `*When:* opened ${formatTime(incident.created_at)} by ${incident.created_by}; ` +
      (incident.closed_at
        ? `closed ${formatTime(incident.closed_at)} after ${formatDuration(end.getTime() - incident.created_at.getTime())}.`
        : `${incident.status} for ${formatDuration(end.getTime() - incident.created_at.getTime())}.`),
  );
  const initial = sevChanges.length > 0 ? Number((sevChanges[0]!.data as { from?: number }).from ?? incident.severity) : incident.severity;
  lines.push(
    `*Severity:* ${severityLabel(incident.severity)}` +
      (sevChanges.length > 0
        ? ` (opened at SEV${initial}; ${sevChanges.map((e) => `SEV${String((e.data as { to?: number }).to)} at ${formatTime(e.created_at)} by ${e.actor}`).join(', ')})`
        : ''),
  );
  lines.push(
    actions.length > 0
      ? `*Actions taken (${actions.length}):*\n${actions.map((e) => `• ${formatTime(e.created_at)} ${e.text} (${e.actor})`).join('\n')}`
      : '*Actions taken:* none recorded.',
  );
  lines.push(
    decisions.length > 0
      ? `*Decisions (${decisions.length}):*\n${decisions.map((e) => `• ${formatTime(e.created_at)} ${decisionVerb(e)} by ${e.actor}: ${e.text}`).join('\n')}`
      : '*Decisions:* none recorded.',
  );
  if (notes.length > 0) {
    const last = notes[notes.length - 1]!;
    lines.push(`*Notes:* ${notes.length}, the latest by ${last.actor} at ${formatTime(last.created_at)}: ${last.text}`);
  }
  return {
    title: `Summary of incident ${shortIncidentId(incident.id)} (${incident.status})`,
    text: lines.join('\n'),
    context: [`Built from ${timeline.length} timeline entr${timeline.length === 1 ? 'y' : 'ies'} at ${formatTime(now)}`],
  };
}

function decisionVerb(e: TimelineEntry): string {
  const d = (e.data as { decision?: unknown }).decision;
  return d === 'approve' ? 'approved' : d === 'deny' ? 'denied' : e.kind.slice('approval.'.length) || 'decided';
}
