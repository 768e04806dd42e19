import { createHash } from 'node:crypto';
import { ReflexError } from '../../errors.ts';
import { canonicalJson } from '../../store/canonical-json.ts';
import { loadPlaybookDirs, type PlaybookFileError } from '../manifest.ts';
import type { Playbook } from '../manifest/types.ts';

/**
 * The playbooks this server can start: every manifest in manifests/playbooks/ plus the
 * directories of `REFLEX_PLAYBOOK_DIRS`, validated at load. Each playbook is identified for runs
 * by the hash of its normalised JSON, so a run keeps executing the exact definition it started
 * with even if the file changes (or the server restarts with a newer version) meanwhile.
 *
 * @example
 * const catalog = await PlaybookCatalog.load(['manifests/playbooks'], 'manifests/scripts');
 * const { playbook, hash } = catalog.require('brute-force-containment');
 */
export interface CatalogEntry {
  playbook: Playbook;
  hash: string;
}

export function definitionHash(playbook: Playbook): string {
  return createHash('sha256').update(canonicalJson(playbook)).digest('hex');
}

export class PlaybookCatalog {
  private readonly byId = new Map<string, CatalogEntry>();

  constructor(
    playbooks: readonly Playbook[],
    readonly errors: readonly PlaybookFileError[] = [],
  ) {
    for (const playbook of playbooks) this.byId.set(playbook.id, { playbook, hash: definitionHash(playbook) });
  }

  static async load(dirs: readonly string[], scriptsDir: string): Promise<PlaybookCatalog> {
    const { playbooks, errors } = await loadPlaybookDirs(dirs, { scriptsDir });
    return new PlaybookCatalog(playbooks, errors);
  }

  list(): CatalogEntry[] {
    return [...this.byId.values()].sort((a, b) => a.playbook.id.localeCompare(b.playbook.id));
  }

  get(id: string): CatalogEntry | undefined {
    return this.byId.get(id);
  }

  require(id: string): CatalogEntry {
    const entry = this.byId.get(id);
    if (!entry) {
      throw new ReflexError('not_found', `no playbook ${id}`, {
        safeMessage: `There is no playbook "${id.slice(0, 80)}". Known: ${[...this.byId.keys()].sort().join(', ') || 'none'}.`,
      });
    }
    return entry;
  }
}
