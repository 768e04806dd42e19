import { describe, expect, it } from 'vitest';
import type { AnyCommand } from '../../../src/commands/command.ts';
import { describeArgsError } from '../../../src/commands/command.ts';
import { CommandRegistry } from '../../../src/commands/registry.ts';
import { tokenize } from '../../../src/commands/tokenize.ts';

const registry = new CommandRegistry();

/** Parses a typed line the way dispatch does: match the command, then its grammar. */
function parse(line: string): { command: string; ok: true; args: unknown } | { command: string; ok: false; error: string } {
  const { tokens, tails } = tokenize(line);
  const m = registry.match(tokens);
  if (m.kind !== 'command') throw new Error(`${line}: no command (${m.kind})`);
  const r = (m.command as AnyCommand).args.safeParse({ tokens: tokens.slice(m.rest), tails: tails.slice(m.rest) });
  return r.success ? { command: m.command.name, ok: true, args: r.data } : { command: m.command.name, ok: false, error: describeArgsError(r.error) };
}

const ID = '1a2b3c4d-0000-4000-8000-000000000001';

describe('tokenize', () => {
  it('splits on whitespace, groups double (and typographic) quotes, keeps raw tails', () => {
    expect(tokenize('  run isolate-host host="web 01"  reason=x ')).toEqual({
      tokens: ['run', 'isolate-host', 'host=web 01', 'reason=x'],
      tails: ['run isolate-host host="web 01"  reason=x', 'isolate-host host="web 01"  reason=x', 'host="web 01"  reason=x', 'reason=x'],
    });
    expect(tokenize('note 1a2b3c4d \u201cquoted\u201d it\'s fine').tokens).toEqual(['note', '1a2b3c4d', 'quoted', "it's", 'fine']);
    expect(tokenize('').tokens).toEqual([]);
  });
});

describe('command matching', () => {
  it('finds two-word commands before one-word ones, case-insensitively', () => {
    const m = registry.match(['Incident', 'NEW', '1', 'x']);
    expect(m.kind === 'command' && m.command.name).toBe('incident new');
    expect(m.kind === 'command' && m.rest).toBe(2);
  });
  it('answers a bare group with its subcommands and an unknown word as unknown', () => {
    const g = registry.match(['incident']);
    expect(g.kind).toBe('group');
    expect(g.kind === 'group' && g.commands.map((c) => c.name)).toEqual(['incident new', 'incident list', 'incident show', 'incident sev', 'incident close']);
    expect(registry.match(['rm', '-rf'])).toEqual({ kind: 'unknown', word: 'rm' });
    // Reaction-only commands cannot be typed.
    expect(registry.match(['pin']).kind).toBe('unknown');
  });
  it('maps buttons and reactions to commands', () => {
    expect(registry.action('approval.approve')?.name).toBe('approve');
    expect(registry.action('approval.deny')?.name).toBe('deny');
    expect(registry.action('incident.close')?.name).toBe('incident close');
    expect(registry.action('a')).toBeUndefined();
    expect(registry.reaction('pushpin')?.name).toBe('pin');
    expect(registry.reaction('thumbsup')).toBeUndefined();
  });
});

