import type { ChatMessage, ChatPlatform, ChatTransport, MessageRef } from '../bot/chat-types.ts';
import type { Notifier } from './notifiers.ts';
import type { TenantPipelineConfig } from './tenant-config.ts';

function isMessageRef(v: unknown, platform: ChatPlatform): v is MessageRef {
  return typeof v === 'object' && v !== null && (v as MessageRef).platform === platform && typeof (v as MessageRef).channelId === 'string';
}

/**
 * Alert notifications into a chat channel: the tenant's `notify.chat.<platform>` channel gets the
 * first message of an alert, and each "Nth occurrence" update goes into that message's thread
 * (the notify stage stores the returned reference and hands it back as `thread`).
 *
 * The transport is called directly rather than through the chat outbox: the notify job is
 * already the retried unit (honouring Retry-After), and it needs the posted message's reference
 * to thread the repeats.
 *
 * @example
 * const stop = registerChatNotifier(ctx.seams.notifiers, new ChatNotifier(slackTransport));
 */
export class ChatNotifier implements Notifier {
  readonly name: string;

  constructor(
    private readonly transport: Pick<ChatTransport, 'platform' | 'post' | 'threadReply'>,
    /** Turns the configured channel into the transport's channel id (SENTchat: `<tenant>/<name>`). */
    private readonly channelFor: (tenantId: string, configured: string) => string | Promise<string> = (_t, c) => c,
  ) {
    this.name = `chat.${transport.platform}`;
  }

  private channelOf(config: TenantPipelineConfig): string | undefined {
    return config.notify.chat?.[this.transport.platform];
  }

  enabledFor(_tenantId: string, config: TenantPipelineConfig): boolean {
    return this.channelOf(config) !== undefined;
  }

  async send(input: { tenantId: string; config: TenantPipelineConfig; message: ChatMessage; thread?: unknown }): Promise<{ ref: unknown }> {
    if (isMessageRef(input.thread, this.transport.platform) && input.thread.messageId) {
      await this.transport.threadReply(input.thread, input.message);
      return { ref: input.thread };
    }
    const ref = await this.transport.post({ channelId: await this.channelFor(input.tenantId, this.channelOf(input.config)!) }, input.message);
    return { ref };
  }
}

/** Adds a chat notifier to the server's notifiers; returns how to take it out again. */
export function registerChatNotifier(notifiers: Notifier[], notifier: ChatNotifier): () => void {
  notifiers.push(notifier);
  return () => {
    const i = notifiers.indexOf(notifier);
    if (i >= 0) notifiers.splice(i, 1);
  };
}
