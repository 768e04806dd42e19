import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding manifests/ (the repository, or the installed package): found from this
 * file's place rather than the working directory, so `reflex` works from anywhere and from dist/.
 */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'manifests', 'playbooks'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}