describe('grammar: good input', () => {
  it.each<[string, string, unknown]>([
    ['help', 'help', {}],
    ['help incident new', 'help', { command: 'incident new' }],
    ['whoami', 'whoami', {}],
    ['enrich 198.51.100.7', 'enrich', { ioc: { kind: 'ip', value: '198.51.100.7' } }],
    ['enrich hxxps://evil[.]example/x?a=1', 'enrich', { ioc: { kind: 'url', value: 'https://evil.example/x?a=1' } }],
    ['incident new 2 Phishing wave hits  finance', 'incident new', { sev: 2, title: 'Phishing wave hits  finance' }],
    ['incident new SEV1 Ransomware on web-01', 'incident new', { sev: 1, title: 'Ransomware on web-01' }],
    ['incident list', 'incident list', {}],
    ['incident list all', 'incident list', { status: 'all' }],
    ['incident show 1A2B3C4D', 'incident show', { incident: '1a2b3c4d' }],
    [`incident show #${ID}`, 'incident show', { incident: ID }],
    ['incident close 1a2b3c4d false positive, user confirmed', 'incident close', { incident: '1a2b3c4d', reason: 'false positive, user confirmed' }],
    ['incident close 1a2b3c4d', 'incident close', { incident: '1a2b3c4d' }],
    ['incident sev 1a2b3c4d 1', 'incident sev', { incident: '1a2b3c4d', sev: 1 }],
    ['timeline 1a2b3c4d', 'timeline', { incident: '1a2b3c4d' }],
    ['note 1a2b3c4d Called the ISP, "ticket 42" open', 'note', { incident: '1a2b3c4d', text: 'Called the ISP, "ticket 42" open' }],
    ['summary 1a2b3c4d', 'summary', { incident: '1a2b3c4d' }],
    ['suggest 1a2b3c4d', 'suggest', { incident: '1a2b3c4d' }],
    ['playbooks', 'playbooks', {}],
    ['run host-isolation', 'run', { playbook: 'host-isolation', inputs: {} }],
    ['run host-isolation host="web 01" ttl=1h', 'run', { playbook: 'host-isolation', inputs: { host: 'web 01', ttl: '1h' } }],
    ['runs', 'runs', {}],
    ['runs 9f8e7d6c', 'runs', { run: '9f8e7d6c' }],
    ['approve 9f8e7d6c', 'approve', { approval: '9f8e7d6c' }],
    ['deny 9f8e7d6c not during business hours', 'deny', { approval: '9f8e7d6c', reason: 'not during business hours' }],
    ['role grant @U0456EFGH analyst', 'role grant', { user: 'U0456EFGH', role: 'analyst' }],
    ['role grant <@U0456EFGH|ann> Approver', 'role grant', { user: 'U0456EFGH', role: 'approver' }],
    ['role revoke U0456EFGH admin', 'role revoke', { user: 'U0456EFGH', role: 'admin' }],
    ['role list', 'role list', {}],
  ])('%s', (line, command, args) => {
    expect(parse(line)).toEqual({ command, ok: true, args });
  });
});

describe('grammar: bad input says what was wrong', () => {
  it.each<[string, string]>([
    ['whoami now', 'unexpected "now"'],
    ['enrich', 'missing <ioc>'],
    ['enrich "; rm -rf /', 'is not an IP address, domain, URL or file hash'],
    ['enrich 1.2.3.999', 'is not an IP address, domain, URL or file hash'],
    ['incident new', 'missing <sev>'],
    ['incident new 2', 'missing <title>'],
    ['incident new 5 Too severe', '"5" is not a severity: use 1 (critical) to 4 (info)'],
    ['incident new high Phishing', '"high" is not a severity'],
    [`incident new 1 ${'x'.repeat(201)}`, 'the title is longer than 200 characters'],
    ['incident list recent', '"recent" is not one of open, closed, all'],
    ['incident show', 'missing <incident>'],
    ['incident show 1a2b', '"1a2b" is not an incident id'],
    ["incident show ' or 1=1 --", 'is not an incident id'],
    ['incident sev 1a2b3c4d', 'missing <sev>'],
    ['incident sev 1a2b3c4d 0', '"0" is not a severity'],
    ['incident close zzzzzzzz', '"zzzzzzzz" is not an incident id'],
    ['timeline', 'missing <incident>'],
    ['note 1a2b3c4d', 'missing <text>'],
    [`note 1a2b3c4d ${'y'.repeat(4001)}`, 'the note is longer than 4,000 characters'],
    ['summary nope', '"nope" is not an incident id'],
    ['run', 'missing <playbook>'],
    ['run ../../etc/passwd', 'is not a playbook id'],
    ['run host-isolation host', '"host" is not key=value'],
    ['run host-isolation a=1 a=2', 'input a is given twice'],
    ['runs 12', '"12" is not a run id'],
    ['approve', 'missing <approval>'],
    ['approve yes', '"yes" is not a approval id'],
    ['deny', 'missing <approval>'],
    ['role grant @U1', 'missing <role>'],
    ['role grant @U1 superuser', '"superuser" is not a role: use one of viewer, analyst, responder, approver, admin'],
    ['role revoke "a b" admin', '"a b" is not a user'],
    ['role list everyone', 'unexpected "everyone"'],
  ])('%s', (line, error) => {
    const r = parse(line);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error).toContain(error);
  });
});
