/**
 * The platform-neutral shapes every chat transport translates to and from (DESIGN.md §4).
 * A transport only translates: it verifies the request, turns it into an `Invocation`, hands it
 * over, and renders the `ChatMessage` it gets back in its platform's format (Block Kit, Adaptive
 * Cards, SENTchat JSON).
 */
export type ChatPlatform = 'slack' | 'teams' | 'sentchat';

export interface ChatUserRef {
  platform: ChatPlatform;
  /** Slack team id, Teams tenant id, SENTchat realm. */
  workspace: string;
  userId: string;
  displayName?: string;
}

export interface Invocation {
  platform: ChatPlatform;
  /** SENTreflex tenant the workspace/channel maps to. */
  tenantId: string;
  user: ChatUserRef;
  channel: { id: string; name?: string };
  /** A typed command, without the `/reflex` or `@bot` prefix: e.g. `enrich 1.2.3.4`. */
  text?: string;
  /** A button click: the action id and the value it carried (only an id, never authority). */
  action?: { actionId: string; value: string; messageRef?: MessageRef };
  /**
   * A reaction added to a message (e.g. `pushpin` in an incident channel), with the message as
   * the transport fetched it, so commands never call the platform themselves.
   */
  reaction?: { name: string; message: { id: string; text: string; userId?: string } };
  /** Where the answer goes when it is not the HTTP response (Slack response_url, Teams conversation). */
  replyTo?: MessageRef;
  /** Platform delivery id, used to drop retried deliveries (Slack X-Slack-Retry-Num). */
  deliveryId?: string;
  receivedAt: Date;
}

export interface ChatButton {
  /** Action id the transport sends back on click, e.g. `approval.approve`. */
  actionId: string;
  label: string;
  /** Only an identifier (approval id, incident id); authority is checked on the server. */
  value: string;
  style?: 'primary' | 'danger';
}

export interface ChatMessage {
  text: string;
  title?: string;
  fields?: { label: string; value: string }[];
  buttons?: ChatButton[];
  /** Small print under the message (who did what, when). */
  context?: string[];
  /** Visible only to the invoking user where the platform supports it. */
  ephemeral?: boolean;
}

/** A posted message, enough to update it or reply in its thread. */
export interface MessageRef {
  platform: ChatPlatform;
  channelId: string;
  /** Slack ts, Teams activity id, SENTchat message id. */
  messageId?: string;
  /** Slack response_url and similar one-shot reply handles. */
  responseUrl?: string;
}

/**
 * Outbound chat, one implementation per platform.
 *
 * @example
 * const ref = await transport.post({ channelId: 'C123' }, { text: 'SEV1: ransomware on web-01' });
 * await transport.threadReply(ref, { text: '2nd occurrence' });
 */
export interface ChatTransport {
  readonly platform: ChatPlatform;
  post(target: { channelId: string }, message: ChatMessage): Promise<MessageRef>;
  update(ref: MessageRef, message: ChatMessage): Promise<void>;
  threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef>;
  directMessage(user: ChatUserRef, message: ChatMessage): Promise<MessageRef>;
  createChannel(name: string, opts?: { private?: boolean }): Promise<{ channelId: string; name: string }>;
  invite(channelId: string, users: ChatUserRef[]): Promise<void>;
  setTopic(channelId: string, topic: string): Promise<void>;
  pin(ref: MessageRef): Promise<void>;
}
