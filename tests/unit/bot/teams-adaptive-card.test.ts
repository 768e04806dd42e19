import { describe, expect, it } from 'vitest';
import { renderAdaptiveCard, teamsPlainText } from '../../../src/bot/teams/adaptive-card.ts';
import { teamsChannelName } from '../../../src/bot/incident-channels/teams-incident-channels.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';

type Card = { type: string; version: string; body: { type: string; inlines?: { text: string; weight?: string; fontType?: string }[] }[]; actions?: Record<string, unknown>[] };

describe('ChatMessage as an Adaptive Card', () => {
  it('has the shape of the outgoing card fixture (type, version, schema) and Action.Execute buttons', () => {
    const outgoing = fixtureJson<{ attachments: { contentType: string; content: { type: string; version: string; $schema: string } }[] }>('teams/teams_net_TestData_AdaptiveCardActivity_outgoing.json').attachments[0]!;
    const card = renderAdaptiveCard({
      title: 'Approval needed',
      text: 'Isolate *web-01*?',
      buttons: [
        { actionId: 'approval.approve', label: 'Approve', value: 'a1', style: 'primary' },
        { actionId: 'approval.deny', label: 'Deny', value: 'a1', style: 'danger' },
      ],
    }) as unknown as Card;
    expect(outgoing.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(card.type).toBe(outgoing.content.type);
    expect(card.version).toBe(outgoing.content.version);
    expect(card).toMatchObject({ $schema: outgoing.content.$schema });
    expect(card.actions).toEqual([
      { type: 'Action.Execute', title: 'Approve', verb: 'approval.approve', data: { value: 'a1' }, style: 'positive' },
      { type: 'Action.Execute', title: 'Deny', verb: 'approval.deny', data: { value: 'a1' }, style: 'destructive' },
    ]);
  });

  it('renders our markup as text runs and never as Markdown, so a hostile title stays text', () => {
    const card = renderAdaptiveCard({ text: ':rotating_light: *SEV1* `1a2b3c4d` [reset your password](https://evil.example) snake_case_name' }) as unknown as Card;
    const runs = card.body.flatMap((b) => b.inlines ?? []);
    expect(card.body.every((b) => b.type === 'RichTextBlock')).toBe(true);
    expect(runs).toEqual([
      { type: 'TextRun', text: '🚨 ' },
      { type: 'TextRun', text: 'SEV1', weight: 'Bolder' },
      { type: 'TextRun', text: ' ' },
      { type: 'TextRun', text: '1a2b3c4d', fontType: 'Monospace' },
      { type: 'TextRun', text: ' [reset your password](https://evil.example) snake_case_name' },
    ]);
    expect(teamsPlainText(':no_entry: `incident close` needs *responder*')).toBe('⛔ incident close needs responder');
  });

  it('stays under Teams’ message size however long the answer', () => {
    const text = Array.from({ length: 2000 }, (_, i) => `line ${i} *bold* _it_ \`code\``).join('\n');
    const card = renderAdaptiveCard({ title: 'Timeline', text, fields: [{ label: 'x', value: 'y'.repeat(5000) }] });
    expect(JSON.stringify(card).length).toBeLessThanOrEqual(24_000);
    expect(JSON.stringify(card)).toContain('cut: too long for a Teams card');
  });
});

describe('teamsChannelName', () => {
  it('keeps names that fit Teams’ 50 characters and shortens others distinctly and repeatably', () => {
    expect(teamsChannelName('inc-20261121-1a2b3c4d-ransomware')).toBe('inc-20261121-1a2b3c4d-ransomware');
    const long = 'inc-20261121-1a2b3c4d-ransomware-on-every-web-server-in-the-dmz';
    const a = teamsChannelName(long);
    const b = teamsChannelName(`${long}-2`);
    expect(a.length).toBeLessThanOrEqual(50);
    expect(b.length).toBeLessThanOrEqual(50);
    expect(a).not.toBe(b);
    expect(teamsChannelName(long)).toBe(a);
    expect(a.startsWith('inc-20261121-1a2b3c4d-')).toBe(true);
  });
});
