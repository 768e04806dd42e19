import { shortIncidentId } from '../../store/incidents.ts';

/** Slack's limit; Teams allows more, SENTchat has none. */
export const CHANNEL_NAME_MAX = 80;

/**
 * `inc-<yyyymmdd>-<short-id>-<slug>`: lower case, `a-z0-9-` only (what Slack accepts without
 * complaint), at most 80 characters. The date is the incident's opening day in UTC, the short id
 * its first 8 hex digits (what chat shows), the slug its title. `suffix` (2, 3, …) is appended
 * when the name is taken by a channel that is not this incident's.
 *
 * @example
 * incidentChannelName({ id: '1a2b3c4d-…', title: 'Ransomware on web-01!', created_at }) // 'inc-20261121-1a2b3c4d-ransomware-on-web-01'
 */
export function incidentChannelName(incident: { id: string; title: string; created_at: Date }, suffix?: number): string {
  const day = incident.created_at.toISOString().slice(0, 10).replace(/-/g, '');
  const head = `inc-${day}-${shortIncidentId(incident.id).toLowerCase()}`;
  const tail = suffix && suffix > 1 ? `-${suffix}` : '';
  const room = CHANNEL_NAME_MAX - head.length - tail.length - 1;
  const slug = incident.title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, room)
    .replace(/-+$/, '');
  return `${head}${slug ? `-${slug}` : ''}${tail}`;
}
