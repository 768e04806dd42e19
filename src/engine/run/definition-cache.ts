import type { Kysely } from 'kysely';
import { ReflexError } from '../../errors.ts';
import type { Database } from '../../store/schema.ts';
import { engineDb } from '../engine-schema.ts';
import type { Playbook } from '../manifest/types.ts';
import type { PlaybookCatalog } from './playbook-catalog.ts';
import { StepGraph } from './step-graph.ts';

/**
 * The definition a run executes, by hash: from the loaded catalogue when it is the current
 * version, otherwise from playbook_definitions (a run started before the manifest changed, or on
 * another server with other playbook directories). Definitions never change under a hash, so
 * caching them for the life of the process is safe.
 */
export interface Definition {
  playbook: Playbook;
  graph: StepGraph;
  /**
   * Only action, script and notify steps, one after another (no condition, parallel, approval,
   * wait or revert): a success then just queues the next step or ends the run, and nothing else
   * of the run (gates, waits, timers) can be open. Such steps settle through the batched write
   * path (systems/step-writes.ts).
   */
  linear: boolean;
}

function define(playbook: Playbook): Definition {
  const linear = playbook.steps.every((s) => s.kind === 'action' || s.kind === 'script' || s.kind === 'notify');
  return { playbook, graph: new StepGraph(playbook), linear };
}

const MAX_CACHED = 500;

export class DefinitionCache {
  private readonly cache = new Map<string, Definition>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly catalog: PlaybookCatalog,
  ) {
    for (const e of catalog.list()) this.cache.set(e.hash, define(e.playbook));
  }

  /** The step graph of a cached definition, without a database round trip. */
  graphFor(hash: string): StepGraph | undefined {
    return this.cache.get(hash)?.graph;
  }

  async get(hash: string): Promise<Definition> {
    const hit = this.cache.get(hash);
    if (hit) return hit;
    const row = await engineDb(this.db).selectFrom('playbook_definitions').select('definition').where('hash', '=', hash).executeTakeFirst();
    if (!row) throw new ReflexError('internal', `playbook definition ${hash} is missing`);
    const playbook = row.definition as Playbook;
    const def = define(playbook);
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(hash, def);
    return def;
  }
}
