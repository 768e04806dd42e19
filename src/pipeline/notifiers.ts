import type { ChatMessage } from '../bot/chat-types.ts';
import { VendorHttpClient } from '../integrations/http.ts';
import type { TenantPipelineConfig } from './tenant-config.ts';

/**
 * Where alert notifications go. The pipeline ships an outgoing-webhook notifier; chat transports
 * (Slack, Teams, SENTchat) and e-mail register theirs at start. `send` returns a reference the
 * notify stage stores, so repeats can be posted into the first message's thread.
 *
 * Implementations throw ReflexError; `upstream.rate_limited` with `retryAfterMs` makes the
 * notify job wait exactly that long before its next attempt.
 */
export interface Notifier {
  readonly name: string;
  /** Whether this notifier has a destination for the tenant (e.g. a webhook URL is configured). */
  enabledFor(tenantId: string, config: TenantPipelineConfig): boolean;
  send(input: { tenantId: string; config: TenantPipelineConfig; message: ChatMessage; thread?: unknown; idempotencyKey: string }): Promise<{ ref: unknown }>;
}

/**
 * POSTs `{ text, title, fields, context, thread, idempotency_key }` as JSON to the tenant's
 * `notify.webhook_url`. A webhook has no threads: a repeat carries the first message's
 * idempotency key as `thread` so the receiver can group them.
 */
export class WebhookNotifier implements Notifier {
  readonly name = 'webhook';

  enabledFor(_tenantId: string, config: TenantPipelineConfig): boolean {
    return Boolean(config.notify.webhook_url);
  }

  async send(input: { config: TenantPipelineConfig; message: ChatMessage; thread?: unknown; idempotencyKey: string }): Promise<{ ref: unknown }> {
    const url = new URL(input.config.notify.webhook_url!);
    const client = new VendorHttpClient({ vendor: 'notification webhook', baseUrl: url.origin, timeoutMs: 10_000 });
    await client.request({
      method: 'POST',
      path: `${url.pathname}${url.search}`,
      headers: { 'idempotency-key': input.idempotencyKey },
      json: {
        text: input.message.text,
        title: input.message.title,
        fields: input.message.fields ?? [],
        context: input.message.context ?? [],
        thread: input.thread ?? null,
        idempotency_key: input.idempotencyKey,
      },
    });
    return { ref: input.thread ?? input.idempotencyKey };
  }
}
