import nock from 'nock';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { ReflexError } from '../../src/errors.ts';

/** The ReflexError a promise rejects with (fails the test if it resolves or throws anything else). */
export async function failure(p: Promise<unknown>): Promise<ReflexError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ReflexError);
  return err as ReflexError;
}

/**
 * Vendor tests talk to nock only: no real network, and every interceptor a test set up must
 * have been called by its end (an unused reply means the code did not make a call it should have).
 */
export function useStrictNock(): void {
  beforeAll(() => nock.disableNetConnect());
  afterAll(() => nock.enableNetConnect());
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
}
