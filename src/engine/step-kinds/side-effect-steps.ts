import { ReflexError, toReflexError } from '../../errors.ts';
import { GLOBAL_TENANT } from '../../store/secrets-vault.ts';
import type { ActionContext, SecretReader } from '../actions/registry.ts';
import { resolveTemplate, resolveValue, type ExpressionContext } from '../expressions.ts';
import type { ActionStep, NotifyStep, ScriptStep } from '../manifest/types.ts';
import type { RunRecord } from '../run/run-record.ts';
import { maskSecrets } from '../run/secret-masking.ts';
import { runJavaScript } from '../sandbox/js-sandbox.ts';
import { runScriptFile } from '../sandbox/process-runner.ts';
import type { RunEngine } from '../run-engine.ts';
import type { SettleOutcome } from '../systems/steps-system.ts';
import { NOTIFY_TEMPLATES } from './notify-templates.ts';

/**
 * The step kinds that touch the outside world: `action` (an executor from the action registry),
 * `script` (JavaScript in an isolate; bash/python in a child process) and `notify` (chat, e-mail,
 * page). Each runs under the step's timeout and turns any failure into a settle outcome whose
 * `retryable` comes from the error, so the step's retry policy decides what happens next.
 *
 * @example
 * const prepared = await executeSideEffectStep.prepare(step, ctx);
 * const outcome = await executeSideEffectStep.run(engine, { run, step, attempt, ctx, prepared, idempotencyKey, secrets });
 */
export type SideEffectStep = ActionStep | ScriptStep | NotifyStep;
export type SideEffectOutcome = SettleOutcome;

export interface PreparedStep {
  input: Record<string, unknown>;
  /** What the execution log shows as the step's input (masked by the caller). */
  logInput: unknown;
}

async function prepare(step: SideEffectStep, ctx: ExpressionContext): Promise<PreparedStep> {
  if (step.kind === 'notify') {
    const template = step.template !== undefined ? NOTIFY_TEMPLATES[step.template] : undefined;
    if (step.template !== undefined && !template) {
      throw new ReflexError('config.invalid', `${step.id}: no notification template "${step.template}" (known: ${Object.keys(NOTIFY_TEMPLATES).join(', ')})`, { retryable: false });
    }
    const input: Record<string, unknown> = {
      channel: String((await resolveTemplate(step.channel, ctx, `${step.id}.notify.channel`)) ?? ''),
      ...(step.to !== undefined ? { to: await resolveTemplate(step.to, ctx, `${step.id}.notify.to`) } : {}),
      text: String((await resolveTemplate(template?.text ?? step.text ?? '', ctx, `${step.id}.notify.text`)) ?? ''),
      ...(template ? { subject: await resolveTemplate(template.subject, ctx, `${step.id}.notify.subject`), template: step.template } : {}),
    };
    return { input, logInput: input };
  }
  const input = (await resolveValue(step.with, ctx, `${step.id}.with`)) as Record<string, unknown>;
  return { input, logInput: step.kind === 'script' ? { with: input, ...(step.script.language === 'javascript' ? {} : { file: step.script.file }) } : input };
}

export function secretReader(engine: RunEngine, tenantId: string, found: string[]): SecretReader {
  const get = async (name: string): Promise<string | undefined> => {
    const value = (await engine.deps.vault.get(tenantId, name)) ?? (await engine.deps.vault.get(GLOBAL_TENANT, name));
    // Whatever a step read from the vault is masked in its log, wherever it turns up.
    if (value !== undefined) found.push(value);
    return value;
  };
  return {
    get,
    require: async (name) => {
      const value = await get(name);
      if (value === undefined) {
        throw new ReflexError('config.invalid', `secret ${name} is not set for tenant ${tenantId}`, {
          retryable: false,
          safeMessage: `The secret ${name} is not set (reflex secrets set ${name} --tenant ${tenantId}).`,
        });
      }
      return value;
    },
  };
}

function withTimeout<T>(ms: number, label: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new ReflexError('timeout', `${label} timed out after ${ms} ms`));
      reject(new ReflexError('timeout', `${label} did not finish within ${ms} ms`, { retryable: true }));
    }, ms);
  });
  return Promise.race([work(controller.signal), timeout]).finally(() => clearTimeout(timer));
}

