import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { ActionName } from '../action-catalogue.ts';
import { createCaseExecutors } from './case-actions.ts';
import { createContainmentExecutors } from './containment-actions.ts';
import { createCredentialExecutors } from './credential-actions.ts';
import { createMailboxExecutors } from './mailbox-actions.ts';
import { createMessagingExecutors, type MessagingExecutorDeps } from './messaging-actions.ts';
import type { ActionExecutor, ActionRegistry } from './registry.ts';

export interface VendorExecutorDeps extends MessagingExecutorDeps {
  /** The engine's database, for `case.comment` (the run's incident timeline); without it `case.comment` is not registered. */
  db?: Kysely<Database>;
}

/**
 * Every vendor-backed action of the catalogue with an adapter behind it (docs/INTEGRATIONS.md):
 * firewall, identity, host, Wazuh, pager, phone, mail and credential rotation. Also the mailbox
 * actions (`mail.get_message`, `mail.delete_message`) and, given the database, `case.comment`
 * (the incident timeline and TheHive).
 */
export function createVendorExecutors(deps: VendorExecutorDeps): [ActionName, ActionExecutor][] {
  const all = {
    ...createContainmentExecutors(deps.integrations),
    ...createMessagingExecutors(deps),
    ...createCredentialExecutors(deps.integrations),
    ...createMailboxExecutors(deps.integrations),
    ...(deps.db ? createCaseExecutors({ db: deps.db, integrations: deps.integrations }) : {}),
  };
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
export function registerVendorActions(registry: ActionRegistry, deps: VendorExecutorDeps): [ActionName, ActionExecutor][] {
  const registered: [ActionName, ActionExecutor][] = [];
  for (const [name, executor] of createVendorExecutors(deps)) {
    if (registry.has(name)) continue;
    registry.register(name, executor);
    registered.push([name, executor]);
  }
  return registered;
}
