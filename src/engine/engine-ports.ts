import type { ApprovalLinkSender, Pager } from '../approvals/approval-ports.ts';
import type { ChatTransport } from '../bot/chat-types.ts';
import type { PlaybookTrigger } from '../pipeline/playbook-trigger.ts';
import type { PlaybookEngineService } from './playbook-engine-service.ts';

/**
 * Where the engine and the other features of one process meet. Features start in order and do
 * not see each other, so the bot feature sets `ENGINE_PORTS.chat` when its transport is up, a
 * vendor feature sets `pager` / `linkSender`, and the engine feature sets `engine` once it runs.
 * Everything is read at the moment of use, so start order does not matter.
 *
 * @example
 * ENGINE_PORTS.chat = sentchatTransport;               // in the bot feature
 * await ENGINE_TRIGGER.onAlert({ tenantId, alertId, incidentId, event }); // in the pipeline's trigger stage
 * const engine: PlaybookEngine | undefined = ENGINE_PORTS.engine;         // for the chat commands
 */
export interface EnginePorts {
  chat?: ChatTransport | undefined;
  pager?: Pager | undefined;
  linkSender?: ApprovalLinkSender | undefined;
  engine?: PlaybookEngineService | undefined;
}

export const ENGINE_PORTS: EnginePorts = {};

/** The pipeline's trigger port: the running engine, or no playbooks while none runs in this process. */
export const ENGINE_TRIGGER: PlaybookTrigger = {
  async onAlert(input) {
    const engine = ENGINE_PORTS.engine;
    return engine ? engine.onAlert(input) : { runIds: [] };
  },
};
