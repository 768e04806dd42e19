/** TheHive response bodies from the shared fixtures (its docs pages), as TheHive sends them. */
import { fixtureText as fixture } from './fixtures.ts';


/**
 * The JSON response examples of a TheHive docs page, in order. The published alert example has a
 * trailing comma inside `tags` (a typo in the docs, not something TheHive sends), so trailing
 * commas are dropped before parsing; nothing else is changed.
 */
export function docJson(rel: string): Record<string, unknown>[] {
  const blocks = [...fixture(rel).matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return blocks.flatMap((b) => {
    try {
      return [JSON.parse(b.replace(/,(\s*[\]}])/g, '$1')) as Record<string, unknown>];
    } catch {
      return []; // request examples written in Python syntax (`True`), not responses
    }
  });
}
export const docEntity = (rel: string, type: string): Record<string, unknown> => {
  const all = docJson(rel).flatMap((b) => (Array.isArray(b) ? (b as Record<string, unknown>[]) : [b]));
  const found = all.find((b) => b._type === type);
  if (!found) throw new Error(`no ${type} example in ${rel}`);
  return found;
};
export const docError = (rel: string, type: string): Record<string, unknown> => {
  const found = docJson(rel).find((b) => b.type === type);
  if (!found) throw new Error(`no ${type} error in ${rel}`);
  return found;
};

export const ALERT_MD = 'thehive_cortex/thehive4_docs_api_alert_create.md';
export const PROMOTE_MD = 'thehive_cortex/thehive4_docs_api_alert_promote-as-case.md';
export const CASE_MD = 'thehive_cortex/thehive4_docs_api_case_create.md';
export const OBSERVABLE_MD = 'thehive_cortex/thehive4_docs_api_observable_create.md';
export const ALERT_OBSERVABLE_MD = 'thehive_cortex/thehive4_docs_api_alert_add-observable.md';

/** TheHive 5 answers `_id` only (OutputAlert/OutputCase); the v4 examples also carry `id`. */
export const asV5 = (entity: Record<string, unknown>): Record<string, unknown> => {
  const { id: _v4Id, ...rest } = entity;
  return rest;
};

/**
 * The duplicate answer (fixtures README, fact 4): the v4 docs' error body `{type, message}`
 * (the envelope the v5 OpenAPI gives every 4xx) with type and message changed to CreateError's.
 */
export function duplicateAnswer(message = 'Alert wazuh:sentinelnet:fp-4f1c2a already exist in organisation acme'): string {
  return JSON.stringify({
    ...docError(CASE_MD, 'AuthenticationError'),
    type: 'CreateError',
    message,
  });
}

