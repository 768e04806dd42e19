import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import {
  UAC_FLAGS,
  describeUserAccountControl,
  isAccountDisabled,
  parseUserAccountControl,
  planUserAccountControlChange,
  withAccountDisabled,
  withAccountEnabled,
} from '../../../src/integrations/ldap/user-account-control.ts';
import type { UacFlagName } from '../../../src/integrations/ldap/user-account-control.ts';

const KB = readFileSync(path.resolve(process.cwd(), '../shared/fixtures', 'identity_containment/ms_support_useraccountcontrol_flags_excerpt.md'), 'utf8');

/** Rows of the KB's "List of property flags" table: name, hex, decimal. */
function kbFlagRows(): { name: string; hex: number; decimal: number }[] {
  return KB.split('\n')
    .filter((l) => /^\|[A-Z_]+(\||<br)/.test(l))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      return { name: (cells[1] ?? '').split('<br/>')[0] ?? '', hex: Number(cells[2]), decimal: Number(cells[3]) };
    });
}

/** "- Typical user: 0x200 (512)" lines of the KB's "UserAccountControl values". */
function kbDefault(label: string): number {
  const m = new RegExp(`- ${label}: 0x[0-9A-Fa-f]+ \\((\\d+)\\)`).exec(KB);
  if (!m?.[1]) throw new Error(`KB has no default for ${label}`);
  return Number(m[1]);
}

function thrown(fn: () => unknown): ReflexError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ReflexError);
    return err as ReflexError;
  }
  throw new Error('expected a ReflexError');
}

describe('UAC_FLAGS', () => {
  it('matches every row of the KB 305144 flag table, in hex and decimal', () => {
    const rows = kbFlagRows();
    expect(rows.map((r) => r.name)).toEqual(Object.keys(UAC_FLAGS));
    for (const row of rows) {
      expect(row.hex, row.name).toBe(row.decimal);
      expect(UAC_FLAGS[row.name as UacFlagName], row.name).toBe(row.decimal);
    }
  });
});

describe('disable and enable arithmetic', () => {
  it("gives the KB's 514 for a typical user (0x200), and back to 512", () => {
    const typical = kbDefault('Typical user');
    expect(typical).toBe(512);
    expect(withAccountDisabled(typical)).toBe(514);
    expect(withAccountEnabled(514)).toBe(512);
  });

  it('keeps every other flag: never writes 514 over DONT_EXPIRE_PASSWORD or SMARTCARD_REQUIRED', () => {
    const neverExpires = UAC_FLAGS.NORMAL_ACCOUNT | UAC_FLAGS.DONT_EXPIRE_PASSWORD;
    expect(neverExpires).toBe(66048);
    expect(withAccountDisabled(neverExpires)).toBe(66050);
    expect(withAccountEnabled(66050)).toBe(66048);

    const smartcard = UAC_FLAGS.NORMAL_ACCOUNT | UAC_FLAGS.SMARTCARD_REQUIRED | UAC_FLAGS.NOT_DELEGATED;
    const disabled = withAccountDisabled(smartcard);
    expect(describeUserAccountControl(disabled)).toEqual(['ACCOUNTDISABLE', 'NORMAL_ACCOUNT', 'SMARTCARD_REQUIRED', 'NOT_DELEGATED']);
    expect(withAccountEnabled(disabled)).toBe(smartcard);
  });

  it('is idempotent: disabling a disabled account or enabling an enabled one changes nothing', () => {
    expect(withAccountDisabled(514)).toBe(514);
    expect(withAccountEnabled(512)).toBe(512);
    expect(isAccountDisabled(514)).toBe(true);
    expect(isAccountDisabled(66048)).toBe(false);
  });

  it('stays unsigned when bit 31 is set (JavaScript bit operators are signed 32-bit)', () => {
    const high = 0x8000_0202;
    expect(withAccountEnabled(high)).toBe(0x8000_0200);
    expect(withAccountDisabled(0x8000_0200)).toBe(0x8000_0202);
  });

  it('refuses values that are not unsigned 32-bit integers', () => {
    expect(thrown(() => withAccountDisabled(-1)).code).toBe('input.invalid');
    expect(thrown(() => withAccountDisabled(2 ** 32)).code).toBe('input.invalid');
    expect(thrown(() => withAccountDisabled(1.5)).code).toBe('input.invalid');
  });
});

describe('parseUserAccountControl', () => {
  it('reads the decimal strings LDAP returns, single values or one-element arrays', () => {
    expect(parseUserAccountControl('66048')).toBe(66048);
    expect(parseUserAccountControl(['514'])).toBe(514);
    expect(parseUserAccountControl(Buffer.from('512'))).toBe(512);
    expect(parseUserAccountControl(4096)).toBe(4096);
  });

  it('reads a negative (signed) value as the unsigned flags it stands for', () => {
    expect(parseUserAccountControl(String(0x8000_0200 | 0))).toBe(0x8000_0200);
  });

  it('refuses anything else', () => {
    for (const bad of ['', 'abc', '0x200', ['512', '514'], null, undefined, '99999999999']) {
      expect(thrown(() => parseUserAccountControl(bad)).code).toBe('upstream.rejected');
    }
  });
});

describe('planUserAccountControlChange', () => {
  it('plans a delete-old/add-new modify so a concurrent change makes the write fail instead of being lost', () => {
    expect(planUserAccountControlChange(66048, 'disable')).toEqual({
      changed: true,
      from: 66048,
      to: 66050,
      modifications: [
        { operation: 'delete', attribute: 'userAccountControl', values: ['66048'] },
        { operation: 'add', attribute: 'userAccountControl', values: ['66050'] },
      ],
    });
  });

  it('writes nothing when the account is already in the wanted state', () => {
    expect(planUserAccountControlChange(514, 'disable')).toEqual({ changed: false, from: 514, to: 514, modifications: [] });
    expect(planUserAccountControlChange(512, 'enable').modifications).toEqual([]);
  });

  it('writes values with bit 31 in the signed form AD stores', () => {
    const plan = planUserAccountControlChange(0x8000_0200, 'disable');
    expect(plan.modifications.map((m) => m.values[0])).toEqual([String(0x8000_0200 | 0), String(0x8000_0202 | 0)]);
  });

  it('refuses domain controllers, workstations and trusts (the KB defaults)', () => {
    for (const label of ['Domain controller', 'Workstation/server', 'Trust']) {
      const err = thrown(() => planUserAccountControlChange(kbDefault(label), 'disable'));
      expect(err.code, label).toBe('input.invalid');
      expect(err.safeMessage).toMatch(/not a user/);
    }
  });
});
