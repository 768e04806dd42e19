import { ReflexError } from '../../errors.ts';
import { findAction } from '../action-catalogue.ts';
import type { ExpressionContext } from '../expressions.ts';

/**
 * Where the engine finds the code behind a catalogue action (`firewall.block`, `http.request`, …).
 *
 * The engine ships `http.request`, `intel.enrich` and `chat.notify`, and registers the vendor
 * actions (`firewall.block`, `identity.disable_user`, `host.isolate`, `pager.page`, …; see
 * vendor-actions.ts) at start, each choosing the tenant's adapter per call. An action nobody registered fails its step with a
 * non-retryable `config.invalid`: "action firewall.block is not configured on this server".
 *
 * @example
 * ACTION_REGISTRY.register('firewall.block', async (input, ctx) => {
 *   const client = new FirewallClient({ token: await ctx.secrets.require('firewall.token') });
 *   return client.block(String(input.ip), { idempotencyKey: ctx.idempotencyKey });
 * });
 */

/** Reads credentials for the run's tenant: the tenant's own value first, then the platform-wide one. */
export interface SecretReader {
  get(name: string): Promise<string | undefined>;
  /** Throws a non-retryable `config.invalid` naming the secret when it is not set. */
  require(name: string): Promise<string>;
}

export interface ActionContext {
  tenantId: string;
  runId: string;
  stepId: string;
  /**
   * The same for every attempt of one step of one run, so a vendor (or our adapter) can drop a
   * call it has already performed: a retry after a timeout or a worker crash is then harmless.
   */
  idempotencyKey: string;
  attempt: number;
  secrets: SecretReader;
  /** The tenant's configuration (tenants.config). */
  config: Readonly<Record<string, unknown>>;
  /** Aborted when the step's timeout passes; executors pass it to fetch. */
  signal: AbortSignal;
  timeoutMs: number;
  /** The run's expression context, for executors that evaluate an expression after the call. */
  expressionContext: ExpressionContext;
  /** One line into the step's execution log. */
  log(line: string): void;
}

export type ActionExecutor = (input: Record<string, unknown>, ctx: ActionContext) => Promise<unknown>;

export class ActionRegistry {
  private readonly executors = new Map<string, ActionExecutor>();

  /** Registers (or replaces) the executor of a catalogue action. Unknown names are a programming error. */
  register(action: string, executor: ActionExecutor): this {
    if (!findAction(action)) throw new ReflexError('internal', `cannot register "${action}": it is not in the action catalogue`);
    this.executors.set(action, executor);
    return this;
  }

  /** Removes an action's executor; with `only`, just when that executor is still the registered one. */
  unregister(action: string, only?: ActionExecutor): void {
    if (only === undefined || this.executors.get(action) === only) this.executors.delete(action);
  }

  has(action: string): boolean {
    return this.executors.has(action);
  }

  names(): string[] {
    return [...this.executors.keys()].sort();
  }

  /** The executor, or a non-retryable error that names the missing action. */
  require(action: string): ActionExecutor {
    const executor = this.executors.get(action);
    if (!executor) {
      throw new ReflexError('config.invalid', `action ${action} is not configured on this server`, {
        retryable: false,
        safeMessage: `action ${action} is not configured on this server`,
        details: { action },
      });
    }
    return executor;
  }
}

/** The process-wide registry the app's features register vendor executors into. */
export const ACTION_REGISTRY = new ActionRegistry();
