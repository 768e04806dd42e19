/**
 * Playbook manifests: `manifests/playbooks/*.yaml` in, validated `Playbook`s out.
 *
 * A manifest that is wrong in any way is refused with every problem listed as
 * `file:line:column field: message`, e.g.
 * `manifests/playbooks/x.yaml:12:9 steps[2].with.ip: expected an expression or string`, so the
 * author fixes them in one go. The reference for authors is docs/PLAYBOOKS.md.
 *
 * @example
 * const { playbooks, errors } = await loadPlaybookDirs(['manifests/playbooks'], { scriptsDir: 'manifests/scripts' });
 * for (const { file, error } of errors) log.error({ file }, error.message);
 */
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ReflexError } from '../errors.ts';
import { checkPlaybook } from './manifest/checks.ts';
import type { CheckOptions, ManifestIssue } from './manifest/checks.ts';
import { normalizePlaybook } from './manifest/normalize.ts';
import { describeIssue, playbookSchema } from './manifest/schema.ts';
import { formatPath, locate } from './manifest/source-map.ts';
import type { ManifestPath } from './manifest/source-map.ts';
import type { Playbook } from './manifest/types.ts';

export type * from './manifest/types.ts';
export { INPUT_TYPES, ROLES, STEP_KINDS } from './manifest/types.ts';
export { parseDuration, formatDuration } from './manifest/duration.ts';
export { checkInputValue } from './manifest/input-types.ts';
export { STEP_DEFAULTS } from './manifest/normalize.ts';

/** Manifests are hand-written; anything bigger is a mistake or an attack on the YAML parser. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

export type ParsePlaybookOptions = CheckOptions;

export interface ManifestProblem {
  line: number;
  column: number;
  field: string;
  message: string;
}

export interface PlaybookFileError {
  file: string;
  error: ReflexError;
}

export interface LoadedPlaybooks {
  playbooks: Playbook[];
  /** One entry per file that could not be loaded; the other files still load. */
  errors: PlaybookFileError[];
}

export interface LoadPlaybookOptions {
  /** The script repository (manifests/scripts/); when set, `script.file` names are looked up there. */
  scriptsDir?: string;
}

function manifestError(file: string, problems: ManifestProblem[]): ReflexError {
  const lines = problems.map((p) => `${file}:${p.line}:${p.column} ${p.field === '' ? '' : `${p.field}: `}${p.message}`);
  const first = problems[0] ?? { line: 1, column: 1, field: '', message: 'invalid manifest' };
  return new ReflexError('input.invalid', lines.join('\n'), {
    retryable: false,
    safeMessage: `Playbook manifest ${file} is not valid: ${lines[0] ?? first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`,
    details: { file, line: first.line, column: first.column, field: first.field, problems },
  });
}

/**
 * Parses and validates one manifest. Throws `ReflexError('input.invalid')` whose message lists
 * every problem as `file:line:column field: message`, with the first one in `details`
 * (`{ file, line, column, field, problems }`).
 */
export function parsePlaybook(text: string, file: string, options: ParsePlaybookOptions = {}): Playbook {
  if (Buffer.byteLength(text, 'utf8') > MAX_MANIFEST_BYTES) {
    throw new ReflexError('input.too_large', `${file}: manifest is larger than ${MAX_MANIFEST_BYTES} bytes`, {
      details: { file, line: 1, column: 1, field: '' },
    });
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw manifestError(
      file,
      doc.errors.map((err) => {
        const pos = lineCounter.linePos(err.pos[0]);
        return { line: pos.line, column: pos.col, field: '', message: `YAML: ${err.message.split('\n')[0] ?? err.message}` };
      }),
    );
  }
  let data: unknown;
  try {
    // Aliases are capped so a "billion laughs" manifest cannot exhaust memory.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw manifestError(file, [{ line: 1, column: 1, field: '', message: `YAML: ${err instanceof Error ? err.message : String(err)}` }]);
  }
  const toProblem = (path: ManifestPath, message: string, atKey = false): ManifestProblem => {
    const pos = locate(doc, lineCounter, path, atKey);
    return { ...pos, field: formatPath(path), message };
  };
  const parsed = playbookSchema.safeParse(data ?? {}, { reportInput: true });
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue): ManifestProblem[] => {
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => toProblem([...path, key], 'unknown field', true));
      }
      const atKey = issue.code === 'custom' && issue.params?.['atKey'] === true;
      return [toProblem(path, describeIssue(issue), atKey)];
    });
    throw manifestError(file, sortProblems(problems));
  }
  const issues: ManifestIssue[] = checkPlaybook(parsed.data, options);
  if (issues.length > 0) {
    throw manifestError(file, sortProblems(issues.map((i) => toProblem(i.path, i.message, i.atKey ?? false))));
  }
  return normalizePlaybook(parsed.data, (path) => ({ file, ...locate(doc, lineCounter, path) }));
}

function sortProblems(problems: ManifestProblem[]): ManifestProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}

async function listScripts(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    // Only regular files: the process runner refuses symlinks, so a manifest naming one must fail here too.
    if (entry.isFile()) names.add(entry.name);
  }
  return names;
}

/**
 * Loads every `*.yaml` / `*.yml` in the given directories (not recursive). A bad file is reported
 * in `errors` and does not hide the good ones; two files with the same playbook id are an error
 * on the second.
 */
export async function loadPlaybookDirs(dirs: readonly string[], options: LoadPlaybookOptions = {}): Promise<LoadedPlaybooks> {
  const playbooks: Playbook[] = [];
  const errors: PlaybookFileError[] = [];
  let scriptExists: ((name: string) => boolean) | undefined;
  if (options.scriptsDir !== undefined) {
    try {
      const scripts = await listScripts(options.scriptsDir);
      scriptExists = (name) => scripts.has(name);
    } catch (err) {
      errors.push({
        file: options.scriptsDir,
        error: new ReflexError('config.invalid', `cannot read the script repository ${options.scriptsDir}`, { cause: err }),
      });
      scriptExists = () => false;
    }
  }
  const seen = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
    } catch (err) {
      errors.push({ file: dir, error: new ReflexError('not_found', `cannot read playbook directory ${dir}`, { cause: err }) });
      continue;
    }
    for (const name of names) {
      const file = join(dir, name);
      try {
        const stat = await lstat(file);
        if (!stat.isFile()) throw new ReflexError('input.invalid', `${file}: not a regular file`, { details: { file, line: 1, column: 1, field: '' } });
        if (stat.size > MAX_MANIFEST_BYTES) {
          throw new ReflexError('input.too_large', `${file}: manifest is larger than ${MAX_MANIFEST_BYTES} bytes`, {
            details: { file, line: 1, column: 1, field: '' },
          });
        }
        const playbook = parsePlaybook(await readFile(file, 'utf8'), file, scriptExists ? { scriptExists } : {});
        const other = seen.get(playbook.id);
        if (other !== undefined) {
          throw manifestError(file, [
            { line: playbook.location.line, column: playbook.location.column, field: 'id', message: `playbook id "${playbook.id}" is already used by ${other}` },
          ]);
        }
        seen.set(playbook.id, file);
        playbooks.push(playbook);
      } catch (err) {
        errors.push({
          file,
          error: err instanceof ReflexError ? err : new ReflexError('input.invalid', `${file}: ${String(err)}`, { cause: err }),
        });
      }
    }
  }
  return { playbooks, errors };
}
