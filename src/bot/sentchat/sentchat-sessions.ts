import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database, SentchatSessionsTable } from '../../store/schema.ts';

/**
 * Browser sessions of SENTchat. The cookie holds an opaque random value (32 bytes); the table
 * holds its sha256, so neither a database copy nor a log line can be replayed as a sign-in. The
 * cookie is `HttpOnly; SameSite=Strict; Path=/` (and `Secure` over HTTPS): scripts cannot read it
 * and no other site can make the browser send it.
 *
 * @example
 * const { token, expiresAt } = await sessions.create({ workspace: 'local', userId: 'admin', displayName: 'SENTchat admin', method: 'api-token' }, 'acme');
 * reply.header('set-cookie', sessionCookie(token, { expiresAt, secure: false }));
 */
export const SESSION_COOKIE = 'sentchat_session';

export interface SessionIdentity {
  workspace: string;
  userId: string;
  displayName: string;
  method: SentchatSessionsTable['method'];
}

export interface Session extends SessionIdentity {
  /** sha256 of the cookie value: how the session is named in NOTIFYs and logs. */
  hash: string;
  expiresAt: Date;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class SentchatSessions {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs: number,
  ) {}

  async create(identity: SessionIdentity, tenantId: string | null, now = new Date()): Promise<{ token: string; expiresAt: Date; hash: string }> {
    const token = randomBytes(32).toString('base64url');
    const hash = sha256Hex(token);
    const expiresAt = new Date(now.getTime() + this.ttlMs);
    const actor = `sentchat:${identity.workspace}:${identity.userId}`;
    await auditedWrite(this.db, actor, async (trx, audit) => {
      await trx
        .insertInto('sentchat_sessions')
        .values({ token_sha256: hash, workspace: identity.workspace, user_id: identity.userId, display_name: identity.displayName.slice(0, 200), method: identity.method, expires_at: expiresAt })
        .execute();
      // The session's hash prefix ties the sign-out to this sign-in without storing anything replayable.
      audit({ tenantId, action: 'sentchat.session.create', target: `chat:${actor}`, delta: { method: identity.method, session: hash.slice(0, 12), expiresAt: expiresAt.toISOString() } });
    });
    return { token, expiresAt, hash };
  }

  async resolve(token: string | undefined, now = new Date()): Promise<Session | undefined> {
    if (!token || token.length > 100) return undefined;
    const hash = sha256Hex(token);
    const row = await this.db.selectFrom('sentchat_sessions').selectAll().where('token_sha256', '=', hash).where('expires_at', '>', now).executeTakeFirst();
    if (!row) return undefined;
    return { hash, workspace: row.workspace, userId: row.user_id, displayName: row.display_name, method: row.method, expiresAt: row.expires_at };
  }

  /** Ends the session; false when there was none (already ended or expired and pruned). */
  async end(session: Session, tenantId: string | null): Promise<boolean> {
    const actor = `sentchat:${session.workspace}:${session.userId}`;
    return auditedWrite(this.db, actor, async (trx, audit) => {
      const res = await trx.deleteFrom('sentchat_sessions').where('token_sha256', '=', session.hash).executeTakeFirst();
      audit({ tenantId, action: 'sentchat.session.end', target: `chat:${actor}`, delta: { session: session.hash.slice(0, 12), ended: Number(res.numDeletedRows) } });
      return Number(res.numDeletedRows) > 0;
    });
  }

  /** Which of these sessions are still valid (the live hub's periodic check of open sockets). */
  async stillValid(hashes: readonly string[], now = new Date()): Promise<Set<string>> {
    if (hashes.length === 0) return new Set();
    const rows = await this.db.selectFrom('sentchat_sessions').select('token_sha256').where('token_sha256', 'in', [...hashes]).where('expires_at', '>', now).execute();
    return new Set(rows.map((r) => r.token_sha256));
  }

  async prune(now = new Date()): Promise<number> {
    const res = await this.db.deleteFrom('sentchat_sessions').where('expires_at', '<=', now).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}

/** The value of one cookie from a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(value);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export function sessionCookie(token: string, opts: { expiresAt: Date; secure: boolean; now?: Date }): string {
  const maxAge = Math.max(0, Math.floor((opts.expiresAt.getTime() - (opts.now ?? new Date()).getTime()) / 1000));
  return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${opts.secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}
