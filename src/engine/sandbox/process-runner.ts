/**
 * Runs a bash or python script from the script repository (manifests/scripts/) as a child
 * process, for playbook `script: { file: … }` steps.
 *
 * What keeps it contained:
 * - The name must be a plain file name (`parse-mail-headers.py`), resolved inside the repository
 *   and required to be a regular file there: no `../`, no absolute paths, no symlinks.
 * - `spawn(interpreter, [script], { shell: false })`: inputs are never part of a command line.
 *   They arrive as environment variables `REFLEX_INPUT_<NAME>` (strings as is, other values as
 *   JSON) and, all together, as one JSON document on stdin. Values over 32 KiB or containing a NUL
 *   byte are only on stdin, because the kernel caps environment strings.
 * - A clean environment: `PATH`, `LANG` and the inputs, nothing of the worker's own (no
 *   `DATABASE_URL`, no vault key). Python runs with `-I` (ignores PYTHON* variables and user site).
 * - Limits: wall-clock timeout (kills the whole process group, so a `sleep 1000 &` dies too),
 *   address-space and CPU limits through util-linux `prlimit` (Node cannot set rlimits on a child,
 *   and `ulimit` would need a shell), 1 MiB of stdout, the last 64 KiB of stderr. Any process the
 *   script leaves behind is killed when it exits.
 * - A fresh empty working directory per run, removed afterwards.
 *
 * Output: stdout parsed as JSON when it is JSON, otherwise the text. A non-zero exit is a
 * `ReflexError('upstream.rejected')` carrying the stderr tail, retryable so the step's own retry
 * policy decides; a broken limit is non-retryable, because it would break again.
 *
 * @example
 * const { output } = await runScriptFile('parse-mail-headers.py', { message: rawEmail }, { scriptsDir: 'manifests/scripts' });
 */
import { spawn } from 'node:child_process';
import { access, constants, lstat, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ReflexError } from '../../errors.ts';

export interface ProcessRunnerOptions {
  /** The script repository, normally `manifests/scripts`. */
  scriptsDir: string;
  timeoutMs?: number;
  /** Address-space limit in MiB (RLIMIT_AS). */
  memoryLimitMb?: number;
  maxOutputBytes?: number;
  /** PATH given to the script; the worker's own PATH is not passed on. */
  pathEnv?: string;
  lang?: string;
  /** Named in error messages, e.g. the step id. */
  label?: string;
}

export interface ProcessResult {
  /** Parsed JSON when stdout was JSON, otherwise stdout as text (`null` when empty). */
  output: unknown;
  format: 'json' | 'text';
  stderr: string;
  exitCode: number;
  durationMs: number;
}

export const PROCESS_RUNNER_DEFAULTS = {
  timeoutMs: 30_000,
  memoryLimitMb: 256,
  maxOutputBytes: 1024 * 1024,
  maxStderrBytes: 64 * 1024,
  maxEnvValueBytes: 32 * 1024,
  pathEnv: '/usr/local/bin:/usr/bin:/bin',
  lang: 'C.UTF-8',
} as const;

const SCRIPT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.(sh|py)$/;
const INPUT_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

async function findExecutable(name: string, pathEnv: string): Promise<string | undefined> {
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Resolves a script name inside the repository, refusing anything that is not a regular file directly in it. */
export async function resolveScript(scriptsDir: string, name: string): Promise<string> {
  if (!SCRIPT_NAME.test(name)) {
    throw new ReflexError('input.invalid', `script name ${JSON.stringify(name)} is not a file name in the script repository`, {
      retryable: false,
      safeMessage: 'Scripts are named by file name (e.g. parse-mail-headers.py) and must live in the script repository.',
      details: { script: name },
    });
  }
  const dir = await realpath(scriptsDir);
  const path = join(dir, name);
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    throw new ReflexError('not_found', `no script ${name} in ${scriptsDir}`, { retryable: false, cause: err, details: { script: name } });
  }
  if (!stat.isFile()) {
    throw new ReflexError('input.invalid', `script ${name} is not a regular file (symlinks and directories are refused)`, {
      retryable: false,
      details: { script: name },
    });
  }
  return path;
}

