import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { parsePlaybook } from '../../../src/engine/manifest.ts';
import { resolveRunInputs } from '../../../src/engine/run/run-inputs.ts';

const pb = parsePlaybook(
  `id: inputs
name: Inputs
version: 1
trigger: { event_type: auth.bruteforce, manual: true }
inputs:
  ip: { type: ip, from: "event.observables.ip[0]" }
  hosts: { type: host, list: true, default: [] }
  limit: { type: number, default: 5 }
  force: { type: boolean, default: false }
steps:
  - id: s
    script: { javascript: "return 1" }
`,
  'inputs.yaml',
);

describe('resolveRunInputs', () => {
  it('takes given values first (coercing chat strings by type), then from: over the event, then defaults', async () => {
    expect(await resolveRunInputs(pb, { hosts: 'web-01, web-02', limit: '10', force: 'yes' }, { event: { observables: { ip: ['203.0.113.9'] } }, tenant: {} })).toEqual({
      ip: '203.0.113.9',
      hosts: ['web-01', 'web-02'],
      limit: 10,
      force: true,
    });
    expect(await resolveRunInputs(pb, { ip: '198.51.100.1' }, { event: undefined, tenant: {} })).toEqual({ ip: '198.51.100.1', hosts: [], limit: 5, force: false });
  });

  it('lists every problem at once and starts nothing', async () => {
    const err = await resolveRunInputs(pb, { limit: 'many', other: 1 }, { event: undefined, tenant: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReflexError);
    expect((err as ReflexError).details?.['problems']).toEqual([
      'inputs.other: inputs has no input "other" (it takes: ip, hosts, limit, force)',
      'inputs.ip: required (ip)',
      'inputs.limit: expected a number',
    ]);
  });
});
