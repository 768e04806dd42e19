import { describe, expect, it } from 'vitest';
import { summarizeIncident } from '../../../src/commands/incident-summary.ts';
import type { TimelineEntry } from '../../../src/store/incidents.ts';
import type { Incident } from '../../../src/store/schema.ts';

const at = (hhmm: string) => new Date(`2026-11-21T${hhmm}:00.000Z`);

const incident: Incident = {
  id: '1a2b3c4d-0000-4000-8000-000000000001',
  tenant_id: 'acme',
  title: 'Ransomware on web-01',
  severity: 1,
  status: 'closed',
  summary: 'Files encrypted under /srv',
  created_by: 'slack:T111:W111',
  created_at: at('09:00'),
  acknowledged_at: null,
  closed_at: at('11:30'),
};

let seq = 0;
const entry = (time: string, kind: string, actor: string, text: string, data: Record<string, unknown> = {}): TimelineEntry => ({
  id: String(++seq),
  tenant_id: 'acme',
  incident_id: incident.id,
  kind,
  actor,
  text,
  data,
  created_at: at(time),
});

const timeline: TimelineEntry[] = [
  entry('09:00', 'incident.created', 'slack:T111:W111', 'Incident opened at SEV2: Ransomware on web-01', { severity: 2 }),
  entry('09:05', 'incident.severity_changed', 'slack:T111:W222', 'Severity raised from SEV2 to SEV1', { from: 2, to: 1 }),
  entry('09:10', 'playbook.step.succeeded', 'engine', 'Isolated host web-01 (defender)'),
  entry('09:12', 'approval.decided', 'slack:T111:W333', 'Disable account jdoe', { decision: 'approve' }),
  entry('09:20', 'approval.decided', 'slack:T111:W444', 'Wipe web-01', { decision: 'deny' }),
  entry('09:25', 'action.firewall.block', 'engine', 'Blocked 198.51.100.7 for 24 h'),
  entry('10:00', 'note', 'slack:T111:W111', 'Backups verified'),
  entry('10:30', 'chat.pinned', 'slack:T111:W222', 'Restore started from the 02:00 snapshot'),
  entry('11:30', 'incident.closed', 'slack:T111:W111', 'Incident closed: restored'),
];

describe('deterministic incident summary', () => {
  it('says what, when, how severe, what was done and who decided, from the timeline alone', () => {
    const m = summarizeIncident(incident, timeline, at('12:00'));
    expect(m.title).toBe('Summary of incident 1a2b3c4d (closed)');
    expect(m.text).toBe(
      [
        '*What:* Ransomware on web-01. Files encrypted under /srv',
        '*When:* opened 2026-11-21 09:00 UTC by slack:T111:W111; closed 2026-11-21 11:30 UTC after 2 h 30 min.',
        '*Severity:* SEV1 (critical) (opened at SEV2; SEV1 at 2026-11-21 09:05 UTC by slack:T111:W222)',
        '*Actions taken (2):*',
        '• 2026-11-21 09:10 UTC Isolated host web-01 (defender) (engine)',
        '• 2026-11-21 09:25 UTC Blocked 198.51.100.7 for 24 h (engine)',
        '*Decisions (2):*',
        '• 2026-11-21 09:12 UTC approved by slack:T111:W333: Disable account jdoe',
        '• 2026-11-21 09:20 UTC denied by slack:T111:W444: Wipe web-01',
        '*Notes:* 2, the latest by slack:T111:W222 at 2026-11-21 10:30 UTC: Restore started from the 02:00 snapshot',
      ].join('\n'),
    );
    expect(m.context).toEqual(['Built from 9 timeline entries at 2026-11-21 12:00 UTC']);
  });

  it('is the same every time for the same input', () => {
    expect(summarizeIncident(incident, timeline, at('12:00'))).toEqual(summarizeIncident(incident, [...timeline], at('12:00')));
  });

  it('says so when nothing was done yet, and counts an open incident up to now', () => {
    const open: Incident = { ...incident, status: 'open', closed_at: null, summary: null, severity: 3 };
    const m = summarizeIncident(open, [timeline[0]!], at('09:45'));
    expect(m.title).toBe('Summary of incident 1a2b3c4d (open)');
    expect(m.text).toBe(
      [
        '*What:* Ransomware on web-01',
        '*When:* opened 2026-11-21 09:00 UTC by slack:T111:W111; open for 45 min.',
        '*Severity:* SEV3 (medium)',
        '*Actions taken:* none recorded.',
        '*Decisions:* none recorded.',
      ].join('\n'),
    );
    expect(m.context).toEqual(['Built from 1 timeline entry at 2026-11-21 09:45 UTC']);
  });
});
