import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { runScriptFile } from '../../../src/engine/sandbox/process-runner.ts';

const ATTACHMENT = '<script>steal()</script>';

const PHISH = [
  'Received: from mx.corp.example (mx.corp.example [10.0.0.5])',
  '\tby mail.corp.example with ESMTPS id abc; Tue, 4 Mar 2025 09:12:01 +0000',
  'Received: from mailer.evil.example (mailer.evil.example [198.51.100.23])',
  '\tby mx.corp.example with ESMTP id def for <alice@corp.example>; Tue, 4 Mar 2025 09:12:00 +0000',
  'Authentication-Results: mx.corp.example; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail header.from=bank.example',
  'Return-Path: <bounce@evil.example>',
  'From: "Bank Security" <security@bank.example>',
  'Reply-To: <help@evil.example>',
  'To: Alice <alice@corp.example>',
  'Subject: Urgent: verify your account',
  'Message-ID: <1234@mailer.evil.example>',
  'Date: Tue, 4 Mar 2025 09:11:58 +0000',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  '--outer',
  'Content-Type: multipart/alternative; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Please verify at https://login.evil.example/verify?u=alice.',
  '--b1',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>Please <a href="https://login.evil.example/verify?u=alice">www.bank.example</a></p>',
  '<img src="https://tracker.evil.example/p.gif">',
  '--b1--',
  '--outer',
  'Content-Type: application/octet-stream',
  'Content-Disposition: attachment; filename="invoice.html"',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from(ATTACHMENT).toString('base64'),
  '--outer--',
  '',
].join('\r\n');

describe('parse-mail-headers.py', () => {
  it('extracts sender, reply-to, the Received chain, links and indicators', async () => {
    const { output, format } = await runScriptFile('parse-mail-headers.py', { message: PHISH }, { scriptsDir: 'manifests/scripts' });
    expect(format).toBe('json');
    expect(output).toMatchObject({
      subject: 'Urgent: verify your account',
      message_id: '<1234@mailer.evil.example>',
      from: { name: 'Bank Security', address: 'security@bank.example' },
      reply_to: [{ address: 'help@evil.example' }],
      return_path: { address: 'bounce@evil.example' },
      sender_domain: 'bank.example',
      reply_to_mismatch: true,
      authentication: { spf: 'fail', dkim: 'none', dmarc: 'fail' },
      origin_ip: '198.51.100.23',
      domains: ['login.evil.example', 'tracker.evil.example'],
      attachments: [
        {
          filename: 'invoice.html',
          content_type: 'application/octet-stream',
          size: ATTACHMENT.length,
          sha256: createHash('sha256').update(ATTACHMENT).digest('hex'),
        },
      ],
    });
    const parsed = output as { received: Array<{ from: string; by: string }>; links: Array<{ url: string; text?: string }>; indicators: string[] };
    expect(parsed.received.map((hop) => `${hop.from} -> ${hop.by}`)).toEqual([
      'mx.corp.example -> mail.corp.example',
      'mailer.evil.example -> mx.corp.example',
    ]);
    expect(parsed.links).toEqual([
      { url: 'https://login.evil.example/verify?u=alice', domain: 'login.evil.example', text: 'www.bank.example' },
      { url: 'https://tracker.evil.example/p.gif', domain: 'tracker.evil.example' },
    ]);
    expect(parsed.indicators).toEqual([
      'link text shows www.bank.example but points to login.evil.example',
      "reply-to domain differs from the sender's",
      "return-path domain differs from the sender's",
      'dmarc=fail',
      'spf=fail',
    ]);
  });

  it('fails with a clear message when no message is given', async () => {
    try {
      await runScriptFile('parse-mail-headers.py', {}, { scriptsDir: 'manifests/scripts' });
      throw new Error('expected a failure');
    } catch (err) {
      expect(err).toBeInstanceOf(ReflexError);
      expect((err as ReflexError).message).toBe("parse-mail-headers.py: script exited with code 2: no message given: pass it as the 'message' input");
    }
  });
});
