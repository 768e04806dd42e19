import type { Role } from '../store/schema.ts';

/**
 * Who may run what, as sets of roles rather than one threshold: an approver decides on gated
 * actions but is not thereby a responder who runs playbooks, and responders do not approve their
 * own containment. `admin` may do everything.
 *
 * | set        | viewer | analyst | responder | approver | admin |
 * |------------|--------|---------|-----------|----------|-------|
 * | EVERYONE   |   x    |    x    |     x     |    x     |   x   |
 * | ANALYSTS   |        |    x    |     x     |    x     |   x   |
 * | RESPONDERS |        |         |     x     |          |   x   |
 * | APPROVERS  |        |         |           |    x     |   x   |
 * | ADMINS     |        |         |           |          |   x   |
 */
export const EVERYONE: readonly Role[] = ['viewer', 'analyst', 'responder', 'approver', 'admin'];
export const ANALYSTS: readonly Role[] = ['analyst', 'responder', 'approver', 'admin'];
export const RESPONDERS: readonly Role[] = ['responder', 'admin'];
export const APPROVERS: readonly Role[] = ['approver', 'admin'];
export const ADMINS: readonly Role[] = ['admin'];

export function isAllowed(held: readonly Role[], allowed: readonly Role[]): boolean {
  return held.includes('admin') || held.some((r) => allowed.includes(r));
}
