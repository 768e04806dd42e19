import { describe, expect, it } from 'vitest';
import { twilioSignature, verifyTwilioSignature } from '../../../src/integrations/twilio/twilio-signature.ts';

/**
 * X-Twilio-Signature (twilio.com/docs/usage/webhooks/webhooks-security, "Authenticate with
 * signatures": HMAC-SHA1 with the auth token over the full URL followed by the POST parameters
 * sorted by name, base64). The vectors are Twilio's own: the documentation's example
 * (auth token 12345, https://mycompany.com/myapp.php?foo=1&bar=2 → 0/KCTR6DLpKmkAf8muzZqo1nDgQ=)
 * and twilio-ruby's spec/util/request_validator_spec.rb voice request.
 */

const DOC_URL = 'https://mycompany.com/myapp.php?foo=1&bar=2';
const DOC_PARAMS: [string, string][] = [
  ['CallSid', 'CA1234567890ABCDE'],
  ['Caller', '+12349013030'],
  ['Digits', '1234'],
  ['From', '+12349013030'],
  ['To', '+18005551212'],
];

const RUBY_PARAMS: Record<string, string> = {
  ToState: 'California', CalledState: 'California', Direction: 'inbound', FromState: 'CA',
  AccountSid: 'ACba8bc05eacf94afdae398e642c9cc32d', Caller: '+14153595711', CallerZip: '94108',
  CallerCountry: 'US', From: '+14153595711', FromCity: 'SAN FRANCISCO', CallerCity: 'SAN FRANCISCO',
  To: '+14157669926', FromZip: '94108', FromCountry: 'US', ToCity: '', CallStatus: 'ringing',
  CalledCity: '', CallerState: 'CA', CalledZip: '', ToZip: '', ToCountry: 'US',
  CallSid: 'CA136d09cd59a3c0ec8dbff44da5c03f31', CalledCountry: 'US', Called: '+14157669926',
  ApiVersion: '2010-04-01', ApplicationSid: 'AP44efecad51364e80b133bb7c07eb8204',
};

describe('Twilio request signature', () => {
  it("computes Twilio's documented example, whatever order the parameters arrive in", () => {
    expect(twilioSignature('12345', DOC_URL, DOC_PARAMS)).toBe('0/KCTR6DLpKmkAf8muzZqo1nDgQ=');
    expect(twilioSignature('12345', DOC_URL, [...DOC_PARAMS].reverse())).toBe('0/KCTR6DLpKmkAf8muzZqo1nDgQ=');
  });

  it("verifies twilio-ruby's voice request vector", () => {
    expect(
      verifyTwilioSignature({
        authToken: '2bd9e9638872de601313dc77410d3b23',
        url: 'http://twiliotests.heroku.com/validate/voice',
        params: Object.entries(RUBY_PARAMS),
        signature: 'oVb2kXoVy8GEfwBDjR8bk/ZZ6eA=',
      }),
    ).toBe(true);
  });

  it('refuses a changed parameter, URL, token, a missing parameter or a missing header', () => {
    const ok = { authToken: '12345', url: DOC_URL, params: DOC_PARAMS, signature: '0/KCTR6DLpKmkAf8muzZqo1nDgQ=' };
    expect(verifyTwilioSignature(ok)).toBe(true);
    expect(verifyTwilioSignature({ ...ok, params: DOC_PARAMS.map(([k, v]) => [k, k === 'Digits' ? '1' : v] as [string, string]) })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, params: [...DOC_PARAMS, ['Extra', 'x']] })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, params: DOC_PARAMS.slice(1) })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, url: 'https://mycompany.com/myapp.php?foo=1&bar=3' })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, authToken: '12346' })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, signature: undefined })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, signature: '' })).toBe(false);
    expect(verifyTwilioSignature({ ...ok, authToken: '' })).toBe(false);
  });

  it('accepts the URL signed with or without the default port, as Twilio may sign either', () => {
    const withPort = twilioSignature('12345', 'https://mycompany.com:443/myapp.php?foo=1&bar=2', DOC_PARAMS);
    expect(verifyTwilioSignature({ authToken: '12345', url: DOC_URL, params: DOC_PARAMS, signature: withPort })).toBe(true);
    const otherPort = twilioSignature('12345', 'https://mycompany.com:8443/myapp.php?foo=1&bar=2', DOC_PARAMS);
    expect(verifyTwilioSignature({ authToken: '12345', url: DOC_URL, params: DOC_PARAMS, signature: otherPort })).toBe(false);
  });
});
