import { describe, expect, it } from 'vitest';
import { ACTION_CATALOGUE, findAction } from '../../../src/engine/action-catalogue.ts';
import { Expression } from '../../../src/engine/expressions.ts';

describe('action catalogue', () => {
  it('names every action <port>.<verb> and knows the actions the issue lists', () => {
    for (const name of Object.keys(ACTION_CATALOGUE)) expect(name).toMatch(/^[a-z]+\.[a-z_]+$/);
    for (const name of [
      'intel.enrich', 'firewall.block', 'identity.disable_user', 'host.isolate', 'wazuh.active_response',
      'mail.delete_message', 'pager.page', 'phone.call', 'http.request', 'chat.notify',
    ]) {
      expect(findAction(name), name).toBeDefined();
    }
    expect(findAction('firewall.nuke')).toBeUndefined();
    expect(findAction('constructor')).toBeUndefined();
  });

  it('pairs each containment with an undo that exists and whose mapping fills its required fields', async () => {
    const revertible = Object.entries(ACTION_CATALOGUE).filter(([, spec]) => spec.undo);
    expect(revertible.map(([name]) => name).sort()).toEqual([
      'firewall.block', 'host.isolate', 'identity.disable_user', 'wazuh.active_response',
    ]);
    for (const [name, spec] of revertible) {
      const undo = spec.undo;
      if (!undo) continue;
      const undoSpec = findAction(undo.action);
      expect(undoSpec, `${name} -> ${undo.action}`).toBeDefined();
      const required = Object.entries(undoSpec?.fields ?? {}).filter(([, f]) => f.required).map(([field]) => field);
      for (const field of required) expect(Object.keys(undo.with), `${name} undo sets ${field}`).toContain(field);
      for (const [field, source] of Object.entries(undo.with)) {
        expect(Object.keys(undoSpec?.fields ?? {}), `${undo.action} accepts ${field}`).toContain(field);
        Expression.compile(source, `${name}.undo.with.${field}`);
      }
    }
  });

  it('maps a block to the unblock of the same address', async () => {
    const undo = findAction('firewall.block')?.undo;
    if (!undo) throw new Error('firewall.block has no undo');
    const scope = { original: { ip: '203.0.113.9', ttl: '24h' }, output: { rule_id: 'r-1' } };
    const ip = await Expression.compile(undo.with['ip'] ?? '', 'undo').evaluate(scope);
    expect(undo.action).toBe('firewall.unblock');
    expect(ip).toBe('203.0.113.9');
  });
});
