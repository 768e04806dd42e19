import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { ReflexError } from '../errors.ts';
import { PeriodicTask } from '../periodic-task.ts';
import { canonicalJson } from './canonical-json.ts';
import type { Database } from './schema.ts';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEntry {
  tenantId: string | null;
  action: string;
  target: string;
  /** What changed. Never a secret's value: callers pass names, ids and masked fields only. */
  delta: Record<string, unknown>;
}

interface HashedFields {
  seq: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  target: string;
  delta: unknown;
  created_at: Date;
}

/** hash = sha256(prev_hash || canonical JSON of the row), hex. */
export function auditHash(prevHash: string, row: HashedFields): string {
  return createHash('sha256')
    .update(prevHash)
    .update(
      canonicalJson({
        seq: String(row.seq),
        tenant_id: row.tenant_id,
        actor: row.actor,
        action: row.action,
        target: row.target,
        delta: row.delta,
        created_at: row.created_at,
      }),
    )
    .digest('hex');
}

/**
 * Appends entries inside the caller's transaction, so an audit row exists exactly when the write
 * it describes committed. No lock: `seq` comes from a sequence, and the sealer links the row into
 * the hash chain after commit (`sealAuditLog`), so writers never wait for each other here.
 */
export async function appendAudit(trx: Kysely<Database>, actor: string, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  // Millisecond precision: what a JS Date holds is exactly what timestamptz stores and gives back.
  const createdAt = new Date();
  await trx
    .insertInto('audit_log')
    .values(
      entries.map((e) => ({
        tenant_id: e.tenantId,
        actor,
        action: e.action,
        target: e.target,
        delta: JSON.stringify(e.delta),
        created_at: createdAt,
      })),
    )
    .execute();
}

const SEAL_BATCH = 5000;

/**
 * Links committed, unsealed rows into the chain in batches, in `seq` order of what is visible now
 * (a row that commits late is simply linked in a later round, after the rows sealed before it):
 * chain_pos = head + 1, prev_hash = the head's hash, hash = sha256(prev_hash || canonical row).
 * One sealer at a time per schema (a transaction advisory lock; others return 0 at once).
 * Returns how many rows were sealed.
 *
 * @example
 * await sealAuditLog(db); // before reading or verifying the chain
 */
