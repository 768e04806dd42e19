/** Headers (unfolded, lower-case keys) and the decoded text and HTML parts of a message as an SMTP server received it. */
export function parseMail(raw: string): { headers: Record<string, string>; text: string | undefined; html: string | undefined } {
  const split = raw.indexOf('\r\n\r\n');
  const headers = headerMap(raw.slice(0, split));
  const body = raw.slice(split + 4);
  const boundary = /boundary="?([^";]+)"?/.exec(headers['content-type'] ?? '')?.[1];
  const parts = boundary ? body.split(`--${boundary}`).slice(1, -1) : [`${raw.slice(0, split)}\r\n\r\n${body}`];
  const found: Record<string, string> = {};
  for (const part of parts) {
    const at = part.indexOf('\r\n\r\n');
    const h = headerMap(part.slice(0, at).trim());
    const content = part.slice(at + 4).replace(/\r\n$/, '');
    const type = (h['content-type'] ?? 'text/plain').split(';')[0]!.trim();
    found[type] = decode(content, h['content-transfer-encoding'] ?? '7bit');
  }
  return { headers, text: found['text/plain'], html: found['text/html'] };
}

export function headerMap(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of block.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

export function decode(content: string, encoding: string): string {
  if (/base64/i.test(encoding)) return Buffer.from(content.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (/quoted-printable/i.test(encoding)) {
    const bytes = content.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return content;
}
