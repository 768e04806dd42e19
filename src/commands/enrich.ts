import type { ChatMessage } from '../bot/chat-types.ts';
import type { IntelVerdictLabel } from '../integrations/ports.ts';
import { defineCommand, positional } from './command.ts';
import { observableSchema } from './ioc.ts';
import { ANALYSTS } from './roles.ts';

const RANK: Record<IntelVerdictLabel, number> = { malicious: 3, suspicious: 2, harmless: 1, unknown: 0 };
const ICON: Record<IntelVerdictLabel, string> = { malicious: ':red_circle:', suspicious: ':large_orange_circle:', harmless: ':large_green_circle:', unknown: ':white_circle:' };

export const enrichCommand = defineCommand({
  name: 'enrich',
  usage: '<ip|domain|url|hash>',
  summary: 'asks the threat-intel providers about an indicator',
  args: positional({ ioc: observableSchema }),
  requiredRoles: ANALYSTS,
  async handler(ctx, { ioc }): Promise<ChatMessage> {
    if (!ctx.deps.lookupIntel) return { text: ':information_source: Threat-intel lookups are not enabled on this server.', ephemeral: true };
    const outcomes = await ctx.deps.lookupIntel(ctx.tenantId, ioc);
    const answered = outcomes.flatMap((o) => (o.status === 'ok' ? [o.verdict] : []));
    const notConfigured = outcomes.filter((o) => o.status === 'not_configured').map((o) => o.provider);
    const unsupported = outcomes.filter((o) => o.status === 'unsupported').map((o) => o.provider);
    const fields = outcomes.flatMap((o) => {
      if (o.status === 'ok') return [{ label: o.provider, value: `${ICON[o.verdict.verdict]} ${o.verdict.verdict} (score ${o.verdict.score}): ${o.verdict.summary}` }];
      if (o.status === 'unavailable') return [{ label: o.provider, value: `:grey_question: unavailable: ${o.reason}` }];
      return [];
    });
    const context: string[] = [];
    if (notConfigured.length) context.push(`Not configured for this tenant: ${notConfigured.join(', ')} (an operator adds a key with \`reflex secrets set <provider>.api_key --tenant ${ctx.tenantId}\`).`);
    if (unsupported.length) context.push(`Cannot look up a ${ioc.kind}: ${unsupported.join(', ')}.`);
    if (fields.length === 0) {
      return {
        title: `Enrichment of ${ioc.kind} ${ioc.value}`,
        text: 'No threat-intel provider could answer for this indicator.',
        context,
        ephemeral: true,
      };
    }
    const worst = answered.reduce<IntelVerdictLabel>((w, v) => (RANK[v.verdict] > RANK[w] ? v.verdict : w), 'unknown');
    return {
      title: `Enrichment of ${ioc.kind} ${ioc.value}`,
      text: answered.length ? `${ICON[worst]} Overall: *${worst}* (${answered.length} of ${outcomes.length} provider(s) answered).` : 'No provider answered; see below.',
      fields,
      context,
    };
  },
});
