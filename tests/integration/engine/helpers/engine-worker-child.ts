// An engine worker in a process of its own, for the kill-a-worker test: it runs the playbook's
// steps like any worker until the test SIGKILLs it in the middle of a side effect.
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../../../src/app/logger.ts';
import { QueueSystem, type QueueBackendConfig } from '../../../../src/app/queue.ts';
import { createHttpRequestExecutor } from '../../../../src/engine/actions/http-request.ts';
import { ActionRegistry } from '../../../../src/engine/actions/registry.ts';
import { parsePlaybook } from '../../../../src/engine/manifest.ts';
import { PlaybookCatalog } from '../../../../src/engine/run/playbook-catalog.ts';
import { RunEngine } from '../../../../src/engine/run-engine.ts';
import { createDatabase } from '../../../../src/store/database.ts';
import { SecretsVault } from '../../../../src/store/secrets-vault.ts';

const env = JSON.parse(process.env.ENGINE_CHILD!) as { url: string; schema: string; queue: QueueBackendConfig; playbook: string };
const { db } = createDatabase({ url: env.url, schema: env.schema, max: 4 });
const queues = new QueueSystem(env.queue);
const engine = new RunEngine({
  db,
  queues,
  vault: new SecretsVault(db, randomBytes(32)),
  catalog: new PlaybookCatalog([parsePlaybook(env.playbook, 'kill.yaml')]),
  actions: new ActionRegistry().register('http.request', createHttpRequestExecutor({ allowPrivateNetworks: true })),
  chat: () => undefined,
  pager: () => undefined,
  linkSender: () => undefined,
  linkSecret: randomBytes(32),
  publicUrl: () => 'http://reflex.test',
  scriptsDir: 'manifests/scripts',
  logger: createLogger('silent'),
  concurrency: 2,
  // A short lock, so the test does not wait BullMQ's default 30 s to see this worker is gone.
  workerOptions: { lockDuration: 1500, stalledInterval: 1000 },
});
engine.startWorkers();
process.stdout.write('ready\n');
