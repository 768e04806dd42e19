import type { types as SlackTypes } from '@slack/bolt';
import type { ChatButton, ChatMessage } from '../chat-types.ts';

type KnownBlock = SlackTypes.KnownBlock;
type Button = SlackTypes.Button;

// Block Kit limits (api.slack.com/reference/block-kit): beyond them Slack answers invalid_blocks.
const SECTION_TEXT_MAX = 3000;
const FIELD_MAX = 2000;
const FIELDS_PER_SECTION = 10;
const HEADER_MAX = 150;
const BUTTON_LABEL_MAX = 75;
const BUTTONS_PER_BLOCK = 25;
const CONTEXT_ELEMENTS_MAX = 10;
const BLOCKS_MAX = 50;
const FALLBACK_MAX = 3000;

/**
 * Slack mrkdwn treats `<…>` as links and mentions and `&` as an entity start; everything we render
 * is escaped, so an incident title or note such as `<!channel>` can never ping a channel.
 */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Splits at line ends where possible, so a long list stays readable across sections. */
function chunks(text: string, max: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const at = rest.lastIndexOf('\n', max);
    const end = at > max / 2 ? at : max;
    out.push(rest.slice(0, end));
    rest = rest.slice(end).replace(/^\n/, '');
  }
  if (rest.length > 0) out.push(rest);
  return out;
}

function button(b: ChatButton): Button {
  return {
    type: 'button',
    action_id: b.actionId,
    text: { type: 'plain_text', text: cut(b.label, BUTTON_LABEL_MAX), emoji: true },
    // Only the id travels: who may do what is decided on the server when the click comes back.
    value: b.value,
    ...(b.style ? { style: b.style } : {}),
  };
}

/** Groups buttons into actions blocks: at most 25 each and no action_id twice within a block. */
function actionBlocks(buttons: readonly ChatButton[]): KnownBlock[] {
  const blocks: Button[][] = [];
  for (const b of buttons) {
    const last = blocks[blocks.length - 1];
    if (last && last.length < BUTTONS_PER_BLOCK && !last.some((x) => x.action_id === b.actionId)) last.push(button(b));
    else blocks.push([button(b)]);
  }
  return blocks.map((elements) => ({ type: 'actions', elements }));
}

/**
 * A `ChatMessage` as Block Kit: header (title), sections (text, then fields two columns wide),
 * actions (buttons), context (small print), plus the plain `text` Slack shows in notifications
 * and screen readers.
 *
 * @example
 * const { text, blocks } = renderBlockKit({ title: 'Incident 1a2b3c4d', text: 'SEV1', buttons: [...] });
 * await client.chat.postMessage({ channel, text, blocks });
 */
export function renderBlockKit(message: ChatMessage): { text: string; blocks: KnownBlock[] } {
  const blocks: KnownBlock[] = [];
  if (message.title) blocks.push({ type: 'header', text: { type: 'plain_text', text: cut(message.title, HEADER_MAX), emoji: true } });
  for (const part of chunks(escapeMrkdwn(message.text), SECTION_TEXT_MAX)) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: part } });
  }
  const fields = message.fields ?? [];
  for (let i = 0; i < fields.length; i += FIELDS_PER_SECTION) {
    blocks.push({
      type: 'section',
      fields: fields.slice(i, i + FIELDS_PER_SECTION).map((f) => ({ type: 'mrkdwn', text: cut(`*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`, FIELD_MAX) })),
    });
  }
  if (message.buttons?.length) blocks.push(...actionBlocks(message.buttons));
  if (message.context?.length) {
    blocks.push({
      type: 'context',
      elements: message.context.slice(0, CONTEXT_ELEMENTS_MAX).map((c) => ({ type: 'mrkdwn', text: cut(escapeMrkdwn(c), SECTION_TEXT_MAX) })),
    });
  }
  const fallback = [message.title, message.text].filter(Boolean).join(': ');
  return { text: cut(escapeMrkdwn(fallback), FALLBACK_MAX), blocks: blocks.slice(0, BLOCKS_MAX) };
}
