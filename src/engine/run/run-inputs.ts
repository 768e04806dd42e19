import { ReflexError } from '../../errors.ts';
import { compileBareExpression } from '../expressions.ts';
import { checkInputValue } from '../manifest/input-types.ts';
import type { Playbook, PlaybookInput } from '../manifest/types.ts';

/**
 * A run's inputs, decided before its first step: what the analyst gave (chat gives strings, the
 * API gives JSON), else the input's `from:` over the triggering event, else its `default`. Every
 * value is checked against its type, and a problem with any of them refuses the run with all the
 * problems listed, so `firewall.block` never receives "N/A" as an address.
 *
 * @example
 * await resolveRunInputs(playbook, { source_ip: '203.0.113.9' }, { event: undefined, tenant });
 */
function coerce(input: PlaybookInput, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (input.list) {
    if (text.startsWith('[')) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return value;
      }
    }
    const items = text === '' ? [] : text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    return items.map((item) => coerce({ ...input, list: false }, item));
  }
  if (input.type === 'number' && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (input.type === 'boolean' && /^(true|false|yes|no)$/i.test(text)) return /^(true|yes)$/i.test(text);
  return text;
}

export async function resolveRunInputs(
  playbook: Playbook,
  given: Readonly<Record<string, unknown>>,
  scope: { event: unknown; tenant: unknown },
): Promise<Record<string, unknown>> {
  const problems: string[] = [];
  const declared = new Set(playbook.inputs.map((i) => i.name));
  for (const name of Object.keys(given)) {
    if (!declared.has(name)) problems.push(`inputs.${name}: ${playbook.id} has no input "${name}" (it takes: ${[...declared].join(', ') || 'none'})`);
  }
  const out: Record<string, unknown> = {};
  for (const input of playbook.inputs) {
    let value = given[input.name] === '' ? undefined : coerce(input, given[input.name]);
    if (value === undefined && input.from !== undefined && scope.event !== undefined && scope.event !== null) {
      try {
        value = await compileBareExpression(input.from, `inputs.${input.name}.from`).evaluate({ event: scope.event, tenant: scope.tenant });
      } catch {
        // A `from:` that cannot read this event leaves the input to its default.
        value = undefined;
      }
      if (value === null) value = undefined;
      if (value !== undefined) value = coerce(input, value);
    }
    if (value === undefined) value = input.default;
    if (value === undefined) {
      if (input.required) problems.push(`inputs.${input.name}: required (${input.type}${input.list ? ' list' : ''})${input.description ? `: ${input.description}` : ''}`);
      continue;
    }
    const problem = checkInputValue(input.type, input.list, value);
    if (problem) {
      problems.push(`inputs.${input.name}: ${problem}`);
      continue;
    }
    out[input.name] = value;
  }
  if (problems.length) {
    throw new ReflexError('input.invalid', `cannot start ${playbook.id}: ${problems.join('; ')}`, {
      safeMessage: `Cannot start ${playbook.id}: ${problems.join('; ')}`,
      details: { problems },
    });
  }
  return out;
}
