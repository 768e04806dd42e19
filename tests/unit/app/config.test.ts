import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/app/config.ts';
import { ReflexError } from '../../../src/errors.ts';

function configError(env: Record<string, string>): ReflexError {
  try {
    loadConfig(env);
  } catch (err) {
    return err as ReflexError;
  }
  throw new Error('expected loadConfig to throw');
}

describe('config', () => {
  it('defaults to embedded mode, the PostgreSQL queue backend, port 8080', () => {
    const c = loadConfig({});
    expect(c.mode).toBe('embedded');
    expect(c.queue).toEqual({ backend: 'postgres' });
    expect(c.port).toBe(8080);
    expect(c.dataDir.endsWith('.reflex')).toBe(true);
    expect(c.apiToken).toBeUndefined();
  });

  it('switches to external PostgreSQL and Redis when their URLs are set', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/reflex', REDIS_URL: 'redis://cache:6379', PORT: '9000' });
    expect(c.mode).toBe('external');
    expect(c.queue).toEqual({ backend: 'redis', url: 'redis://cache:6379', prefix: '{reflex}' });
    expect(c.port).toBe(9000);
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://root@localhost/x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'http://localhost' }, 'REDIS_URL'],
    [{ REFLEX_API_TOKEN: 'short' }, 'REFLEX_API_TOKEN'],
    [{ REFLEX_MASTER_KEY: 'bm90IDMyIGJ5dGVz' }, 'REFLEX_MASTER_KEY'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ REFLEX_DB_SCHEMA: 'Robert"); drop' }, 'REFLEX_DB_SCHEMA'],
    [{ NODE_ENV: 'production' }, 'DATABASE_URL'],
    [{ REFLEX_HOUSEKEEPING_INTERVAL_SECONDS: '-5' }, 'REFLEX_HOUSEKEEPING_INTERVAL_SECONDS'],
  ])('names the bad variable: %o', (env, variable) => {
    const err = configError(env);
    expect(err).toBeInstanceOf(ReflexError);
    expect(err.code).toBe('config.invalid');
    expect(err.message).toContain(variable);
    expect(err.details?.variables).toContain(variable);
  });

  it('reports every bad variable at once', () => {
    const err = configError({ PORT: 'x', LOG_LEVEL: 'y' });
    expect(err.details?.variables).toEqual(expect.arrayContaining(['PORT', 'LOG_LEVEL']));
  });

  it('sweeps every 10 minutes by default; 0 turns the sweep off', () => {
    expect(loadConfig({}).housekeepingIntervalMs).toBe(600_000);
    expect(loadConfig({ REFLEX_HOUSEKEEPING_INTERVAL_SECONDS: '0' }).housekeepingIntervalMs).toBe(0);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).mode).toBe('embedded');
  });
});