async function notify(engine: RunEngine, run: RunRecord, step: NotifyStep, input: Record<string, unknown>, ctx: ActionContext): Promise<unknown> {
  const channel = String(input['channel']);
  const text = String(input['text']);
  if (text.trim() === '') throw new ReflexError('input.invalid', `${step.id}: the notification text is empty`, { retryable: false });
  if (channel === 'email' || channel.startsWith('email:') || channel === 'reporter') {
    const to = channel.startsWith('email:') ? channel.slice('email:'.length) : input['to'];
    if (typeof to !== 'string' && !Array.isArray(to)) throw new ReflexError('input.invalid', `${step.id}: an e-mail notification needs notify.to`, { retryable: false });
    const send = engine.deps.actions.require('mail.send');
    await send({ to, subject: String(input['subject'] ?? `SENTreflex: ${run.playbookId}`), body: text }, ctx);
    return { channel: 'email', to, delivered: true };
  }
  if (channel.startsWith('oncall:')) {
    const pager = engine.deps.pager();
    if (!pager) throw new ReflexError('config.invalid', `${step.id}: no pager is configured on this server`, { retryable: false, safeMessage: 'action pager.page is not configured on this server' });
    const page = await pager.page({ tenantId: run.tenantId, schedule: channel.slice('oncall:'.length), level: 0, summary: text.slice(0, 1024), dedupKey: ctx.idempotencyKey });
    return { channel, delivered: true, ref: page.ref };
  }
  const chat = engine.deps.chat();
  if (channel === 'incident') {
    if (!run.incidentId) return { channel, delivered: false, reason: 'the run has no incident', text };
    if (!chat) return { channel, delivered: false, reason: 'no chat transport is configured; recorded on the timeline only', text };
    const row = await engine.deps.db
      .selectFrom('incident_channels')
      .select('channel_id')
      .where('incident_id', '=', run.incidentId)
      .where('platform', '=', chat.platform)
      .executeTakeFirst();
    if (!row) return { channel, delivered: false, reason: `the incident has no ${chat.platform} channel; recorded on the timeline only`, text };
    const ref = await chat.post({ channelId: row.channel_id }, { text });
    return { channel, delivered: true, platform: chat.platform, channelId: ref.channelId, messageId: ref.messageId ?? null, text };
  }
  if (!chat) throw new ReflexError('config.invalid', `${step.id}: no chat transport is configured on this server`, { retryable: false, safeMessage: 'action chat.notify is not configured on this server' });
  const ref = await chat.post({ channelId: channel.replace(/^#/, '') }, { text });
  return { channel, delivered: true, platform: chat.platform, channelId: ref.channelId, messageId: ref.messageId ?? null, text };
}

async function run(
  engine: RunEngine,
  args: { run: RunRecord; step: SideEffectStep; attempt: number; ctx: ExpressionContext; prepared: PreparedStep; idempotencyKey: string; secrets: string[] },
): Promise<SideEffectOutcome> {
  const { step } = args;
  const logs: string[] = [];
  // Sensitive inputs plus every vault value the step reads: none of them reaches the log.
  const found = [...args.secrets];
  try {
    const output = await withTimeout(step.timeoutMs, `${step.id}`, async (signal) => {
      const tenant = (args.ctx.tenant ?? {}) as Record<string, unknown>;
      const actionCtx: ActionContext = {
        tenantId: args.run.tenantId,
        runId: args.run.id,
        stepId: step.id,
        idempotencyKey: args.idempotencyKey,
        attempt: args.attempt,
        secrets: secretReader(engine, args.run.tenantId, found),
        config: tenant,
        signal,
        timeoutMs: step.timeoutMs,
        expressionContext: args.ctx,
        log: (line) => {
          if (logs.length < 200) logs.push(line.slice(0, 2000));
        },
      };
      switch (step.kind) {
        case 'action':
          return engine.deps.actions.require(step.action)(args.prepared.input, actionCtx);
        case 'notify':
          return notify(engine, args.run, step, args.prepared.input, actionCtx);
        case 'script': {
          // A sandbox slot first (REFLEX_SCRIPT_CONCURRENCY); the wait counts against the step's timeout.
          const script = step.script;
          if (script.language === 'javascript') {
            const r = await engine.scriptSlots.run(() => runJavaScript(script.code, args.prepared.input, { memoryLimitMb: step.memoryMb, timeoutMs: step.timeoutMs, label: step.id }), signal);
            logs.push(...r.logs);
            return r.output;
          }
          const r = await engine.scriptSlots.run(() =>
            runScriptFile(script.file, args.prepared.input, {
              scriptsDir: engine.deps.scriptsDir,
              timeoutMs: step.timeoutMs,
              memoryLimitMb: step.memoryMb,
              label: step.id,
            }),
            signal,
          );
          if (r.stderr) logs.push(...r.stderr.split('\n').slice(-20));
          return r.output;
        }
      }
    });
    return { status: 'succeeded', output: maskSecrets(output ?? null, found), logs: maskSecrets(logs, found) as string[] };
  } catch (err) {
    const e = toReflexError(err);
    return {
      status: 'failed',
      error: String(maskSecrets(e.message, found)),
      retryable: e.retryable,
      ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
      logs: maskSecrets(logs, found) as string[],
    };
  }
}

export const executeSideEffectStep = { prepare, run };
