import { ReflexError } from '../../errors.ts';
import type { Firewall, FirewallBlockOptions, FirewallReceipt, MutationOptions } from '../containment-ports.ts';
import { normaliseBlockAddress } from '../firewall/block-address.ts';
import type { ActiveResponseReceipt, WazuhClient } from './wazuh-client.ts';
import { normaliseAgents } from './wazuh-client.ts';

export interface WazuhFirewallOptions {
  client: WazuhClient;
  /** The agents whose host firewall enforces the block (gateways, exposed servers). */
  agents: readonly string[];
  /**
   * The ar.conf command that blocks `alert.data.srcip`. ar.conf names a command `<name><timeout>`:
   * `firewall-drop600` exists when an `<active-response>` runs firewall-drop with
   * `<timeout>600</timeout>`, and execd lifts the block after 600 s. `!firewall-drop` runs the
   * script by name, with no timeout: the block stays until something removes it.
   */
  blockCommand: string;
  /** The timeout behind `blockCommand`; read from the name's digits when omitted (`firewall-drop600` → 600, `!…` → none). */
  blockTimeoutSeconds?: number;
  /**
   * A custom active-response script that removes the block (e.g. `!sentreflex-unblock`). The
   * Wazuh API cannot send firewall-drop's `delete`: execd always runs API commands as `add` and
   * only sends `delete` itself when the timeout expires. Without this, `unblock` is refused.
   */
  unblockCommand?: string;
  now?: () => number;
}

/**
 * A `Firewall` over Wazuh active response: `block` runs firewall-drop on the configured agents
 * with the address as `alert.data.srcip`.
 *
 * Per-call TTLs cannot be honoured: the timeout belongs to the ar.conf command, and `expiresAt`
 * reports that one. SENTreflex's own scheduled revert still runs. Repeating a block is safe:
 * execd finds the address in its timeout list and only restarts the timer. The flip side: a
 * re-block inside the original timeout after an `unblockCommand` removal is also "already there"
 * to execd and does nothing until that entry expires.
 *
 * Single addresses only: firewall-drop's handling of CIDR input is not something we have verified.
 *
 * @example
 * const fw = new WazuhFirewall({ client: wazuh, agents: ['001'], blockCommand: 'firewall-drop86400', unblockCommand: '!sentreflex-unblock' });
 * await fw.block('198.51.100.7', { idempotencyKey: 'run_42:block_ip', comment: 'sshd brute force' });
 */
export class WazuhFirewall implements Firewall {
  readonly name = 'wazuh-firewall-drop';
  private readonly opts: WazuhFirewallOptions;
  private readonly agents: string[];
  private readonly timeoutSeconds: number | undefined;
  private readonly now: () => number;

  constructor(opts: WazuhFirewallOptions) {
    this.opts = opts;
    this.agents = normaliseAgents(opts.agents);
    this.timeoutSeconds = opts.blockTimeoutSeconds ?? timeoutFromCommandName(opts.blockCommand);
    this.now = opts.now ?? Date.now;
  }

  async block(address: string, opts: FirewallBlockOptions): Promise<FirewallReceipt> {
    const addr = normaliseBlockAddress('Wazuh firewall-drop', address, { allowCidr: false });
    const sentAt = this.now();
    const r = await this.opts.client.runActiveResponse(
      { agents: this.agents, command: this.opts.blockCommand, alertData: { srcip: addr, ...(opts.comment ? { comment: opts.comment } : {}) } },
      opts,
    );
    const expiresAt = this.timeoutSeconds ? new Date(sentAt + this.timeoutSeconds * 1000).toISOString() : undefined;
    return toFirewallReceipt(this.name, addr, r, expiresAt);
  }

  async unblock(address: string, opts: MutationOptions): Promise<FirewallReceipt> {
    const addr = normaliseBlockAddress('Wazuh firewall-drop', address, { allowCidr: false });
    if (!this.opts.unblockCommand) {
      throw new ReflexError('config.invalid', 'Wazuh firewall: no unblock command configured; firewall-drop blocks end only when their timeout expires', {
        retryable: false,
        safeMessage: this.timeoutSeconds
          ? `Wazuh cannot lift this block early; it expires by itself ${this.timeoutSeconds} s after it was set. An operator can configure wazuh.firewall.unblock_command.`
          : 'Wazuh cannot lift this block: configure wazuh.firewall.unblock_command (a script that removes the rule).',
      });
    }
    const r = await this.opts.client.runActiveResponse(
      { agents: this.agents, command: this.opts.unblockCommand, alertData: { srcip: addr, ...(opts.comment ? { comment: opts.comment } : {}) } },
      opts,
    );
    return toFirewallReceipt(this.name, addr, r, undefined);
  }
}

function toFirewallReceipt(vendor: string, address: string, r: ActiveResponseReceipt, expiresAt: string | undefined): FirewallReceipt {
  return {
    vendor,
    target: address,
    address,
    state: r.state,
    alreadyInState: false,
    failures: r.failures,
    ...(expiresAt === undefined ? {} : { expiresAt }),
    raw: r.raw,
  };
}

/** `firewall-drop600` → 600; `firewall-drop0` and `!firewall-drop` → undefined (no expiry). */
export function timeoutFromCommandName(command: string): number | undefined {
  if (command.startsWith('!')) return undefined;
  const m = /(\d+)$/.exec(command);
  const n = m ? Number(m[1]) : 0;
  return n > 0 ? n : undefined;
}
