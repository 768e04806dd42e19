import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { runScriptFile } from '../../../src/engine/sandbox/process-runner.ts';

const REPOSITORY = 'manifests/scripts';

async function failure(promise: Promise<unknown>): Promise<ReflexError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected the runner to refuse');
}

interface EchoOutput {
  env: Record<string, string>;
  env_names: string[];
  argc: number;
  stdin: unknown;
}

/** Alive means running or sleeping; a zombie waiting for a reaper is dead for our purpose. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('runScriptFile', () => {
  let scratch: string;
  let scripts: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'reflex-runner-'));
    scripts = join(scratch, 'scripts');
    await mkdir(scripts);
    await writeFile(join(scripts, 'hello.sh'), 'echo "hello from bash"\n');
    await writeFile(join(scripts, 'fail.sh'), 'echo "partial" ; echo "vendor API said 403" >&2 ; exit 3\n');
    await writeFile(join(scripts, 'sleeper.sh'), 'sleep 300 &\necho $! > "$REFLEX_INPUT_PIDFILE"\nwait\n');
    await writeFile(join(scripts, 'straggler.sh'), 'sleep 300 &\necho $! > "$REFLEX_INPUT_PIDFILE"\necho done\n');
    await writeFile(join(scripts, 'chatty.sh'), 'head -c 3000000 /dev/zero | tr "\\0" x\n');
    await writeFile(join(scripts, 'hog.py'), 'buffer = bytearray(1024 * 1024 * 1024)\nprint("allocated")\n');
    await writeFile(join(scripts, 'where.py'), 'import json, os\nprint(json.dumps({"cwd": os.getcwd(), "files": os.listdir(".")}))\n');
    await mkdir(join(scripts, 'dir.sh'));
    await symlink(join(scripts, 'hello.sh'), join(scripts, 'link.sh'));
  });

  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  afterEach(() => {
    delete process.env['REFLEX_MASTER_KEY'];
  });

  it('parses JSON stdout as the output and hands inputs over by env and stdin', async () => {
    const result = await runScriptFile('echo-input.sh', { host: 'web-01', score: 91, tags: ['a', 'b'] }, { scriptsDir: REPOSITORY });
    expect(result.format).toBe('json');
    const output = result.output as EchoOutput;
    expect(output.env).toEqual({ REFLEX_INPUT_HOST: 'web-01', REFLEX_INPUT_SCORE: '91', REFLEX_INPUT_TAGS: '["a","b"]' });
    expect(output.stdin).toEqual({ host: 'web-01', score: 91, tags: ['a', 'b'] });
    expect(output.argc).toBe(0);
  });

  it('returns plain text output as text', async () => {
    const result = await runScriptFile('hello.sh', {}, { scriptsDir: scripts });
    expect(result).toMatchObject({ output: 'hello from bash', format: 'text', exitCode: 0 });
  });

  it('passes shell metacharacters through as data and never runs them', async () => {
    const marker = join(scratch, 'marker');
    await writeFile(marker, 'still here');
    const payloads = {
      classic: '"; rm -rf / #',
      quote: `'; rm -f ${marker}; echo '`,
      subshell: `$(rm -f ${marker})`,
      backticks: `\`rm -f ${marker}\``,
      newline: `x\nrm -f ${marker}`,
      glob: '*',
    };
    const result = await runScriptFile('echo-input.sh', payloads, { scriptsDir: REPOSITORY });
    const output = result.output as EchoOutput;
    expect(output.env).toEqual({
      REFLEX_INPUT_CLASSIC: payloads.classic,
      REFLEX_INPUT_QUOTE: payloads.quote,
      REFLEX_INPUT_SUBSHELL: payloads.subshell,
      REFLEX_INPUT_BACKTICKS: payloads.backticks,
      REFLEX_INPUT_NEWLINE: payloads.newline,
      REFLEX_INPUT_GLOB: payloads.glob,
    });
    expect(output.stdin).toEqual(payloads);
    expect(await readFile(marker, 'utf8')).toBe('still here');
  });

  it("does not pass the worker's environment on", async () => {
    process.env['REFLEX_MASTER_KEY'] = 'k-0123456789abcdef';
    const result = await runScriptFile('echo-input.sh', { user: 'alice' }, { scriptsDir: REPOSITORY });
    const names = (result.output as EchoOutput).env_names;
    expect(names).not.toContain('REFLEX_MASTER_KEY');
    expect(names).not.toContain('HOME');
    // What bash itself adds (PWD, SHLVL, _) is fine; nothing else of ours may appear.
    const allowed = new Set(['PATH', 'LANG', 'PWD', 'SHLVL', '_', 'OLDPWD', 'REFLEX_INPUT_USER']);
    expect(names.filter((n) => !allowed.has(n))).toEqual([]);
    expect(JSON.stringify(result)).not.toContain('k-0123456789abcdef');
  });

  it('runs in a fresh empty directory that is removed afterwards', async () => {
    const result = await runScriptFile('where.py', {}, { scriptsDir: scripts });
    const { cwd, files } = result.output as { cwd: string; files: string[] };
    expect(files).toEqual([]);
    expect(cwd).not.toBe(process.cwd());
    expect(existsSync(cwd)).toBe(false);
  });

  it('kills the whole process group at the timeout', async () => {
    const pidfile = join(scratch, 'sleeper.pid');
    const started = Date.now();
    const err = await failure(runScriptFile('sleeper.sh', { pidfile }, { scriptsDir: scripts, timeoutMs: 500 }));
    expect(err.code).toBe('timeout');
    expect(err.retryable).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number(await readFile(pidfile, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(isAlive(pid)).toBe(false);
  });

  it('kills what a script leaves running in the background when it exits', async () => {
    const pidfile = join(scratch, 'straggler.pid');
    const result = await runScriptFile('straggler.sh', { pidfile }, { scriptsDir: scripts, timeoutMs: 10_000 });
    expect(result.output).toBe('done');
    const pid = Number(await readFile(pidfile, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(isAlive(pid)).toBe(false);
  });

  it('refuses path traversal, absolute paths and names outside the repository', async () => {
    for (const name of ['../../etc/passwd', '/etc/passwd', '../scripts/echo-input.sh', 'sub/echo-input.sh', '.hidden.sh', 'echo-input.rb', '']) {
      const err = await failure(runScriptFile(name, {}, { scriptsDir: REPOSITORY }));
      expect(err.code, name).toBe('input.invalid');
    }
    expect((await failure(runScriptFile('missing.sh', {}, { scriptsDir: REPOSITORY }))).code).toBe('not_found');
  });

  it('refuses symlinks and directories in the repository', async () => {
    expect((await failure(runScriptFile('link.sh', {}, { scriptsDir: scripts }))).message).toContain('not a regular file');
    expect((await failure(runScriptFile('dir.sh', {}, { scriptsDir: scripts }))).message).toContain('not a regular file');
  });

  it('reports a non-zero exit with the tail of stderr', async () => {
    const err = await failure(runScriptFile('fail.sh', {}, { scriptsDir: scripts }));
    expect(err.code).toBe('upstream.rejected');
    expect(err.retryable).toBe(true);
    expect(err.message).toBe('fail.sh: script exited with code 3: vendor API said 403');
    expect(err.details).toMatchObject({ exitCode: 3, stderrTail: 'vendor API said 403' });
  });

  it('kills a script that floods stdout', async () => {
    const err = await failure(runScriptFile('chatty.sh', {}, { scriptsDir: scripts, maxOutputBytes: 1024 * 1024 }));
    expect(err.code).toBe('input.too_large');
  });

  it('enforces the memory limit', async () => {
    const err = await failure(runScriptFile('hog.py', {}, { scriptsDir: scripts, memoryLimitMb: 128 }));
    expect(err.code).toBe('input.invalid');
    expect(err.details?.['reason']).toBe('memory_limit');
  });

  it('refuses input names that cannot be environment variables', async () => {
    const err = await failure(runScriptFile('echo-input.sh', { 'bad-name': 1 }, { scriptsDir: REPOSITORY }));
    expect(err.code).toBe('input.invalid');
  });

  it('keeps values too big for the environment on stdin only', async () => {
    const big = 'x'.repeat(40 * 1024);
    const result = await runScriptFile('echo-input.sh', { big, small: 'y' }, { scriptsDir: REPOSITORY });
    const output = result.output as EchoOutput;
    expect(output.env).toEqual({ REFLEX_INPUT_SMALL: 'y' });
    expect(output.stdin).toEqual({ big, small: 'y' });
  });
});
