/**
 * Every action a playbook may call, with the `with:` fields it takes and, for containment, the
 * action that undoes it. The manifest validator refuses unknown actions, unknown or missing
 * fields, and `revert` steps whose target cannot be undone, so a typo fails at load time instead
 * of at 3 AM in the middle of an incident.
 *
 * Names are `<port>.<verb>`: the part before the dot is the port (DESIGN §4) whose adapter runs
 * the call, so a vendor swap never touches a playbook.
 */

/**
 * How a `with:` field is checked at load time. Any string field may instead be a whole
 * `${{ expr }}` whose type is only known at run time.
 * - `string`: a literal string or a template.
 * - `number` / `boolean`: that literal, or a whole expression.
 * - `duration`: a duration literal (`30s`, `24h`) or a whole expression.
 * - `string_list`: a string (one item) or a list of strings, or a whole expression.
 * - `object`: a map (its strings may hold templates), or a whole expression.
 * - `any`: any value.
 * - `expression`: bare JSONata evaluated later by the executor (not when `with:` is resolved),
 *   e.g. the success check of an HTTP call, which needs the response.
 */
export type ActionFieldType = 'string' | 'number' | 'boolean' | 'duration' | 'string_list' | 'object' | 'any' | 'expression';

export interface ActionField {
  type: ActionFieldType;
  required: boolean;
  description: string;
}

/**
 * How to undo a call. `with` maps each field of the undo action to a JSONata expression over
 * `{ original, output }`: the resolved `with:` of the step being reverted and its output.
 * `requires` lists fields the original step must have set for the undo to be possible.
 */
export interface UndoSpec {
  action: string;
  with: Readonly<Record<string, string>>;
  requires?: readonly string[];
}

export interface ActionSpec {
  /** The port (DESIGN §4) whose adapter executes the call. */
  port: string;
  description: string;
  fields: Readonly<Record<string, ActionField>>;
  undo?: UndoSpec;
  /** Destructive calls cannot be approved by whoever requested them (DESIGN §3.4). */
  destructive: boolean;
}

const req = (type: ActionFieldType, description: string): ActionField => ({ type, required: true, description });
const opt = (type: ActionFieldType, description: string): ActionField => ({ type, required: false, description });

