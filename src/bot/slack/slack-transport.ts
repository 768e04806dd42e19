import { webApi } from '@slack/bolt';
import { ReflexError } from '../../errors.ts';
import { parseRetryAfter } from '../../integrations/http.ts';
import type { ChatMessage, ChatTransport, ChatUserRef, MessageRef } from '../chat-types.ts';
import { renderBlockKit } from './block-kit.ts';
import { lightFetch, type LightResponse } from '../../integrations/light-fetch.ts';

/** The body of a `response_url` answer (api.slack.com/interactivity/handling#message_responses). */
export interface SlackResponseBody {
  response_type: 'ephemeral' | 'in_channel';
  replace_original?: boolean;
  text: string;
  blocks?: unknown[];
}

export interface SlackTransportOptions {
  botToken: string;
  /** `SLACK_API_URL`, e.g. https://slack.com/api/ */
  apiUrl: string;
  /** `SLACK_RESPONSE_URL_BASE`: deliver response_url answers here instead (path kept), for a local stand-in. */
  responseUrlBase?: string;
  timeoutMs?: number;
}

// Platform errors worth another try; everything else (channel_not_found, not_in_channel,
// invalid_auth, invalid_blocks, …) will fail the same way again.
const TRANSIENT = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited', 'team_added_to_org']);

/**
 * Slack over its Web API, one call per method, no retries of its own: the outbox queue retries,
 * durably, and honours `Retry-After` (the WebClient's in-memory retries would be lost on a
 * restart). Every failure leaves as a ReflexError whose `retryable` and `retryAfterMs` the queue
 * acts on.
 *
 * @example
 * const slack = new SlackTransport({ botToken, apiUrl: 'https://slack.com/api/' });
 * const ref = await slack.post({ channelId: 'C123' }, { text: 'SEV1 declared' });
 * await slack.threadReply(ref, { text: 'Containment started' });
 */
export class SlackTransport implements ChatTransport {
  readonly platform = 'slack' as const;
  private readonly client: InstanceType<typeof webApi.WebClient>;
  private readonly timeoutMs: number;
  private readonly responseUrlBase: string | undefined;

