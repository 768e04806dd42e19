import type { ActionName } from '../action-catalogue.ts';
import { createContainmentExecutors } from './containment-actions.ts';
import { createMessagingExecutors, type MessagingExecutorDeps } from './messaging-actions.ts';
import type { ActionExecutor, ActionRegistry } from './registry.ts';

/**
 * Every vendor-backed action of the catalogue with an adapter behind it (docs/INTEGRATIONS.md):
 * firewall, identity, host, Wazuh, pager, phone and mail. Catalogue actions not here
 * (`mail.get_message`, `mail.delete_message`, `vault.rotate_credential`, `case.comment`) have no
 * adapter yet and keep failing with "not configured on this server".
 */
export function createVendorExecutors(deps: MessagingExecutorDeps): [ActionName, ActionExecutor][] {
  const all = { ...createContainmentExecutors(deps.integrations), ...createMessagingExecutors(deps) };
  return Object.entries(all).filter((e): e is [ActionName, ActionExecutor] => e[1] !== undefined);
}

/**
 * Registers the vendor executors that nothing registered yet (a test's fake wins), and returns
 * the names it registered so the caller can unregister exactly those when it stops.
 *
 * @example
 * const mine = registerVendorActions(ACTION_REGISTRY, { integrations, onCall });
 * // on stop: for (const [name, executor] of mine) ACTION_REGISTRY.unregister(name, executor);
 */
export function registerVendorActions(registry: ActionRegistry, deps: MessagingExecutorDeps): [ActionName, ActionExecutor][] {
  const registered: [ActionName, ActionExecutor][] = [];
  for (const [name, executor] of createVendorExecutors(deps)) {
    if (registry.has(name)) continue;
    registry.register(name, executor);
    registered.push([name, executor]);
  }
  return registered;
}
