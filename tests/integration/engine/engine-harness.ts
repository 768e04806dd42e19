import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { vi } from 'vitest';
import { createLogger } from '../../../src/app/logger.ts';
import { QueueSystem, type QueueBackendConfig } from '../../../src/app/queue.ts';
import { ensureTenant } from '../../../src/app/runtime.ts';
import type { ApprovalLinkSender, Pager } from '../../../src/approvals/approval-ports.ts';
import type { ChatMessage, ChatTransport, ChatUserRef, MessageRef } from '../../../src/bot/chat-types.ts';
import { createHttpRequestExecutor } from '../../../src/engine/actions/http-request.ts';
import { ActionRegistry } from '../../../src/engine/actions/registry.ts';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { parsePlaybook } from '../../../src/engine/manifest.ts';
import type { Playbook } from '../../../src/engine/manifest/types.ts';
import { PlaybookEngineService } from '../../../src/engine/playbook-engine-service.ts';
import { PlaybookCatalog } from '../../../src/engine/run/playbook-catalog.ts';
import { RunEngine } from '../../../src/engine/run-engine.ts';
import { grantRole } from '../../../src/store/principals.ts';
import type { Role } from '../../../src/store/schema.ts';
import { SecretsVault } from '../../../src/store/secrets-vault.ts';
import type { BackendUnderTest } from '../../helpers/queue-backends.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';
import { TEST_DATABASE_URL } from '../../helpers/env.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

/**
 * A real engine on the machine's PostgreSQL (a schema of its own) and a real queue backend (a
 * fresh schema or Redis prefix), with recording fakes for the chat transport, the pager and the
 * link sender (the ports; HTTP vendors are intercepted with nock at the network edge instead).
 */
export const SCRIPTS_DIR = 'manifests/scripts';
const SCRIPTS = new Set(readdirSync(SCRIPTS_DIR));

export function playbook(yaml: string, file = 'test.yaml'): Playbook {
  return parsePlaybook(yaml, file, { scriptExists: (f) => SCRIPTS.has(f) });
}

export class FakeChat implements ChatTransport {
  readonly platform = 'sentchat' as const;
  posts: { channelId: string; message: ChatMessage; ref: MessageRef }[] = [];
  updates: { ref: MessageRef; message: ChatMessage }[] = [];
  dms: { user: ChatUserRef; message: ChatMessage; ref: MessageRef }[] = [];
  private n = 0;
  async post(target: { channelId: string }, message: ChatMessage): Promise<MessageRef> {
    const ref = { platform: this.platform, channelId: target.channelId, messageId: `m${++this.n}` };
    this.posts.push({ channelId: target.channelId, message, ref });
    return ref;
  }
  async update(ref: MessageRef, message: ChatMessage): Promise<void> {
    this.updates.push({ ref, message });
  }
  async threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    return this.post({ channelId: ref.channelId }, message);
  }
  async directMessage(user: ChatUserRef, message: ChatMessage): Promise<MessageRef> {
    const ref = { platform: this.platform, channelId: `D-${user.userId}`, messageId: `m${++this.n}` };
    this.dms.push({ user, message, ref });
    return ref;
  }
  async createChannel(name: string): Promise<{ channelId: string; name: string }> {
    return { channelId: `C-${name}`, name };
  }
  async invite(): Promise<void> {}
  async setTopic(): Promise<void> {}
  async pin(): Promise<void> {}
}

export class FakePager implements Pager {
  pages: Parameters<Pager['page']>[0][] = [];
  async page(input: Parameters<Pager['page']>[0]): Promise<{ ref: string }> {
    this.pages.push(input);
    return { ref: `page-${this.pages.length}` };
  }
}

export class FakeLinkSender implements ApprovalLinkSender {
  sent: { principalId: string; url: string }[] = [];
  async send(to: { principalId: string }, link: { url: string }): Promise<{ via: 'email' }> {
    this.sent.push({ principalId: to.principalId, url: link.url });
    return { via: 'email' };
  }
}