export async function sealAuditLog(db: Kysely<Database>): Promise<number> {
  let total = 0;
  for (;;) {
    const sealed = await db.transaction().execute(async (trx) => {
      const locked = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtext('reflex.audit.seal.' || current_schema())) as ok`.execute(trx);
      if (!locked.rows[0]?.ok) return -1;
      const head = await trx
        .selectFrom('audit_log')
        .select(['chain_pos', 'hash'])
        .where('chain_pos', 'is not', null)
        .orderBy('chain_pos', 'desc')
        .limit(1)
        .executeTakeFirst();
      const rows = await trx
        .selectFrom('audit_log')
        .select(['seq', 'tenant_id', 'actor', 'action', 'target', 'delta', 'created_at'])
        .where('hash', 'is', null)
        .orderBy('seq')
        .limit(SEAL_BATCH)
        .execute();
      if (rows.length === 0) return 0;
      let prev = head?.hash ?? GENESIS_HASH;
      let pos = BigInt(head?.chain_pos ?? 0);
      const links = rows.map((r) => {
        pos += 1n;
        const hash = auditHash(prev, r);
        const link = { seq: r.seq, pos: pos.toString(), prev, hash };
        prev = hash;
        return link;
      });
      const values = sql.join(links.map((l) => sql`(${l.seq}::bigint, ${l.pos}::bigint, ${l.prev}, ${l.hash})`));
      await sql`update audit_log set chain_pos = v.pos, prev_hash = v.prev, hash = v.hash
                from (values ${values}) as v(seq, pos, prev, hash) where audit_log.seq = v.seq`.execute(trx);
      return rows.length;
    });
    if (sealed <= 0) return total;
    total += sealed;
    if (sealed < SEAL_BATCH) return total;
  }
}

/**
 * Seals every `intervalMs` in the background; `close()` seals a last time. Every server process
 * runs one; the advisory lock makes all but one of them a no-op at any moment.
 */
export class AuditSealer {
  private readonly task: PeriodicTask;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly onError: (err: unknown) => void = () => undefined,
    intervalMs = 200,
  ) {
    this.task = new PeriodicTask(() => sealAuditLog(this.db).then(() => undefined, this.onError), intervalMs);
  }

  start(): this {
    this.task.start();
    return this;
  }

  async close(): Promise<void> {
    await this.task.stop();
    await sealAuditLog(this.db).catch(this.onError);
  }
}

/**
 * Runs `fn` in a transaction and appends what it records to the audit chain before commit.
 * Every write through the store goes through here; a write that records nothing is a bug and
 * is rolled back.
 *
 * @example
 * await auditedWrite(db, 'slack:T1:U1', async (trx, audit) => {
 *   const inc = await trx.insertInto('incidents').values(v).returningAll().executeTakeFirstOrThrow();
 *   audit({ tenantId: inc.tenant_id, action: 'incident.create', target: `incident:${inc.id}`, delta: v });
 *   return inc;
 * });
 */
export async function auditedWrite<T>(
  db: Kysely<Database>,
  actor: string,
  fn: (trx: Transaction<Database>, audit: (entry: AuditEntry) => void) => Promise<T>,
): Promise<T> {
  return db.transaction().execute(async (trx) => {
    const entries: AuditEntry[] = [];
    const result = await fn(trx, (e) => entries.push(e));
    if (entries.length === 0) {
      throw new ReflexError('internal', 'auditedWrite: the write recorded no audit entry');
    }
    await appendAudit(trx, actor, entries);
    return result;
  });
}

/**
 * Records an event that changes nothing else (a command run, a refusal): one multi-row INSERT,
 * atomic on its own, so no transaction around it (three round trips fewer than auditedWrite on
 * the chat command path). Anything that also writes other rows uses auditedWrite.
 *
 * @example
 * await recordAudit(db, 'slack:T1:U1', [{ tenantId: 'acme', action: 'command.whoami', target: 'chat:slack:T1:U1', delta: {} }]);
 */
export async function recordAudit(db: Kysely<Database>, actor: string, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) throw new ReflexError('internal', 'recordAudit: no audit entry to record');
  await appendAudit(db, actor, entries);
}

export type AuditVerification =
  | { ok: true; checked: number; head: string; unsealed: number }
  | { ok: false; checked: number; brokenAt: string; seq: string | null; reason: string; unsealed: number };

/**
 * Walks the chain from the genesis in `chain_pos` order and reports the first broken link: a row
 * whose hash does not match its contents (edited), whose prev_hash is not the previous row's hash
 * (removed or reordered), or a gap in the chain. `unsealed` counts rows not linked yet.
 */
export async function verifyAuditChain(
  db: Kysely<Database>,
  onProgress?: (checked: number) => void,
): Promise<AuditVerification> {
  let prevHash = GENESIS_HASH;
  let expected = 1n;
  let checked = 0;
  const pageSize = 5000;
  const unsealedRow = await db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).where('hash', 'is', null).executeTakeFirstOrThrow();
  const unsealed = Number(unsealedRow.n);
  for (;;) {
    const rows = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('chain_pos', '>=', expected.toString())
      .orderBy('chain_pos')
      .limit(pageSize)
      .execute();
    for (const row of rows) {
      const pos = BigInt(row.chain_pos!);
      if (pos !== expected) {
        return { ok: false, checked, brokenAt: expected.toString(), seq: null, reason: `chain position ${expected} is missing (next is ${pos})`, unsealed };
      }
      if (row.prev_hash !== prevHash) {
        return { ok: false, checked, brokenAt: row.chain_pos!, seq: row.seq, reason: `prev_hash does not match the hash of chain position ${pos - 1n}`, unsealed };
      }
      if (auditHash(prevHash, row) !== row.hash) {
        return { ok: false, checked, brokenAt: row.chain_pos!, seq: row.seq, reason: 'row contents do not match its hash (edited)', unsealed };
      }
      prevHash = row.hash;
      expected += 1n;
      checked += 1;
    }
    onProgress?.(checked);
    if (rows.length < pageSize) break;
  }
  return { ok: true, checked, head: prevHash, unsealed };
}
