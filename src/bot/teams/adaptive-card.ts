import { AdaptiveCard, ExecuteAction, RichTextBlock, TextRun, type IAdaptiveCard, type ITextRun } from '@microsoft/teams.cards';
import type { ChatButton, ChatMessage } from '../chat-types.ts';

/** The attachment content type of an Adaptive Card, in messages and in invoke responses. */
export const ADAPTIVE_CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';

// Teams refuses a message over ~28 KB; stay well under it.
const MAX_CARD_BYTES = 24_000;
const MAX_LINES = 120;
const MAX_LINE = 1000;
const MAX_CONTEXT = 10;
/** Teams shows six actions on a card; the rest go to its overflow menu. */
const PRIMARY_ACTIONS = 6;
const MAX_ACTIONS = 20;

// The emoji shortcodes command answers use, as Teams cannot show `:name:`.
const EMOJI: Record<string, string> = {
  alarm_clock: '⏰',
  arrow_forward: '▶️',
  arrows_counterclockwise: '🔄',
  ballot_box_with_check: '☑️',
  grey_question: '❔',
  heavy_minus_sign: '➖',
  hourglass: '⌛',
  hourglass_flowing_sand: '⏳',
  information_source: 'ℹ️',
  key: '🔑',
  large_green_circle: '🟢',
  large_orange_circle: '🟠',
  lock: '🔒',
  memo: '📝',
  no_entry: '⛔',
  pushpin: '📌',
  red_circle: '🔴',
  rotating_light: '🚨',
  round_pushpin: '📍',
  warning: '⚠️',
  white_check_mark: '✅',
  white_circle: '⚪',
  x: '❌',
};