const CATALOGUE = {
  'intel.enrich': {
    port: 'IntelProvider',
    description: 'Reputation of one or more observables (ip, domain, url, hash) from the configured intel sources.',
    fields: {
      observables: req('any', 'one observable value or a list of them'),
      type: opt('string', 'ip | domain | url | hash; guessed from the value when omitted'),
      deep: opt('boolean', 'also query the slow, rate-limited sources (default: only for severity 1-2)'),
    },
    destructive: false,
  },
  'firewall.block': {
    port: 'Firewall',
    description: 'Blocks an IP address at the perimeter firewalls.',
    fields: {
      ip: req('string', 'IPv4 or IPv6 address or CIDR'),
      ttl: opt('duration', 'how long the firewall itself keeps the rule, when it supports expiry'),
      reason: opt('string', 'shown in the firewall rule comment'),
    },
    undo: { action: 'firewall.unblock', with: { ip: 'original.ip', reason: "'reverted by SENTreflex'" } },
    destructive: false,
  },
  'firewall.unblock': {
    port: 'Firewall',
    description: 'Removes a block added by firewall.block.',
    fields: { ip: req('string', 'the blocked address'), reason: opt('string', 'audit comment') },
    destructive: false,
  },
  'identity.disable_user': {
    port: 'IdentityProvider',
    description: 'Disables an account in the directory (AD / Entra ID / LDAP) and revokes its sessions.',
    fields: { user: req('string', 'user principal name or directory id'), reason: opt('string', 'audit comment') },
    undo: { action: 'identity.enable_user', with: { user: 'original.user' } },
    destructive: true,
  },
  'identity.enable_user': {
    port: 'IdentityProvider',
    description: 'Re-enables an account disabled by identity.disable_user.',
    fields: { user: req('string', 'user principal name or directory id') },
    destructive: false,
  },
  'identity.revoke_sessions': {
    port: 'IdentityProvider',
    description: 'Signs a user out everywhere (refresh tokens and sessions).',
    fields: { user: req('string', 'user principal name or directory id') },
    destructive: false,
  },
  'identity.reset_password': {
    port: 'IdentityProvider',
    description: 'Forces a password reset; the old password stops working at once.',
    fields: {
      user: req('string', 'user principal name or directory id'),
      force_change_at_login: opt('boolean', 'require a new password at next sign-in (default true)'),
    },
    destructive: true,
  },
  'vault.rotate_credential': {
    port: 'CredentialVault',
    description: 'Rotates credentials held in the vault (service accounts, API keys, database passwords).',
    fields: {
      assets: req('string_list', 'vault paths or asset ids of the credentials'),
      reason: opt('string', 'audit comment'),
    },
    destructive: true,
  },
  'host.isolate': {
    port: 'HostContainment',
    description: 'Cuts a host off the network except for the management channel.',
    fields: { host: req('string', 'hostname or agent id'), reason: opt('string', 'audit comment') },
    undo: { action: 'host.release', with: { host: 'original.host' } },
    destructive: true,
  },
  'host.release': {
    port: 'HostContainment',
    description: 'Reconnects a host isolated by host.isolate.',
    fields: { host: req('string', 'hostname or agent id') },
    destructive: false,
  },
  'wazuh.active_response': {
    port: 'Wazuh',
    description: 'Runs a Wazuh active-response command on agents (PUT /active-response).',
    fields: {
      agent_id: req('string', 'Wazuh agent id, e.g. "003"'),
      command: req('string', 'active-response command name, e.g. "!isolate-host"'),
      arguments: opt('string_list', 'extra arguments passed to the command'),
      release_command: opt('string', 'the command that undoes this one; needed for a revert'),
      release_arguments: opt('string_list', 'arguments for the release command'),
    },
    // Wazuh's API can only trigger a command; the undo is a second command the operator names.
    undo: {
      action: 'wazuh.active_response',
      with: { agent_id: 'original.agent_id', command: 'original.release_command', arguments: 'original.release_arguments' },
      requires: ['release_command'],
    },
    destructive: true,
  },
  'mail.get_message': {
    port: 'MailboxAdmin',
    description: "Fetches a message's full RFC 822 source from a mailbox (output: { source, mailbox, message_id }).",
    fields: {
      message_id: req('string', 'the Internet Message-ID header value'),
      mailbox: req('string', 'address of the mailbox that holds it, e.g. the reporter'),
    },
    destructive: false,
  },
  'mail.delete_message': {
    port: 'MailboxAdmin',
    description: 'Deletes a message (by Internet Message-ID) from mailboxes.',
    fields: {
      message_id: req('string', 'the Internet Message-ID header value'),
      mailboxes: opt('any', '"all" (default) or a list of addresses'),
      mode: opt('string', 'soft (recoverable, default) | hard'),
    },
    destructive: true,
  },
  'mail.send': {
    port: 'Mailer',
    description: 'Sends an e-mail.',
    fields: {
      to: req('string_list', 'recipient address(es)'),
      subject: req('string', 'subject line'),
      body: req('string', 'plain-text body'),
    },
    destructive: false,
  },
  'case.comment': {
    port: 'CaseSystem',
    description: "Adds a comment to the run's case (TheHive and the internal incident).",
    fields: { text: req('string', 'markdown comment') },
    destructive: false,
  },
  'pager.page': {
    port: 'Pager',
    description: 'Opens a page (PagerDuty incident) for an on-call schedule.',
    fields: {
      summary: req('string', 'one-line summary'),
      schedule: opt('string', 'on-call schedule or escalation policy; default: the tenant default'),
      severity: opt('string', 'critical | error | warning | info'),
      dedup_key: opt('string', 'groups repeated pages; defaults to run and step'),
      details: opt('object', 'custom details shown in the page'),
    },
    destructive: false,
  },
  'phone.call': {
    port: 'Pager',
    description: 'Places a voice call (Twilio) that reads a message and asks for acknowledgement.',
    fields: {
      message: req('string', 'text read out by the call'),
      schedule: opt('string', 'call whoever is on call for this schedule'),
      to: opt('string', 'an E.164 number, when not calling the on-call'),
    },
    destructive: false,
  },
  'chat.notify': {
    port: 'ChatTransport',
    description: 'Posts a message to a chat channel.',
    fields: { channel: req('string', 'channel name or id'), text: req('string', 'message text (mrkdwn)') },
    destructive: false,
  },
  'http.request': {
    port: 'Http',
    description: 'Calls any REST endpoint; the SSRF policy and timeouts of the HTTP adapter apply.',
    fields: {
      method: req('string', 'GET | POST | PUT | PATCH | DELETE'),
      url: req('string', 'absolute https URL'),
      headers: opt('object', 'request headers'),
      body: opt('any', 'JSON body (objects) or text (strings)'),
      secret: opt('string', 'name of a vault secret sent as a bearer token, so tokens never live in a manifest'),
      success: opt('expression', 'JSONata over { response: { status, headers, body } }; default: status 2xx'),
      timeout: opt('duration', 'request timeout (default 30s)'),
    },
    destructive: false,
  },
} as const satisfies Record<string, ActionSpec>;

export type ActionName = keyof typeof CATALOGUE;

/** The catalogue, read-only. */
export const ACTION_CATALOGUE: Readonly<Record<ActionName, ActionSpec>> = CATALOGUE;

export function isActionName(name: string): name is ActionName {
  return Object.prototype.hasOwnProperty.call(CATALOGUE, name);
}

/** The spec of an action, or `undefined` for a name the catalogue does not know. */
export function findAction(name: string): ActionSpec | undefined {
  return isActionName(name) ? ACTION_CATALOGUE[name] : undefined;
}
