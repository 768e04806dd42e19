import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';

/**
 * What arrives at `POST /slack/events`, validated. Slack adds fields over time: unknown ones are
 * ignored, never a reason to refuse (shared/fixtures/README.md, fact 9).
 *
 * - slash commands: `application/x-www-form-urlencoded` fields
 * - interactivity: the same content type with one field, `payload=<json>`
 * - Events API: `application/json` envelopes (`url_verification`, `event_callback`)
 */
const id = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'is not a Slack id');
const slackUrl = z
  .url({ protocol: /^https$/, hostname: /^([a-z0-9-]+\.)*(slack\.com|slack-gov\.com)$/ })
  .describe('a response_url on a Slack host; anything else would make us an open proxy');

export const slashCommandSchema = z.object({
  command: z.string().min(1).max(64),
  text: z.string().max(4000).default(''),
  team_id: id,
  user_id: id,
  channel_id: id,
  channel_name: z.string().max(200).optional(),
  user_name: z.string().max(200).optional(),
  response_url: slackUrl,
  trigger_id: z.string().max(200).optional(),
  enterprise_id: id.optional(),
});
export type SlashCommand = z.infer<typeof slashCommandSchema>;

const blockAction = z.object({
  action_id: z.string().min(1).max(255),
  // Buttons carry `value`; select menus carry `selected_option.value`.
  value: z.string().max(2000).optional(),
  selected_option: z.object({ value: z.string().max(2000) }).optional(),
  type: z.string().max(64),
  block_id: z.string().max(255).optional(),
});

export const blockActionsSchema = z.object({
  type: z.literal('block_actions'),
  user: z.object({ id, team_id: id.optional(), name: z.string().max(200).optional() }),
  team: z.object({ id }).nullable().optional(),
  channel: z.object({ id, name: z.string().max(200).optional() }).optional(),
  container: z.object({ type: z.string(), message_ts: z.string().optional(), channel_id: id.optional(), is_ephemeral: z.boolean().optional() }).optional(),
  response_url: slackUrl.optional(),
  actions: z.array(blockAction).min(1).max(25),
});
export type BlockActions = z.infer<typeof blockActionsSchema>;

const appMention = z.object({
  type: z.literal('app_mention'),
  user: id,
  text: z.string().max(40_000),
  channel: id,
  ts: z.string().max(32),
  thread_ts: z.string().max(32).optional(),
  team: id.optional(),
  user_team: id.optional(),
});

const reactionAdded = z.object({
  type: z.literal('reaction_added'),
  user: id,
  reaction: z.string().max(100),
  item: z.object({ type: z.string(), channel: id.optional(), ts: z.string().max(32).optional() }),
  item_user: id.optional(),
});

export const eventCallbackSchema = z.object({
  type: z.literal('event_callback'),
  team_id: id,
  event_id: id,
  event: z.object({ type: z.string() }).loose(),
});

export type AppMention = z.infer<typeof appMention>;
export type ReactionAdded = z.infer<typeof reactionAdded>;

export type SlackRequest =
  | { kind: 'url_verification'; challenge: string }
  | { kind: 'command'; deliveryId: string; command: SlashCommand }
  | { kind: 'block_actions'; deliveryId: string; payload: BlockActions }
  | { kind: 'app_mention'; deliveryId: string; teamId: string; event: AppMention }
  | { kind: 'reaction_added'; deliveryId: string; teamId: string; event: ReactionAdded }
  /** Verified and understood, but nothing for us to do (other events, modal submissions). */
  | { kind: 'ignored'; what: string };

function invalid(what: string, error?: z.ZodError): ReflexError {
  const issue = error?.issues[0];
  const detail = issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : what;
  return new ReflexError('input.invalid', `slack ${what}: ${detail}`, { safeMessage: `Not a valid Slack ${what} (${detail}).`, details: { field: issue?.path.join('.') ?? '' } });
}

/**
 * Slash commands and interactions carry no delivery id; a digest of the raw body is one, since
 * every real invocation differs (trigger_id, action_ts) while a retry repeats it byte for byte.
 */
export function bodyDeliveryId(rawBody: Buffer): string {
  return createHash('sha256').update(rawBody).digest('hex').slice(0, 40);
}

/** Parses a verified request body. Throws `input.invalid` for anything malformed. */
export function parseSlackRequest(rawBody: Buffer, contentType: string | undefined): SlackRequest {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const text = rawBody.toString('utf8');
  if (type === 'application/json') {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw invalid('event (body is not JSON)');
    }
    const kind = (json as { type?: unknown } | null)?.type;
    if (kind === 'url_verification') {
      const v = z.object({ challenge: z.string().min(1).max(500) }).safeParse(json);
      if (!v.success) throw invalid('url_verification', v.error);
      return { kind: 'url_verification', challenge: v.data.challenge };
    }
    if (kind !== 'event_callback') return { kind: 'ignored', what: `envelope ${String(kind)}` };
    const envelope = eventCallbackSchema.safeParse(json);
    if (!envelope.success) throw invalid('event', envelope.error);
    const { event, event_id: deliveryId, team_id: teamId } = envelope.data;
    if (event.type === 'app_mention') {
      const e = appMention.safeParse(event);
      if (!e.success) throw invalid('app_mention event', e.error);
      return { kind: 'app_mention', deliveryId, teamId, event: e.data };
    }
    if (event.type === 'reaction_added') {
      const e = reactionAdded.safeParse(event);
      if (!e.success) throw invalid('reaction_added event', e.error);
      return { kind: 'reaction_added', deliveryId, teamId, event: e.data };
    }
    return { kind: 'ignored', what: `event ${event.type}` };
  }
  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(text);
    const payload = form.get('payload');
    if (payload !== null) {
      let json: unknown;
      try {
        json = JSON.parse(payload);
      } catch {
        throw invalid('interaction (payload is not JSON)');
      }
      const kind = (json as { type?: unknown } | null)?.type;
      if (kind !== 'block_actions') return { kind: 'ignored', what: `interaction ${String(kind)}` };
      const p = blockActionsSchema.safeParse(json);
      if (!p.success) throw invalid('interaction', p.error);
      return { kind: 'block_actions', deliveryId: bodyDeliveryId(rawBody), payload: p.data };
    }
    // Slack probes a slash command's URL with `ssl_check=1`; it only wants a 200.
    if (form.get('ssl_check') === '1') return { kind: 'ignored', what: 'ssl_check' };
    const c = slashCommandSchema.safeParse(Object.fromEntries(form));
    if (!c.success) throw invalid('slash command', c.error);
    return { kind: 'command', deliveryId: bodyDeliveryId(rawBody), command: c.data };
  }
  throw new ReflexError('input.invalid', `slack: unsupported content type ${type}`, { safeMessage: 'Slack requests are JSON or form-encoded.' });
}