/** `*bold*`, `_italic_`, `` `code` `` (the markup of src/commands/format.ts), not inside words. */
const MARKUP = /(?<![\p{L}\p{N}*])\*([^*\n]+)\*(?![\p{L}\p{N}*])|(?<![\p{L}\p{N}_])_([^_\n]+)_(?![\p{L}\p{N}_])|`([^`\n]+)`/gu;

export function withEmoji(text: string): string {
  return text.replace(/:([a-z0-9_+-]+):/g, (m, name: string) => EMOJI[name] ?? m);
}

/** Our markup as plain text: for toasts, notifications and screen readers. */
export function teamsPlainText(text: string): string {
  return withEmoji(text).replace(MARKUP, (_m, b?: string, i?: string, c?: string) => b ?? i ?? c ?? '');
}

/**
 * One line of our markup as text runs. Runs are never read as Markdown by Teams (a TextBlock's
 * text is), so an incident title such as `[reset your password](https://evil.example)` shows as
 * typed instead of becoming a link.
 */
function runs(line: string, base: Partial<ITextRun> = {}): TextRun[] {
  const out: TextRun[] = [];
  const text = withEmoji(line);
  let at = 0;
  for (const m of text.matchAll(MARKUP)) {
    if (m.index > at) out.push(new TextRun(text.slice(at, m.index), base));
    if (m[1] !== undefined) out.push(new TextRun(m[1], { ...base, weight: 'Bolder' }));
    else if (m[2] !== undefined) out.push(new TextRun(m[2], { ...base, italic: true }));
    else out.push(new TextRun(m[3]!, { ...base, fontType: 'Monospace' }));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(new TextRun(text.slice(at), base));
  return out;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function lines(text: string, base: Partial<ITextRun> = {}, spacing: 'None' | 'Small' | 'Default' = 'None'): RichTextBlock[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => new RichTextBlock().withInlines(...runs(cut(l, MAX_LINE), base)).withSpacing(spacing));
}

function action(b: ChatButton, index: number): ExecuteAction {
  // verb = what to run, data.value = the only thing it carries (an id); who may do it is decided on the server.
  const a = new ExecuteAction({ title: cut(b.label, 80), verb: b.actionId, data: { value: b.value } });
  if (b.style === 'primary') a.withStyle('positive');
  if (b.style === 'danger') a.withStyle('destructive');
  if (index >= PRIMARY_ACTIONS) a.withMode('secondary');
  return a;
}

/**
 * A `ChatMessage` as an Adaptive Card 1.5: title, text, fields (label in bold, value below),
 * small print, and the buttons as `Action.Execute` (verb = action id, data = `{ value }`), whose
 * clicks come back as `adaptiveCard/action` invokes. Returned as plain JSON (what goes on the wire
 * and into a queued job).
 *
 * @example
 * const card = renderAdaptiveCard({ title: 'Incident 1a2b3c4d', text: 'SEV1', buttons: [{ actionId: 'incident.close', label: 'Close', value: id }] });
 */
export function renderAdaptiveCard(message: ChatMessage): IAdaptiveCard {
  const body: RichTextBlock[] = [];
  if (message.title) body.push(...lines(message.title, { weight: 'Bolder', size: 'Medium' }, 'Default'));
  body.push(...lines(message.text, {}, 'Small'));
  for (const f of message.fields ?? []) {
    body.push(new RichTextBlock().withInlines(...runs(cut(f.label, 200), { weight: 'Bolder' })).withSpacing('Small'));
    body.push(...lines(f.value));
  }
  for (const c of (message.context ?? []).slice(0, MAX_CONTEXT)) body.push(...lines(c, { size: 'Small', isSubtle: true }, 'Small'));
  const build = (elements: RichTextBlock[]) => {
    const card = new AdaptiveCard(...elements)
      .withVersion('1.5')
      .with$schema('http://adaptivecards.io/schemas/adaptive-card.json')
      .withFallbackText(cut(teamsPlainText([message.title, message.text].filter(Boolean).join(': ')), 1000))
      .withMsteams({ width: 'full' });
    const buttons = (message.buttons ?? []).slice(0, MAX_ACTIONS);
    if (buttons.length) card.withActions(...buttons.map(action));
    return compact(JSON.parse(JSON.stringify(card))) as IAdaptiveCard;
  };
  let keep = Math.min(body.length, MAX_LINES);
  for (;;) {
    const shown = keep < body.length ? [...body.slice(0, keep), new RichTextBlock().withInlines(new TextRun('… (cut: too long for a Teams card)', { isSubtle: true }))] : body;
    const card = build(shown);
    if (keep <= 1 || JSON.stringify(card).length <= MAX_CARD_BYTES) return card;
    keep = Math.floor(keep * 0.75);
  }
}

// What the SDK's builders write out that the Adaptive Card schema defaults to anyway.
const DEFAULTS: Record<string, unknown> = {
  isVisible: true,
  separator: false,
  height: 'auto',
  isSortKey: false,
  italic: false,
  strikethrough: false,
  highlight: false,
  underline: false,
  spacing: 'Default',
  mode: 'primary',
  style: 'default',
  isEnabled: true,
  conditionallyEnabled: false,
};

/** Drops default-valued properties and empty `requires`, about two thirds of the builders' JSON. */
function compact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(compact);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (DEFAULTS[k] === x) continue;
    if (k === 'requires' && x && typeof x === 'object' && Object.keys(x).length === 0) continue;
    // A card's `data` is the bot's own payload: keep it as built.
    out[k] = k === 'data' ? x : compact(x);
  }
  return out;
}

/** A Bot Framework message activity carrying the card. */
export function cardActivity(message: ChatMessage): { type: 'message'; summary: string; attachments: { contentType: string; content: IAdaptiveCard }[] } {
  return {
    type: 'message',
    // What Teams shows in notifications and the activity feed.
    summary: cut(teamsPlainText(message.title ?? message.text), 200),
    attachments: [{ contentType: ADAPTIVE_CARD_CONTENT_TYPE, content: renderAdaptiveCard(message) }],
  };
}
