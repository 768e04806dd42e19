import { ReflexError } from '../../errors.ts';
import type { CredentialRotationResult } from '../../integrations/containment-ports.ts';
import type { ActionName } from '../action-catalogue.ts';
import { optionalString, stringList } from './action-inputs.ts';
import { sourceOf } from './containment-actions.ts';
import type { ActionExecutor } from './registry.ts';
import type { TenantIntegrations } from './tenant-integrations.ts';

/**
 * `vault.rotate_credential` over the tenant's `CredentialVault` (docs/INTEGRATIONS.md, "HashiCorp
 * Vault"). Every asset is tried; one per line goes into the step's log.
 *
 * The step succeeds only when every asset is rotated (now, or by an earlier attempt of the same
 * step): after a suspected breach a credential left unrotated must fail the step, not hide in a
 * succeeded step's output. When some failed, the error lists each asset's outcome and is
 * retryable if any failure is (5xx, 429): the retry rotates only what is left, because the
 * adapter recorded what this step's key already rotated. `reason` is written to the step's log
 * and audit trail only; Vault's rotate endpoints take no comment.
 *
 * @example
 * registry.register('vault.rotate_credential', createCredentialExecutors(integrations)['vault.rotate_credential']!);
 */
export function createCredentialExecutors(integrations: TenantIntegrations): Partial<Record<ActionName, ActionExecutor>> {
  return {
    'vault.rotate_credential': async (input, ctx) => {
      const assets = stringList(input, 'vault.rotate_credential', 'assets', true) ?? [];
      const reason = optionalString(input, 'vault.rotate_credential', 'reason');
      const vault = await integrations.credentialVault(sourceOf(ctx));
      const r = await vault.rotate(assets, { idempotencyKey: ctx.idempotencyKey, ...(reason ? { comment: reason } : {}) });
      for (const result of r.results) ctx.log(`${vault.name}: ${describeResult(result)}`);
      if (r.failures.length > 0) throw rotationFailed(r.results);
      return r;
    },
  };
}

function describeResult(r: CredentialRotationResult): string {
  switch (r.status) {
    case 'rotated':
      return `rotated ${r.asset} (${r.operation})`;
    case 'already_rotated':
      return `${r.asset} was already rotated by this step at ${r.rotatedAt ?? '?'} (${r.operation}); not rotated again`;
    case 'failed':
      return `did NOT rotate ${r.asset} (${r.code ?? '?'}${r.retryable ? ', retryable' : ''}): ${r.reason ?? 'failed'}`;
  }
}

function rotationFailed(results: CredentialRotationResult[]): ReflexError {
  const failed = results.filter((r) => r.status === 'failed');
  const done = results.length - failed.length;
  const retryable = failed.filter((r) => r.retryable);
  const waits = retryable.map((r) => r.retryAfterMs).filter((ms): ms is number => ms !== undefined);
  const list = failed.map((r) => `${r.asset} (${r.code ?? '?'})`).join(', ');
  const summary = `rotated ${done} of ${results.length} credential(s); not rotated: ${list}`;
  const details = { results: results.map(({ asset, status, operation, code, retryable: again }) => ({ asset, status, operation, ...(code ? { code, retryable: again ?? false } : {}) })) };
  if (retryable.length > 0) {
    return new ReflexError(retryable.some((r) => r.code === '429') ? 'upstream.rate_limited' : 'upstream.unavailable', `vault.rotate_credential: ${summary}; retrying the rest`, {
      retryable: true,
      ...(waits.length > 0 ? { retryAfterMs: Math.max(...waits) } : {}),
      safeMessage: `Credential rotation incomplete: ${summary}. Retrying the ones left.`.slice(0, 1000),
      details,
    });
  }
  const detail = failed.map((r) => `${r.asset}: ${r.reason ?? r.code ?? 'failed'}`).join('; ');
  return new ReflexError(failed.every((r) => r.code === '404') ? 'not_found' : 'upstream.rejected', `vault.rotate_credential: ${summary}: ${detail}`.slice(0, 4000), {
    retryable: false,
    safeMessage: `Credential rotation incomplete: ${summary}. Check the role names and the Vault token's policy.`.slice(0, 1000),
    details,
  });
}
