/**
 * The normalize stage's pure core: a source payload in, zero or more SentinelNet Event v1 out.
 * No I/O; a thrown `ReflexError('input.invalid')` names the field and sends the job to the
 * dead-letter queue with that reason (it is not retryable: the same bytes fail the same way).
 *
 * @example
 * const events = normalize('openvas', reportXml, { tenantId: 'acme-co' }); // one per result
 */
import { ReflexError, assertNever } from '../../errors.ts';
import type { NormalizeContext, SentinelEvent } from '../event.ts';
import { normalizeCowrie } from './cowrie.ts';
import { normalizeGeneric } from './generic.ts';
import { normalizeOpenvas } from './openvas.ts';
import { normalizeWazuh } from './wazuh.ts';

export const NORMALIZER_SOURCES = ['wazuh', 'cowrie', 'openvas', 'generic'] as const;
export type NormalizerSource = (typeof NORMALIZER_SOURCES)[number];

export interface NormalizeOptions {
  /** The tenant the hook authenticated; becomes `client_id`. */
  tenantId: string;
  /** For `generic`: the hook's `:name`, recorded as source `generic:<name>`. */
  genericName?: string;
  /** Validate only (hook bodies): see NormalizeContext.checkOnly. */
  checkOnly?: boolean;
}

export function normalize(source: NormalizerSource, payload: unknown, options: NormalizeOptions): SentinelEvent[] {
  if (typeof options.tenantId !== 'string' || options.tenantId.trim() === '' || options.tenantId.length > 128) {
    // The tenant comes from our own hook authentication, so a bad one is our bug, not the sender's.
    throw new ReflexError('internal', `normalize called without a valid tenantId for source ${source}`);
  }
  const ctx: NormalizeContext = {
    clientId: options.tenantId,
    ...(options.genericName === undefined ? {} : { genericName: options.genericName }),
    ...(options.checkOnly ? { checkOnly: true } : {}),
  };
  switch (source) {
    case 'wazuh':
      return normalizeWazuh(payload, ctx);
    case 'cowrie':
      return normalizeCowrie(payload, ctx);
    case 'openvas':
      return normalizeOpenvas(payload, ctx);
    case 'generic':
      return normalizeGeneric(payload, ctx);
    default:
      return assertNever(source);
  }
}
