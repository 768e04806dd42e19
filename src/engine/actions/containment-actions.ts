import type { ActionName } from '../action-catalogue.ts';
import { optionalBoolean, optionalDurationSeconds, optionalString, requiredString, stringList } from './action-inputs.ts';
import type { ActionContext, ActionExecutor } from './registry.ts';
import type { TenantIntegrations, TenantSource } from './tenant-integrations.ts';

/**
 * The containment actions of the catalogue over the tenant's adapters (docs/INTEGRATIONS.md, "How
 * the engine maps actions to ports"): firewall block/unblock, identity disable/enable/revoke/reset,
 * host isolate/release and Wazuh active response. Each passes the step's idempotency key on every
 * call and returns the adapter's receipt as the step's output, so a revert can read `output.target`
 * (the vendor's own id for what was contained).
 *
 * @example
 * for (const [name, run] of Object.entries(createContainmentExecutors(integrations))) registry.register(name, run);
 */
export function sourceOf(ctx: ActionContext): TenantSource {
  return { tenantId: ctx.tenantId, config: ctx.config, secrets: ctx.secrets };
}

export function createContainmentExecutors(integrations: TenantIntegrations): Partial<Record<ActionName, ActionExecutor>> {
  return {
    'firewall.block': async (input, ctx) => {
      const ip = requiredString(input, 'firewall.block', 'ip');
      const ttlSeconds = optionalDurationSeconds(input, 'firewall.block', 'ttl');
      const comment = optionalString(input, 'firewall.block', 'reason');
      const fw = await integrations.firewall(sourceOf(ctx));
      const r = await fw.block(ip, { idempotencyKey: ctx.idempotencyKey, ...(ttlSeconds ? { ttlSeconds } : {}), ...(comment ? { comment } : {}) });
      ctx.log(`${fw.name}: ${r.alreadyInState ? 'already blocked' : 'blocked'} ${r.address}${r.expiresAt ? ` until ${r.expiresAt}` : ''}${failuresNote(r.failures)}`);
      return r;
    },
    'firewall.unblock': async (input, ctx) => {
      const ip = requiredString(input, 'firewall.unblock', 'ip');
      const comment = optionalString(input, 'firewall.unblock', 'reason');
      const fw = await integrations.firewall(sourceOf(ctx));
      const r = await fw.unblock(ip, { idempotencyKey: ctx.idempotencyKey, ...(comment ? { comment } : {}) });
      ctx.log(`${fw.name}: ${r.alreadyInState ? 'was not blocked' : 'unblocked'} ${r.address}${failuresNote(r.failures)}`);
      return r;
    },
    'identity.disable_user': async (input, ctx) => {
      const user = requiredString(input, 'identity.disable_user', 'user');
      const comment = optionalString(input, 'identity.disable_user', 'reason');
      const idp = await integrations.identity(sourceOf(ctx));
      const r = await idp.disableUser(user, { idempotencyKey: ctx.idempotencyKey, ...(comment ? { comment } : {}) });
      ctx.log(`${idp.name}: disabled ${r.target}${r.sessionsRevoked ? ' and revoked its sessions' : ''}`);
      return r;
    },
    'identity.enable_user': async (input, ctx) => {
      const user = requiredString(input, 'identity.enable_user', 'user');
      const idp = await integrations.identity(sourceOf(ctx));
      const r = await idp.enableUser(user, { idempotencyKey: ctx.idempotencyKey });
      ctx.log(`${idp.name}: enabled ${r.target}`);
      return r;
    },
    'identity.revoke_sessions': async (input, ctx) => {
      const user = requiredString(input, 'identity.revoke_sessions', 'user');
      const idp = await integrations.identity(sourceOf(ctx));
      const r = await idp.revokeSessions(user, { idempotencyKey: ctx.idempotencyKey });
      ctx.log(`${idp.name}: revoked the sessions of ${r.target}`);
      return r;
    },
    'identity.reset_password': async (input, ctx) => {
      const user = requiredString(input, 'identity.reset_password', 'user');
      const forceChangeAtLogin = optionalBoolean(input, 'identity.reset_password', 'force_change_at_login') ?? true;
      const idp = await integrations.identity(sourceOf(ctx));
      // No newPassword: the adapter sets a random one nobody sees, so a retry hands nothing out twice.
      const r = await idp.resetPassword(user, { idempotencyKey: ctx.idempotencyKey, forceChangeAtLogin });
      ctx.log(`${idp.name}: reset the password of ${r.target}${forceChangeAtLogin ? ' (change required at next sign-in)' : ''}`);
      return r;
    },
    'host.isolate': async (input, ctx) => {
      const host = requiredString(input, 'host.isolate', 'host');
      const comment = optionalString(input, 'host.isolate', 'reason');
      const edr = await integrations.hostContainment(sourceOf(ctx));
      const r = await edr.isolate(host, { idempotencyKey: ctx.idempotencyKey, ...(comment ? { comment } : {}) });
      ctx.log(`${edr.name}: ${r.alreadyInState ? 'already isolated' : 'isolating'} ${host} (${r.target}, ${r.state})${r.reference ? `, action ${r.reference}` : ''}`);
      return r;
    },
    'host.release': async (input, ctx) => {
      const host = requiredString(input, 'host.release', 'host');
      const edr = await integrations.hostContainment(sourceOf(ctx));
      const r = await edr.release(host, { idempotencyKey: ctx.idempotencyKey });
      ctx.log(`${edr.name}: ${r.alreadyInState ? 'already released' : 'releasing'} ${host} (${r.target}, ${r.state})${r.reference ? `, action ${r.reference}` : ''}`);
      return r;
    },
    'wazuh.active_response': async (input, ctx) => {
      const agent = requiredString(input, 'wazuh.active_response', 'agent_id');
      const command = requiredString(input, 'wazuh.active_response', 'command');
      const args = stringList(input, 'wazuh.active_response', 'arguments', false);
      // release_command / release_arguments only matter to a revert, which calls this action again with them.
      const wazuh = await integrations.wazuh(sourceOf(ctx));
      const r = await wazuh.runActiveResponse({ agents: [agent], command, ...(args && args.length > 0 ? { arguments: args } : {}) }, { idempotencyKey: ctx.idempotencyKey });
      ctx.log(`wazuh: ${command} sent to agent(s) ${r.affectedAgents.join(', ') || '-'}${failuresNote(r.failures)}`);
      return r;
    },
  };
}

function failuresNote(failures: readonly { target: string; code: string; reason: string }[]): string {
  return failures.length ? `; failed on ${failures.map((f) => `${f.target} (${f.code} ${f.reason})`).join(', ')}` : '';
}