function buildEnvironment(inputs: Record<string, unknown>, pathEnv: string, lang: string): Record<string, string> {
  const env: Record<string, string> = { PATH: pathEnv, LANG: lang };
  for (const [name, value] of Object.entries(inputs)) {
    if (!INPUT_NAME.test(name)) {
      throw new ReflexError('input.invalid', `input name ${JSON.stringify(name)} cannot be an environment variable`, { retryable: false });
    }
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (text.includes('\u0000') || Buffer.byteLength(text, 'utf8') > PROCESS_RUNNER_DEFAULTS.maxEnvValueBytes) continue;
    env[`REFLEX_INPUT_${name.toUpperCase()}`] = text;
  }
  return env;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

function tail(text: string, max: number): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

/** Runs `name` from the script repository with `inputs`; see the module comment for the contract. */
export async function runScriptFile(name: string, inputs: Record<string, unknown>, options: ProcessRunnerOptions): Promise<ProcessResult> {
  const timeoutMs = options.timeoutMs ?? PROCESS_RUNNER_DEFAULTS.timeoutMs;
  const memoryLimitMb = options.memoryLimitMb ?? PROCESS_RUNNER_DEFAULTS.memoryLimitMb;
  const maxOutputBytes = options.maxOutputBytes ?? PROCESS_RUNNER_DEFAULTS.maxOutputBytes;
  const pathEnv = options.pathEnv ?? PROCESS_RUNNER_DEFAULTS.pathEnv;
  const label = options.label ?? name;

  const scriptPath = await resolveScript(options.scriptsDir, name);
  const python = name.endsWith('.py');
  const interpreter = await findExecutable(python ? 'python3' : 'bash', pathEnv);
  if (!interpreter) {
    throw new ReflexError('config.invalid', `${python ? 'python3' : 'bash'} is not on the script PATH ${pathEnv}`, { retryable: false });
  }
  const interpreterArgs = python ? ['-I', '-B', scriptPath] : ['--noprofile', '--norc', scriptPath];
  const prlimit = await findExecutable('prlimit', pathEnv);
  if (!prlimit) {
    // Fail closed: running without a memory limit is not a fallback we take silently.
    throw new ReflexError('config.invalid', 'prlimit (util-linux) is required to run repository scripts with a memory limit', {
      retryable: false,
    });
  }
  const limits = [
    `--as=${memoryLimitMb * 1024 * 1024}`,
    '--core=0',
    `--cpu=${Math.ceil(timeoutMs / 1000) + 1}`,
  ];
  const env = buildEnvironment(inputs, pathEnv, options.lang ?? PROCESS_RUNNER_DEFAULTS.lang);
  const stdin = `${JSON.stringify(inputs)}\n`;
  const cwd = await mkdtemp(join(tmpdir(), 'reflex-script-'));
  const started = performance.now();

  try {
    return await new Promise<ProcessResult>((resolve, reject) => {
      const child = spawn(prlimit, [...limits, '--', interpreter, ...interpreterArgs], {
        cwd,
        env,
        shell: false,
        // Its own process group, so a timeout can kill everything the script started.
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stopped: 'timeout' | 'output' | undefined;
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderr = '';
      const timer = setTimeout(() => {
        stopped ??= 'timeout';
        killGroup(child.pid);
      }, timeoutMs);

      child.stdout.on('data', (chunk: Buffer) => {
        stdoutBytes += chunk.length;
        if (stdoutBytes > maxOutputBytes) {
          stopped ??= 'output';
          killGroup(child.pid);
          return;
        }
        stdout.push(chunk);
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = tail(stderr + chunk, PROCESS_RUNNER_DEFAULTS.maxStderrBytes);
      });
      // A script that never reads stdin closes the pipe early; that is not an error.
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin);

      // Leftover background processes die with the script, or they would hold stdout open.
      child.on('exit', () => killGroup(child.pid));
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new ReflexError('config.invalid', `${label}: cannot start ${interpreter}: ${err.message}`, { retryable: false, cause: err }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const durationMs = Math.round(performance.now() - started);
        const stderrTail = tail(stderr.trim(), 2_000);
        if (stopped === 'timeout') {
          reject(new ReflexError('timeout', `${label}: script ran longer than ${timeoutMs} ms and was killed`, {
            retryable: false,
            details: { script: name, durationMs },
          }));
          return;
        }
        if (stopped === 'output') {
          reject(new ReflexError('input.too_large', `${label}: script wrote more than ${maxOutputBytes} bytes to stdout and was killed`, {
            retryable: false,
            details: { script: name },
          }));
          return;
        }
        if (/MemoryError|cannot allocate memory|out of memory/i.test(stderr)) {
          reject(new ReflexError('input.invalid', `${label}: script exceeded the ${memoryLimitMb} MiB memory limit: ${stderrTail}`, {
            retryable: false,
            safeMessage: `The script used more than ${memoryLimitMb} MiB of memory and was stopped.`,
            details: { script: name, reason: 'memory_limit' },
          }));
          return;
        }
        if (code !== 0) {
          const how = code === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${code}`;
          reject(new ReflexError('upstream.rejected', `${label}: script ${how}${stderrTail === '' ? '' : `: ${stderrTail}`}`, {
            retryable: code !== null,
            safeMessage: 'The script step failed.',
            details: { script: name, exitCode: code, signal, stderrTail },
          }));
          return;
        }
        const text = Buffer.concat(stdout).toString('utf8').trim();
        let output: unknown = text === '' ? null : text;
        let format: ProcessResult['format'] = 'text';
        if (text !== '') {
          try {
            output = JSON.parse(text) as unknown;
            format = 'json';
          } catch {
            // plain text output is allowed
          }
        }
        resolve({ output, format, stderr: stderrTail, exitCode: 0, durationMs });
      });
    });
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}
