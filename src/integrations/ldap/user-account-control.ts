import { ReflexError } from '../../errors.ts';

/**
 * Active Directory `userAccountControl` arithmetic, kept pure so the disable/enable rule is
 * tested without a directory. The LDAP client that reads and writes the attribute is pending the
 * `ldapts` package (docs/INTEGRATIONS.md).
 *
 * The rule (Microsoft KB 305144): the flags are cumulative, so disabling ORs in ACCOUNTDISABLE
 * (0x2) and enabling clears it. The KB's "set it to 514" is only right for an account whose
 * value is exactly 512; writing 514 blindly over 66048 (DONT_EXPIRE_PASSWORD | NORMAL_ACCOUNT)
 * would silently drop "password never expires", and over a smart-card account would drop
 * SMARTCARD_REQUIRED: a containment step must never weaken an account's other settings.
 */

/** The property flags of KB 305144 ("List of property flags"), in hexadecimal as Ldp.exe shows them. */
export const UAC_FLAGS = {
  SCRIPT: 0x0001,
  ACCOUNTDISABLE: 0x0002,
  HOMEDIR_REQUIRED: 0x0008,
  LOCKOUT: 0x0010,
  PASSWD_NOTREQD: 0x0020,
  PASSWD_CANT_CHANGE: 0x0040,
  ENCRYPTED_TEXT_PWD_ALLOWED: 0x0080,
  TEMP_DUPLICATE_ACCOUNT: 0x0100,
  NORMAL_ACCOUNT: 0x0200,
  INTERDOMAIN_TRUST_ACCOUNT: 0x0800,
  WORKSTATION_TRUST_ACCOUNT: 0x1000,
  SERVER_TRUST_ACCOUNT: 0x2000,
  DONT_EXPIRE_PASSWORD: 0x10000,
  MNS_LOGON_ACCOUNT: 0x20000,
  SMARTCARD_REQUIRED: 0x40000,
  TRUSTED_FOR_DELEGATION: 0x80000,
  NOT_DELEGATED: 0x100000,
  USE_DES_KEY_ONLY: 0x200000,
  DONT_REQ_PREAUTH: 0x400000,
  PASSWORD_EXPIRED: 0x800000,
  TRUSTED_TO_AUTH_FOR_DELEGATION: 0x1000000,
  PARTIAL_SECRETS_ACCOUNT: 0x04000000,
} as const;

export type UacFlagName = keyof typeof UAC_FLAGS;

/** Machine and trust accounts: a "disable user" step must never touch a domain controller or a trust. */
const NOT_A_USER = UAC_FLAGS.INTERDOMAIN_TRUST_ACCOUNT | UAC_FLAGS.WORKSTATION_TRUST_ACCOUNT | UAC_FLAGS.SERVER_TRUST_ACCOUNT;

const UINT32_MAX = 0xffff_ffff;

/**
 * Reads `userAccountControl` as LDAP returns it: a decimal string (AD stores a signed 32-bit
 * integer, so a value with bit 31 set arrives negative), possibly as a one-element array.
 *
 * @example
 * parseUserAccountControl(['66048']) // 66048
 */
export function parseUserAccountControl(raw: unknown): number {
  const value = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
  const text = typeof value === 'number' ? String(value) : Buffer.isBuffer(value) ? value.toString('utf8') : value;
  if (typeof text !== 'string' || !/^-?\d{1,10}$/.test(text.trim())) {
    throw new ReflexError('upstream.rejected', `Active Directory: userAccountControl is not an integer: ${JSON.stringify(raw)?.slice(0, 60)}`, {
      retryable: false,
      safeMessage: 'Active Directory returned an unreadable userAccountControl.',
    });
  }
  const n = Number(text.trim());
  if (n < -0x8000_0000 || n > UINT32_MAX) {
    throw new ReflexError('upstream.rejected', `Active Directory: userAccountControl out of 32-bit range: ${n}`, {
      retryable: false,
      safeMessage: 'Active Directory returned an unreadable userAccountControl.',
    });
  }
  return n >>> 0;
}

/** The flag names set in `uac`, for an audit line ("NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD"). */
export function describeUserAccountControl(uac: number): UacFlagName[] {
  return (Object.keys(UAC_FLAGS) as UacFlagName[]).filter((name) => (uac & UAC_FLAGS[name]) !== 0);
}

export function isAccountDisabled(uac: number): boolean {
  return (uac & UAC_FLAGS.ACCOUNTDISABLE) !== 0;
}

/** `uac` with ACCOUNTDISABLE set and every other flag kept. */
export function withAccountDisabled(uac: number): number {
  return (checkedUint32(uac) | UAC_FLAGS.ACCOUNTDISABLE) >>> 0;
}

/** `uac` with ACCOUNTDISABLE cleared and every other flag kept. */
export function withAccountEnabled(uac: number): number {
  return (checkedUint32(uac) & ~UAC_FLAGS.ACCOUNTDISABLE) >>> 0;
}

/** One LDAP modify operation, in the shape ldapts' `Change` takes. */
export interface UacModification {
  operation: 'delete' | 'add';
  attribute: 'userAccountControl';
  values: [string];
}

export interface UacChangePlan {
  /** False when the account is already in the wanted state: write nothing (the idempotent path). */
  changed: boolean;
  from: number;
  to: number;
  /**
   * Delete the value read, add the new one, in one modify request. LDAP applies a modify's
   * changes atomically (RFC 4511 §4.6), and deleting a value that is no longer there fails with
   * noSuchAttribute (16), so a concurrent change between our read and our write makes the write
   * fail instead of being overwritten: re-read and plan again. A plain `replace` would lose it.
   */
  modifications: UacModification[];
}

/**
 * What to write to disable or enable an account whose current `userAccountControl` is `current`.
 * Refuses machine and trust accounts.
 *
 * @example
 * planUserAccountControlChange(66048, 'disable')
 * // { changed: true, from: 66048, to: 66050, modifications: [
 * //   { operation: 'delete', attribute: 'userAccountControl', values: ['66048'] },
 * //   { operation: 'add', attribute: 'userAccountControl', values: ['66050'] } ] }
 */
export function planUserAccountControlChange(current: number, action: 'disable' | 'enable'): UacChangePlan {
  const from = checkedUint32(current);
  if ((from & NOT_A_USER) !== 0) {
    throw new ReflexError('input.invalid', `Active Directory: refusing to ${action} a machine or trust account (userAccountControl ${from})`, {
      safeMessage: `That is a computer or trust account, not a user; SENTreflex will not ${action} it.`,
      details: { flags: describeUserAccountControl(from) },
    });
  }
  const to = action === 'disable' ? withAccountDisabled(from) : withAccountEnabled(from);
  if (to === from) return { changed: false, from, to, modifications: [] };
  return {
    changed: true,
    from,
    to,
    modifications: [
      { operation: 'delete', attribute: 'userAccountControl', values: [toLdapInteger(from)] },
      { operation: 'add', attribute: 'userAccountControl', values: [toLdapInteger(to)] },
    ],
  };
}

/** AD's INTEGER syntax is signed 32-bit: a value with bit 31 set is written negative. */
function toLdapInteger(uac: number): string {
  return String(uac | 0);
}

function checkedUint32(uac: number): number {
  if (!Number.isInteger(uac) || uac < 0 || uac > UINT32_MAX) {
    throw new ReflexError('input.invalid', `userAccountControl must be an unsigned 32-bit integer, got ${uac}`);
  }
  return uac;
}