  constructor(opts: SlackTransportOptions) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.responseUrlBase = opts.responseUrlBase;
    this.client = new webApi.WebClient(opts.botToken, {
      slackApiUrl: opts.apiUrl,
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: this.timeoutMs,
      logLevel: webApi.LogLevel.ERROR,
    });
  }

  async post(target: { channelId: string }, message: ChatMessage): Promise<MessageRef> {
    const res = await this.call('chat.postMessage', () => this.client.chat.postMessage({ channel: target.channelId, ...this.body(message) }));
    return { platform: 'slack', channelId: res.channel ?? target.channelId, ...(res.ts ? { messageId: res.ts } : {}) };
  }

  async update(ref: MessageRef, message: ChatMessage): Promise<void> {
    if (!ref.messageId) throw new ReflexError('input.invalid', 'chat.update needs a message ts', { retryable: false });
    await this.call('chat.update', () => this.client.chat.update({ channel: ref.channelId, ts: ref.messageId!, ...this.body(message) }));
  }

  async threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    const res = await this.call('chat.postMessage', () =>
      this.client.chat.postMessage({ channel: ref.channelId, ...(ref.messageId ? { thread_ts: ref.messageId } : {}), ...this.body(message) }),
    );
    return { platform: 'slack', channelId: res.channel ?? ref.channelId, ...(res.ts ? { messageId: res.ts } : {}) };
  }

  /** Visible to one user only; Slack does not keep it, so there is nothing to update later. */
  async postEphemeral(target: { channelId: string; userId: string; threadTs?: string }, message: ChatMessage): Promise<void> {
    await this.call('chat.postEphemeral', () =>
      this.client.chat.postEphemeral({
        channel: target.channelId,
        user: target.userId,
        ...(target.threadTs ? { thread_ts: target.threadTs } : {}),
        ...this.body(message),
      }),
    );
  }

  async directMessage(user: ChatUserRef, message: ChatMessage): Promise<MessageRef> {
    const im = await this.call('conversations.open', () => this.client.conversations.open({ users: user.userId }));
    const channelId = im.channel?.id;
    if (!channelId) throw new ReflexError('upstream.rejected', 'conversations.open returned no channel', { retryable: false });
    return this.post({ channelId }, message);
  }

  async createChannel(name: string, opts: { private?: boolean } = {}): Promise<{ channelId: string; name: string }> {
    const res = await this.call('conversations.create', () => this.client.conversations.create({ name, is_private: opts.private ?? false }));
    if (!res.channel?.id) throw new ReflexError('upstream.rejected', 'conversations.create returned no channel', { retryable: false });
    return { channelId: res.channel.id, name: res.channel.name ?? name };
  }

  async invite(channelId: string, users: ChatUserRef[]): Promise<void> {
    if (users.length === 0) return;
    await this.call('conversations.invite', () => this.client.conversations.invite({ channel: channelId, users: users.map((u) => u.userId).join(',') }));
  }

  async setTopic(channelId: string, topic: string): Promise<void> {
    await this.call('conversations.setTopic', () => this.client.conversations.setTopic({ channel: channelId, topic: topic.slice(0, 250) }));
  }

  async pin(ref: MessageRef): Promise<void> {
    if (!ref.messageId) throw new ReflexError('input.invalid', 'pins.add needs a message ts', { retryable: false });
    await this.call('pins.add', () => this.client.pins.add({ channel: ref.channelId, timestamp: ref.messageId! }));
  }

  /**
   * The message a reaction was added to. `reactions.get` (scope reactions:read) finds it in any
   * channel the bot is in, threads included, where conversations.history would miss replies.
   */
  async reactedMessage(channelId: string, ts: string): Promise<{ text: string; userId?: string; ts: string }> {
    const res = await this.call('reactions.get', () => this.client.reactions.get({ channel: channelId, timestamp: ts, full: false }));
    const m = (res as { message?: { text?: string; user?: string; ts?: string } }).message;
    return { text: m?.text ?? '', ...(m?.user ? { userId: m.user } : {}), ts: m?.ts ?? ts };
  }

  /** POSTs to a `response_url` (valid 30 min, 5 uses); 429 and 5xx are retryable. */
  async respond(responseUrl: string, body: SlackResponseBody): Promise<void> {
    let res: LightResponse;
    if (this.responseUrlBase) {
      const u = new URL(responseUrl);
      responseUrl = new URL(`${u.pathname}${u.search}`, this.responseUrlBase).toString();
    }
    try {
      // lightFetch never follows a redirect: a 3xx is not ok and ends below as a failed answer.
      res = await lightFetch(responseUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json; charset=utf-8' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new ReflexError('upstream.unavailable', `response_url unreachable: ${err instanceof Error ? err.message : String(err)}`, {
        safeMessage: 'Slack is unreachable; retrying.',
        cause: err,
      });
    }
    const text = await res.text().catch(() => '');
    if (res.ok) return;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now());
    if (res.status === 429) throw new ReflexError('upstream.rate_limited', 'response_url answered 429', { retryAfterMs: retryAfterMs ?? 1000, safeMessage: 'Slack is rate limiting us; retrying.' });
    if (res.status >= 500) throw new ReflexError('upstream.unavailable', `response_url answered ${res.status}`, { ...(retryAfterMs ? { retryAfterMs } : {}) });
    // 404 expired_url, 410, 400 invalid_blocks…: another try cannot help.
    throw new ReflexError('upstream.rejected', `response_url answered ${res.status}: ${text.slice(0, 100)}`, { retryable: false, safeMessage: 'Slack refused the reply.' });
  }

  private body(message: ChatMessage): { text: string; blocks: ReturnType<typeof renderBlockKit>['blocks']; unfurl_links: false; unfurl_media: false } {
    // No unfurling: a pasted malicious URL must not be fetched by Slack's unfurler on our behalf.
    return { ...renderBlockKit(message), unfurl_links: false, unfurl_media: false };
  }

  private async call<T>(method: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw slackError(method, err);
    }
  }
}

/** A WebClient failure as a ReflexError the queue knows how to retry (or not). */
export function slackError(method: string, err: unknown): ReflexError {
  const e = err as { code?: string; retryAfter?: number; data?: { error?: string }; statusCode?: number; message?: string };
  switch (e.code) {
    case webApi.ErrorCode.RateLimitedError:
      return new ReflexError('upstream.rate_limited', `Slack ${method}: rate limited for ${e.retryAfter ?? '?'} s`, {
        retryAfterMs: Math.max(1, e.retryAfter ?? 1) * 1000,
        safeMessage: 'Slack is rate limiting us; retrying.',
        details: { vendor: 'Slack', method },
        cause: err,
      });
    case webApi.ErrorCode.PlatformError: {
      const code = e.data?.error ?? 'unknown_error';
      return TRANSIENT.has(code)
        ? new ReflexError('upstream.unavailable', `Slack ${method}: ${code}`, { details: { vendor: 'Slack', method, error: code }, cause: err })
        : new ReflexError('upstream.rejected', `Slack ${method}: ${code}`, {
            retryable: false,
            safeMessage: `Slack refused ${method} (${code}).`,
            details: { vendor: 'Slack', method, error: code },
            cause: err,
          });
    }
    case webApi.ErrorCode.HTTPError:
      return (e.statusCode ?? 500) >= 500
        ? new ReflexError('upstream.unavailable', `Slack ${method}: HTTP ${e.statusCode}`, { details: { vendor: 'Slack', method }, cause: err })
        : new ReflexError('upstream.rejected', `Slack ${method}: HTTP ${e.statusCode}`, { retryable: false, details: { vendor: 'Slack', method }, cause: err });
    default:
      return new ReflexError('upstream.unavailable', `Slack ${method}: ${e.message ?? String(err)}`, {
        safeMessage: 'Slack is unreachable; retrying.',
        details: { vendor: 'Slack', method },
        cause: err,
      });
  }
}
