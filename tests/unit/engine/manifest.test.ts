import { mkdtemp, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { checkInputValue, loadPlaybookDirs, parseDuration, parsePlaybook } from '../../../src/engine/manifest.ts';
import type { ActionStep, ConditionStep, ParallelStep, RevertStep, Step } from '../../../src/engine/manifest.ts';

const FILE = 'manifests/playbooks/broken.yaml';

// Lines 1-17; every broken case appends steps from line 18 on.
const HEAD = `id: broken
name: Broken
version: 1
trigger:
  manual: true
inputs:
  ip:
    type: ip
steps:
  - id: enrich
    action: intel.enrich
    with:
      observables: "\${{ inputs.ip }}"
  - id: block
    action: firewall.block
    with:
      ip: "\${{ inputs.ip }}"
`;

function problemsOf(text: string, options: Parameters<typeof parsePlaybook>[2] = {}): ReflexError {
  try {
    parsePlaybook(text, FILE, options);
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected the manifest to be refused');
}

function allSteps(steps: Step[]): Step[] {
  return steps.flatMap((step) => {
    if (step.kind === 'condition') return [step, ...allSteps(step.then), ...allSteps(step.else)];
    if (step.kind === 'parallel') return [step, ...step.branches.flatMap((b) => allSteps(b.steps))];
    return [step];
  });
}

describe('shipped playbooks', () => {
  it('all validate, with their scripts present in manifests/scripts', async () => {
    const { playbooks, errors } = await loadPlaybookDirs(['manifests/playbooks'], { scriptsDir: 'manifests/scripts' });
    expect(errors.map((e) => e.error.message)).toEqual([]);
    expect(playbooks.map((p) => p.id).sort()).toEqual([
      'brute-force-containment',
      'credential-rotation',
      'host-isolation',
      'kiosk-lockdown',
      'phishing-triage',
      'sev1-after-hours-page',
    ]);
  });

  it('brute-force containment blocks with a TTL, reverts the block and gates disabling the user', async () => {
    const { playbooks } = await loadPlaybookDirs(['manifests/playbooks']);
    const playbook = playbooks.find((p) => p.id === 'brute-force-containment');
    if (!playbook) throw new Error('missing playbook');
    const steps = allSteps(playbook.steps);
    const block = steps.find((s): s is ActionStep => s.id === 'block_ip' && s.kind === 'action');
    expect(block?.action).toBe('firewall.block');
    expect(block?.with['ttl']).toBe('${{ inputs.block_for }}');
    const revert = steps.find((s): s is RevertStep => s.kind === 'revert');
    expect(revert).toMatchObject({ target: 'block_ip', undoAction: 'firewall.unblock', after: { kind: 'expression' } });
    const ids = steps.map((s) => s.id);
    expect(ids.indexOf('approve_disable')).toBeLessThan(ids.indexOf('disable_user'));
    expect(playbook.trigger).toEqual({ eventTypes: ['auth.bruteforce'], severities: [1, 2, 3], manual: true });
    const watch = steps.find((s) => s.id === 'watch_for_success');
    expect(watch).toMatchObject({ kind: 'wait', mode: 'event', timeoutMs: 900_000, onError: { kind: 'continue' } });
  });

  it('normalises defaults and records where each step is written', async () => {
    const { playbooks } = await loadPlaybookDirs(['manifests/playbooks']);
    const phishing = playbooks.find((p) => p.id === 'phishing-triage');
    if (!phishing) throw new Error('missing playbook');
    expect(phishing.trigger).toEqual({
      eventTypes: ['generic.alert'],
      severities: [],
      when: "event.source = 'generic:sentmail' and event.raw.kind = 'phish_reported'",
      manual: true,
    });
    expect(phishing.steps[0]).toMatchObject({ kind: 'action', action: 'mail.get_message', timeoutMs: 60_000, retry: { maxAttempts: 3 } });
    const parse = phishing.steps[1];
    expect(parse).toMatchObject({
      kind: 'script',
      script: { language: 'python', file: 'parse-mail-headers.py' },
      timeoutMs: 30_000,
      memoryMb: 256,
      retry: { maxAttempts: 1 },
      location: { file: join('manifests/playbooks', 'phishing-triage.yaml'), line: 34, column: 5 },
    });
    const enrich = phishing.steps[2] as ParallelStep;
    expect(enrich.branches.map((b) => b.name)).toEqual(['links', 'domains', 'origin']);
    const verdict = phishing.steps[3];
    expect(verdict).toMatchObject({ kind: 'script', script: { language: 'javascript' }, memoryMb: 16, timeoutMs: 5_000 });
    const malicious = phishing.steps[4] as ConditionStep;
    expect(malicious.then[0]).toMatchObject({ kind: 'approval', quorum: 1, expiresMs: 3_600_000, onExpiry: 'deny', destructive: true });
  });
});

describe('broken manifests name the file, line, column and field', () => {
  const cases: Array<[string, string, string]> = [
    [
      'unknown step kind',
      `  - id: nap
    sleep: 10s
`,
      `${FILE}:19:5 steps[2].sleep: unknown step kind "sleep" (expected one of action, script, condition, approval, wait, notify, parallel, revert)`,
    ],
    [
      'duplicate step id',
      `  - id: enrich
    action: intel.enrich
    with: { observables: 203.0.113.9 }
`,
      `${FILE}:18:9 steps[2].id: duplicate step id "enrich" (first used at steps[0])`,
    ],
    [
      'goto to a missing step',
      `  - id: tell
    notify: { channel: incident, text: blocked }
    on_error: { goto: cleanup }
`,
      `${FILE}:20:23 steps[2].on_error.goto: goto target "cleanup" is not a step of this playbook`,
    ],
    [
      'bad expression syntax',
      `  - id: tell
    if: steps.block.status =
    notify: { channel: incident, text: blocked }
`,
      `${FILE}:19:9 steps[2].if: expression \`steps.block.status =\` does not compile: Unexpected end of expression (at character 20)`,
    ],
    [
      'bad template syntax inside with',
      `  - id: disable
    action: identity.disable_user
    with:
      user: "\${{ inputs.ip "
`,
      `${FILE}:21:13 steps[2].with.user: expression \`\${{ inputs.ip \` has a \`\${{\` without a closing \`}}\``,
    ],
    [
      'bad duration',
      `  - id: unblock
    action: firewall.unblock
    timeout: 5 minutes
    with: { ip: 203.0.113.9 }
`,
      `${FILE}:20:14 steps[2].timeout: expected a duration such as 30s, 15m, 24h or 7d`,
    ],
    [
      'unknown action',
      `  - id: unblock
    action: firewall.unblok
    with: { ip: 203.0.113.9 }
`,
      `${FILE}:19:13 steps[2].action: unknown action "firewall.unblok" (did you mean firewall.unblock?)`,
    ],
    [
      'missing required with field',
      `  - id: disable
    action: identity.disable_user
    with:
      reason: brute force
`,
      `${FILE}:21:7 steps[2].with: identity.disable_user needs with.user`,
    ],
    [
      'revert of a step without an undo',
      `  - id: undo_enrich
    revert: { step: enrich, after: 24h }
`,
      `${FILE}:19:21 steps[2].revert.step: revert target "enrich" calls intel.enrich, which has no undo action`,
    ],
    [
      'a with value of the wrong type',
      `  - id: unblock
    action: firewall.unblock
    with:
      ip: { address: 203.0.113.9 }
`,
      `${FILE}:21:11 steps[2].with.ip: expected an expression or string`,
    ],
    [
      'an unknown with field, pointing at the key',
      `  - id: unblock
    action: firewall.unblock
    with:
      ip: 203.0.113.9
      ipp: 203.0.113.10
`,
      `${FILE}:22:7 steps[2].with.ipp: unknown field for firewall.unblock (did you mean ip?) (accepted: ip, reason)`,
    ],
    [
      'an expression reading a step that does not exist',
      `  - id: tell
    if: steps.blok.status = 'succeeded'
    notify: { channel: incident, text: blocked }
`,
      `${FILE}:19:9 steps[2].if: expression \`steps.blok.status = 'succeeded'\` reads steps.blok, which is not a step of this playbook (did you mean block?)`,
    ],
    [
      'an expression reading an undeclared input',
      `  - id: tell
    notify: { channel: incident, text: "blocked \${{ inputs.source_ip }}" }
`,
      `${FILE}:19:40 steps[2].notify.text: expression \`inputs.source_ip\` reads inputs.source_ip, which is not a declared input`,
    ],
    [
      'a goto that jumps backwards',
      `  - id: tell
    notify: { channel: incident, text: blocked }
    on_error: { goto: enrich }
`,
      `${FILE}:20:23 steps[2].on_error.goto: goto target "enrich" must come after this step: gotos only jump forward, so every run ends`,
    ],
    [
      'a revert before its target',
      `  - id: unblock_later
    revert: { step: block_again, after: 1h }
  - id: block_again
    action: firewall.block
    with: { ip: 203.0.113.9 }
`,
      `${FILE}:19:21 steps[2].revert.step: revert target "block_again" must come before the revert step`,
    ],
    [
      'a wait for an event without a timeout',
      `  - id: wait_clear
    wait: { until: "event.event_type = 'all_clear'" }
`,
      `${FILE}:19:11 steps[2].wait: a wait for an event needs a timeout, or a run could wait forever`,
    ],
    [
      'a JavaScript step that does not compile',
      `  - id: score
    script:
      javascript: "return {"
`,
      `${FILE}:20:19 steps[2].script.javascript: JavaScript does not compile: SyntaxError: Unexpected token ')'`,
    ],
    [
      'a script name with a directory',
      `  - id: run
    script: { file: ../../etc/passwd.sh }
`,
      `${FILE}:19:21 steps[2].script.file: expected a file name in manifests/scripts/ ending in .sh or .py (no directories)`,
    ],
    [
      'an unknown field on a step',
      `  - id: tell
    notify: { channel: incident, text: blocked }
    retries: 3
`,
      `${FILE}:20:5 steps[2].retries: unknown field`,
    ],
    [
      'a quorum that named approvers can never reach',
      `  - id: approve
    approval:
      approvers: { users: [alice] }
      quorum: 2
`,
      `${FILE}:21:15 steps[2].approval.quorum: quorum 2 can never be reached by 1 named approver(s)`,
    ],
  ];

  it.each(cases)('%s', (_name, tail, expected) => {
    const err = problemsOf(HEAD + tail);
    expect(err.code).toBe('input.invalid');
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(expected);
    const [, line, column] = /:(\d+):(\d+) /.exec(expected) ?? [];
    expect(err.details).toMatchObject({ file: FILE, line: Number(line), column: Number(column) });
    expect(err.details?.['field']).toBe(expected.split(' ')[1]?.replace(/:$/, ''));
  });

  it('lists every problem of a file, in line order, not just the first', () => {
    const err = problemsOf(`${HEAD}  - id: enrich
    action: firewall.blok
    with: { ip: 203.0.113.9 }
    on_error: { goto: nowhere }
`);
    expect(err.message.split('\n')).toEqual([
      `${FILE}:18:9 steps[2].id: duplicate step id "enrich" (first used at steps[0])`,
      `${FILE}:19:13 steps[2].action: unknown action "firewall.blok" (did you mean firewall.block?)`,
      `${FILE}:21:23 steps[2].on_error.goto: goto target "nowhere" is not a step of this playbook`,
    ]);
    expect(err.details?.['problems']).toHaveLength(3);
  });

  it('reports YAML syntax errors at their line', () => {
    const err = problemsOf('id: x\nname: [unclosed\nversion: 1\n');
    expect(err.message).toMatch(new RegExp(`^${FILE}:\\d+:\\d+ YAML: `));
    expect(err.details?.['line']).toBeGreaterThanOrEqual(2);
  });

  it('refuses duplicate keys instead of silently keeping the last one', () => {
    const err = problemsOf(`${HEAD}  - id: tell
    notify: { channel: incident, text: one }
    notify: { channel: incident, text: two }
`);
    expect(err.message).toMatch(new RegExp(`^${FILE}:20:5 YAML: Map keys must be unique`));
  });

  it('refuses missing top-level fields and unknown ones', () => {
    const err = problemsOf('id: x\nname: X\nversion: 1\ntrigger: { manual: true }\nstep: []\n');
    expect(err.message.split('\n')).toEqual([
      `${FILE}:1:1 steps: is required`,
      `${FILE}:5:1 step: unknown field`,
    ]);
  });

  it('needs from: or default: for a required input of an event-triggered playbook', () => {
    const err = problemsOf(HEAD.replace('  manual: true', '  event_type: ssh.brute_force'));
    expect(err.message).toBe(`${FILE}:8:5 inputs.ip: a required input of an event-triggered playbook needs from: or default:`);
  });

  it('does not let from: read steps, which have not run yet', () => {
    const err = problemsOf(HEAD.replace('    type: ip', '    type: ip\n    from: steps.enrich.output.ip'));
    expect(err.message).toContain(`${FILE}:9:11 inputs.ip.from: expression \`steps.enrich.output.ip\` reads steps, but only event and tenant exist here`);
  });

  it('checks input defaults against their type', () => {
    const err = problemsOf(HEAD.replace('    type: ip', '    type: ip\n    default: not-an-ip'));
    expect(err.message).toBe(`${FILE}:9:14 inputs.ip.default: expected an IPv4 or IPv6 address for an input of type ip`);
  });

  it('looks script files up in the script repository when told how', () => {
    const tail = `  - id: run
    script: { file: missing.py }
`;
    expect(() => parsePlaybook(HEAD + tail, FILE)).not.toThrow();
    const err = problemsOf(HEAD + tail, { scriptExists: (name) => name === 'present.py' });
    expect(err.message).toBe(`${FILE}:19:21 steps[2].script.file: no script "missing.py" in manifests/scripts/`);
  });

  it('requires the undo prerequisites of a revertible action (wazuh release_command)', () => {
    const err = problemsOf(`${HEAD}  - id: isolate
    action: wazuh.active_response
    with: { agent_id: "003", command: "!isolate-host" }
  - id: release
    revert: { step: isolate, after: 4h }
`);
    expect(err.message).toBe(
      `${FILE}:22:21 steps[3].revert.step: revert target "isolate" must set with.release_command so wazuh.active_response can be undone`,
    );
  });

  it('keeps gotos from leaving a parallel branch', () => {
    const err = problemsOf(`${HEAD}  - id: fan_out
    parallel:
      a:
        - id: page
          action: pager.page
          with: { summary: hi }
          on_error: { goto: done }
      b:
        - id: call
          action: phone.call
          with: { message: hi }
  - id: done
    notify: { channel: incident, text: done }
`);
    expect(err.message).toBe(
      `${FILE}:24:29 steps[2].parallel.a[0].on_error.goto: goto target "done" is outside this parallel branch; a branch cannot jump out of its parallel step`,
    );
  });

  it('accepts a forward goto out of a condition branch', () => {
    const playbook = parsePlaybook(
      `${HEAD}  - id: check
    condition:
      if: "true"
      then:
        - id: page
          action: pager.page
          with: { summary: hi }
          on_error: { goto: done }
  - id: done
    notify: { channel: incident, text: done }
`,
      FILE,
    );
    const check = playbook.steps[2] as ConditionStep;
    expect(check.then[0]?.onError).toEqual({ kind: 'goto', step: 'done' });
    expect(check.then[0]?.location).toEqual({ file: FILE, line: 22, column: 11 });
  });
});

describe('durations', () => {
  it('parses the units authors use and refuses the rest', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    for (const bad of ['', '30', '0s', '5 minutes', '1.5h', '-1h', '30m1h', 'h']) expect(parseDuration(bad)).toBeUndefined();
  });
});

describe('input types', () => {
  it('accept well-formed values and refuse the rest', () => {
    const good: Array<[Parameters<typeof checkInputValue>[0], unknown]> = [
      ['ip', '203.0.113.9'], ['ip', '2001:db8::1'], ['ip', '10.0.0.0/8'], ['domain', 'login.evil.example'],
      ['url', 'https://evil.example/x?y=1'], ['email', 'alice@corp.example'], ['hash', 'd41d8cd98f00b204e9800998ecf8427e'],
      ['user', 'alice@corp.example'], ['host', 'web-01'], ['number', 3], ['boolean', false], ['duration', '4h'], ['string', ''],
    ];
    for (const [type, value] of good) expect(checkInputValue(type, false, value), `${type} ${String(value)}`).toBeUndefined();
    const bad: Array<[Parameters<typeof checkInputValue>[0], unknown]> = [
      ['ip', 'N/A'], ['ip', '10.0.0.0/33'], ['ip', '999.1.1.1'], ['domain', 'not a domain'], ['url', 'javascript:alert(1)'],
      ['email', 'alice'], ['hash', 'xyz'], ['user', 'two words'], ['host', ''], ['number', '3'], ['boolean', 'yes'],
      ['duration', '90'], ['string', 3],
    ];
    for (const [type, value] of bad) expect(checkInputValue(type, false, value), `${type} ${String(value)}`).toBeDefined();
    expect(checkInputValue('ip', true, ['203.0.113.9', '198.51.100.1'])).toBeUndefined();
    expect(checkInputValue('ip', true, ['203.0.113.9', 'x'])).toBe('item 1: expected an IPv4 or IPv6 address');
    expect(checkInputValue('ip', true, '203.0.113.9')).toBe('expected a list of ip values');
  });
});

describe('loadPlaybookDirs', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reflex-playbooks-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns the good playbooks and one error per bad file', async () => {
    await writeFile(join(dir, 'a-good.yaml'), HEAD);
    await writeFile(join(dir, 'b-bad.yaml'), `${HEAD}  - id: nap\n    sleep: 10s\n`);
    await writeFile(join(dir, 'c-good.yml'), HEAD.replace('id: broken', 'id: other'));
    await writeFile(join(dir, 'notes.txt'), 'not a manifest');
    const { playbooks, errors } = await loadPlaybookDirs([dir]);
    expect(playbooks.map((p) => p.id)).toEqual(['broken', 'other']);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.file).toBe(join(dir, 'b-bad.yaml'));
    expect(errors[0]?.error.message).toMatch(new RegExp(`^${join(dir, 'b-bad.yaml')}:19:5 steps\\[2\\]\\.sleep: unknown step kind`));
  });

  it('refuses a second playbook with an id already loaded', async () => {
    await writeFile(join(dir, 'a.yaml'), HEAD);
    await writeFile(join(dir, 'b.yaml'), HEAD);
    const { playbooks, errors } = await loadPlaybookDirs([dir]);
    expect(playbooks).toHaveLength(1);
    expect(errors[0]?.error.message).toBe(`${join(dir, 'b.yaml')}:1:1 id: playbook id "broken" is already used by ${join(dir, 'a.yaml')}`);
  });

  it('reports a missing directory without failing the others', async () => {
    await writeFile(join(dir, 'a.yaml'), HEAD);
    const { playbooks, errors } = await loadPlaybookDirs([join(dir, 'nope'), dir]);
    expect(playbooks).toHaveLength(1);
    expect(errors.map((e) => e.error.code)).toEqual(['not_found']);
  });

  it('does not count a symlink in the script repository as a script', async () => {
    const scripts = join(dir, 'scripts');
    await mkdir(scripts);
    await writeFile(join(scripts, 'real.sh'), 'echo hi\n');
    await symlink(join(scripts, 'real.sh'), join(scripts, 'link.sh'));
    const playbooks = join(dir, 'playbooks');
    await mkdir(playbooks);
    await writeFile(join(playbooks, 'a.yaml'), `${HEAD}  - id: run\n    script: { file: link.sh }\n`);
    await writeFile(join(playbooks, 'b.yaml'), `${HEAD.replace('id: broken', 'id: ok')}  - id: run\n    script: { file: real.sh }\n`);
    const result = await loadPlaybookDirs([playbooks], { scriptsDir: scripts });
    expect(result.playbooks.map((p) => p.id)).toEqual(['ok']);
    expect(result.errors[0]?.error.message).toContain('no script "link.sh" in manifests/scripts/');
  });
});
