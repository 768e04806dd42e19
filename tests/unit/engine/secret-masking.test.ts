import { describe, expect, it } from 'vitest';
import { maskSecrets } from '../../../src/engine/run/secret-masking.ts';

describe('maskSecrets', () => {
  it('masks credential-named keys and every occurrence of a sensitive value, keeping the rest', () => {
    const out = maskSecrets(
      {
        url: 'https://hooks.example/x?t=s3cr3t-token-value',
        headers: { Authorization: 'Bearer abc', 'X-Api-Key': 'k', Accept: 'json' },
        secret: 'sentkiosk-webhook-token',
        nested: [{ password: 'pw', note: 'the token s3cr3t-token-value leaked' }],
        count: 3,
      },
      ['s3cr3t-token-value', 'pw'],
    );
    expect(out).toEqual({
      url: 'https://hooks.example/x?t=[masked]',
      headers: { Authorization: '[masked]', 'X-Api-Key': '[masked]', Accept: 'json' },
      // A vault secret's name is not a secret: it says which credential was used.
      secret: 'sentkiosk-webhook-token',
      nested: [{ password: '[masked]', note: 'the token [masked] leaked' }],
      count: 3,
    });
  });

  it('does not shred ordinary text with very short sensitive values', () => {
    expect(maskSecrets('append the pwd', ['pw'])).toBe('append the pwd');
  });
});
