import { ReflexError } from '../../errors.ts';
import type { ChatTransport } from '../../bot/chat-types.ts';
import type { ActionExecutor } from './registry.ts';

/**
 * The `chat.notify` action: posts a message through the chat transport the app wired (SENTchat,
 * Slack or Teams; the bot feature sets it). Read at call time, so a transport that comes up after
 * the engine still serves later steps.
 *
 * @example
 * registry.register('chat.notify', createChatNotifyExecutor(() => ENGINE_PORTS.chat));
 */
export function createChatNotifyExecutor(transport: () => ChatTransport | undefined): ActionExecutor {
  return async (input, ctx) => {
    const chat = transport();
    if (!chat) {
      throw new ReflexError('config.invalid', 'chat.notify: no chat transport is configured on this server', {
        retryable: false,
        safeMessage: 'action chat.notify is not configured on this server (no chat transport)',
      });
    }
    const channel = String(input['channel'] ?? '').replace(/^#/, '');
    const text = String(input['text'] ?? '');
    if (!channel || !text) throw new ReflexError('input.invalid', 'chat.notify needs a channel and a text', { retryable: false });
    const ref = await chat.post({ channelId: channel }, { text });
    ctx.log(`posted to ${chat.platform} ${channel}`);
    return { platform: ref.platform, channel: ref.channelId, messageId: ref.messageId ?? null };
  };
}
