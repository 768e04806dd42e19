import { createHash } from 'node:crypto';
import type { SentinelEvent } from './event.ts';

/**
 * The dedupe key of an event within its tenant: what makes two alerts "the same thing happening
 * again". Source and event type, the host, the key observables (IPs and hashes, sorted) and the
 * thing acted on where the type has one: the file for FIM, the rule/NVT and CVEs for
 * vulnerabilities, the user for authentication. Timestamps and counters are never part of it.
 */
export function fingerprintOf(e: SentinelEvent): string {
  const parts: (string | null | undefined)[] = [
    e.client_id,
    e.source,
    e.event_type,
    e.host.name ?? e.host.ip,
    [...e.observables.ip].sort().join(','),
    [...e.observables.hash].sort().join(','),
  ];
  if (e.event_type.startsWith('fim.')) parts.push(e.file?.path);
  if (e.event_type.startsWith('vuln.')) {
    parts.push(e.rule?.id, [...(e.vulnerability?.cve ?? [])].sort().join(','), e.vulnerability?.package?.name);
    // OpenVAS reports the same NVT per port; the port is only in raw.
    const port = (e.raw as { port?: unknown }).port;
    if (typeof port === 'string' || typeof port === 'number') parts.push(String(port));
  }
  if (e.event_type.startsWith('auth.')) parts.push(e.principal.user);
  if (e.event_type === 'rootcheck.anomaly' || e.event_type === 'wazuh.alert' || e.event_type === 'generic.alert') parts.push(e.rule?.id);
  return createHash('sha256').update(parts.map((p) => p ?? '').join('\u001f')).digest('hex').slice(0, 40);
}

/** A short human title for an alert row and its first notification. */
export function titleOf(e: SentinelEvent): string {
  const what = e.rule?.name ?? e.event_type;
  const where = e.host.name ?? e.host.ip;
  const ip = e.observables.ip[0];
  return [what, where ? `on ${where}` : null, ip && ip !== e.host.ip ? `from ${ip}` : null].filter(Boolean).join(' ').slice(0, 300);
}