export interface Harness {
  db: TestDatabase['db'];
  database: TestDatabase;
  queues: QueueSystem;
  queueConfig: QueueBackendConfig;
  engine: RunEngine;
  service: PlaybookEngineService;
  actions: ActionRegistry;
  vault: SecretsVault;
  chat: FakeChat;
  pager: FakePager;
  links: FakeLinkSender;
  linkSecret: Buffer;
  tenantId: string;
  /** Creates a principal with a chat identity and roles in the tenant. */
  person(name: string, roles: Role[], email?: string): Promise<{ principalId: string; displayName: string; identity: string }>;
  incident(title?: string): Promise<string>;
  waitForRun(runId: string, statuses?: string[], timeoutMs?: number): Promise<{ status: string; error: string | null }>;
  steps(runId: string): Promise<{ step_id: string; attempt: number; status: string; output: unknown; error: string | null }[]>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  playbooks: Playbook[];
  backend?: BackendUnderTest;
  queueConfig?: QueueBackendConfig;
  /** The PostgreSQL queue in `<db schema>_queue`, where the `reflex` CLI looks for it. */
  queueBesideDatabase?: boolean;
  workers?: boolean;
  now?: () => Date;
  concurrency?: number;
  publicUrl?: string;
}

export async function createHarness(opts: HarnessOptions): Promise<Harness> {
  const database = await createTestDatabase();
  const backend = opts.backend ?? QUEUE_BACKENDS[0]!;
  const queueConfig: QueueBackendConfig = opts.queueBesideDatabase
    ? { backend: 'postgres', url: TEST_DATABASE_URL, schema: `${database.schema}_queue` }
    : (opts.queueConfig ?? backend.fresh());
  const queues = new QueueSystem(queueConfig);
  const tenantId = 'acme';
  await ensureTenant(database.db, tenantId, 'ACME Corp');
  const vault = new SecretsVault(database.db, randomBytes(32));
  const actions = new ActionRegistry().register('http.request', createHttpRequestExecutor({ allowPrivateNetworks: true }));
  const chat = new FakeChat();
  const pager = new FakePager();
  const links = new FakeLinkSender();
  const linkSecret = randomBytes(32);
  const engine = new RunEngine({
    db: database.db,
    queues,
    vault,
    catalog: new PlaybookCatalog(opts.playbooks),
    actions,
    chat: () => chat,
    pager: () => pager,
    linkSender: () => links,
    linkSecret,
    publicUrl: () => opts.publicUrl ?? 'http://reflex.test',
    scriptsDir: SCRIPTS_DIR,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    concurrency: opts.concurrency ?? 8,
    workerOptions: { lockDuration: 5000, stalledInterval: 1000 },
    reconcileIntervalMs: 1000,
    ...(opts.now ? { now: opts.now } : {}),
  });
  if (opts.workers !== false) engine.startWorkers();
  const service = new PlaybookEngineService(engine);
  let people = 0;
  return {
    db: database.db,
    database,
    queues,
    queueConfig,
    engine,
    service,
    actions,
    vault,
    chat,
    pager,
    links,
    linkSecret,
    tenantId,
    async person(name, roles, email) {
      const userId = `U${++people}${randomBytes(3).toString('hex')}`;
      let principalId = '';
      for (const role of roles.length ? roles : (['viewer'] as Role[])) {
        const r = await grantRole(database.db, { identity: { platform: 'sentchat', workspace: 'W1', userId }, tenantId, role, actor: 'test', displayName: name, ...(email ? { email } : {}) });
        principalId = r.principalId;
      }
      return { principalId, displayName: name, identity: `sentchat:W1:${userId}` };
    },
    async incident(title = 'Brute force on web-01') {
      const { createIncident } = await import('../../../src/store/incidents.ts');
      const inc = await createIncident(database.db, { tenantId, title, severity: 2, createdBy: 'test' });
      await database.db.insertInto('incident_channels').values({ incident_id: inc.id, tenant_id: tenantId, platform: 'sentchat', channel_id: `C-inc-${inc.id.slice(0, 8)}`, name: 'inc' }).execute();
      return inc.id;
    },
    async waitForRun(runId, statuses = ['succeeded', 'failed', 'cancelled'], timeoutMs = 20_000) {
      let last: { status: string; error: string | null } | undefined;
      await vi.waitFor(
        async () => {
          last = await database.db.selectFrom('playbook_runs').select(['status', 'error']).where('id', '=', runId).executeTakeFirstOrThrow();
          if (!statuses.includes(last.status)) throw new Error(`run ${runId} is ${last.status}, waiting for ${statuses.join('|')}`);
        },
        { timeout: timeoutMs, interval: 25 },
      );
      return last!;
    },
    async steps(runId) {
      return engineDb(database.db).selectFrom('run_steps').select(['step_id', 'attempt', 'status', 'output', 'error']).where('run_id', '=', runId).orderBy('queued_at').orderBy('attempt').execute();
    },
    async stop() {
      await engine.close();
      await queues.close();
      if (!opts.queueBesideDatabase) await backend.cleanup(queueConfig);
      await database.drop();
    },
  };
}
