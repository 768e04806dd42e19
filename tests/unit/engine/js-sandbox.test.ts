import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { runJavaScript } from '../../../src/engine/sandbox/js-sandbox.ts';

async function failure(promise: Promise<unknown>): Promise<ReflexError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected the sandbox to refuse');
}

describe('runJavaScript', () => {
  it('returns the data the snippet computes from its input, and its log lines', async () => {
    const result = await runJavaScript(
      `const hits = input.scores.filter((s) => s >= 70);
       log('hits', hits.length, { max: Math.max(...input.scores) });
       console.log('console works too');
       return { malicious: hits.length > 0, hits };`,
      { scores: [12, 91, 70] },
    );
    expect(result.output).toEqual({ malicious: true, hits: [91, 70] });
    expect(result.logs).toEqual(['hits 2 {"max":91}', 'console works too']);
  });

  it('supports await and returns null for no return value', async () => {
    expect((await runJavaScript('await Promise.resolve(1);', {})).output).toBeNull();
    expect((await runJavaScript('return await Promise.resolve(input.n * 2);', { n: 21 })).output).toBe(42);
  });

  it('works on a copy: the host input object is never touched', async () => {
    const input = { list: [1, 2], nested: { flag: false } };
    const result = await runJavaScript('input.list.push(3); input.nested.flag = true; return input;', input);
    expect(result.output).toEqual({ list: [1, 2, 3], nested: { flag: true } });
    expect(input).toEqual({ list: [1, 2], nested: { flag: false } });
  });

  it('stops while(true){} at the time limit', async () => {
    const started = Date.now();
    const err = await failure(runJavaScript('while (true) {}', {}, { timeoutMs: 300 }));
    expect(err.code).toBe('timeout');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('ran longer than 300 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops a promise that never settles', async () => {
    const err = await failure(runJavaScript('await new Promise(() => {});', {}, { timeoutMs: 300 }));
    expect(err.code).toBe('timeout');
  });

  it('stops code that escapes the function wrapper to loop at compile time', async () => {
    const err = await failure(runJavaScript('}); while (true) {} (function () {', {}, { timeoutMs: 300 }));
    expect(err.code).toBe('timeout');
  });

  it('stops a memory bomb at the memory limit', async () => {
    const err = await failure(
      runJavaScript('const hoard = []; while (true) hoard.push(new Array(1e6).fill(7));', {}, { memoryLimitMb: 16, timeoutMs: 20_000 }),
    );
    expect(err.code).toBe('input.invalid');
    expect(err.retryable).toBe(false);
    expect(err.details?.['reason']).toBe('memory_limit');
    expect(err.message).toContain('16 MB memory limit');
  });

  it('leaks nothing of the host: no process, no require, no way back through constructors', async () => {
    const { output } = await runJavaScript(
      `const attempt = (f) => { try { const v = f(); return v === undefined ? 'undefined' : typeof v; } catch (e) { return 'blocked:' + e.name; } };
       return {
         process: typeof process,
         require: typeof require,
         globalProcess: typeof globalThis.process,
         timers: typeof setTimeout,
         viaThis: attempt(() => this.constructor.constructor('return process')()),
         viaGlobal: attempt(() => globalThis.constructor.constructor('return process')()),
         viaLog: attempt(() => log.constructor('return process')()),
         typeofProcessViaFunction: Object.getPrototypeOf(log).constructor('return typeof process')(),
       };`,
      {},
    );
    expect(output).toEqual({
      process: 'undefined',
      require: 'undefined',
      globalProcess: 'undefined',
      timers: 'undefined',
      viaThis: 'blocked:ReferenceError',
      viaGlobal: 'blocked:ReferenceError',
      viaLog: 'blocked:ReferenceError',
      typeofProcessViaFunction: 'undefined',
    });
  });

  it('cannot reach the file system through dynamic import', async () => {
    const err = await failure(runJavaScript('const fs = await import("node:fs"); return fs.readFileSync("/etc/hostname", "utf8");', {}));
    expect(err.code).toBe('upstream.rejected');
    expect(err.message).not.toContain(process.pid.toString());
  });

  it('leaves nothing behind for the next run', async () => {
    await runJavaScript('globalThis.leftover = "secret from run 1"; return 1;', {});
    const { output } = await runJavaScript('return typeof globalThis.leftover;', {});
    expect(output).toBe('undefined');
  });

  it('reports a thrown error as a retryable step failure and a syntax error as invalid input', async () => {
    const thrown = await failure(runJavaScript('throw new Error("lookup failed for " + input.host);', { host: 'web-01' }));
    expect(thrown.code).toBe('upstream.rejected');
    expect(thrown.retryable).toBe(true);
    expect(thrown.message).toContain('Error: lookup failed for web-01');
    const syntax = await failure(runJavaScript('return {', {}));
    expect(syntax.code).toBe('input.invalid');
    expect(syntax.retryable).toBe(false);
    expect(syntax.message).toContain('does not compile');
  });

  it('refuses oversized output and caps log lines', async () => {
    const big = await failure(runJavaScript('return "x".repeat(2048);', {}, { maxOutputBytes: 1024 }));
    expect(big.code).toBe('input.too_large');
    const { logs } = await runJavaScript('for (let i = 0; i < 50; i++) log("line " + i);', {}, { maxLogLines: 5 });
    expect(logs).toEqual(['line 0', 'line 1', 'line 2', 'line 3', 'line 4', '… 45 more log line(s) dropped']);
  });
});
