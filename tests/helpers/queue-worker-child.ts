// A worker in a process of its own, for the kill-a-worker test: it takes one job, says so on
// stdout, and then never finishes it. The test SIGKILLs it mid-job.
import { QueueSystem, type QueueBackendConfig } from '../../src/app/queue.ts';

const config = JSON.parse(process.env.QUEUE_CONFIG!) as QueueBackendConfig;
const queues = new QueueSystem(config);
queues.createWorker({
  name: process.env.QUEUE_NAME!,
  concurrency: 1,
  // Short lock so the test does not wait the default 30 s for the stalled-job check.
  options: { lockDuration: 1500, stalledInterval: 1000 },
  processor: async (job) => {
    process.stdout.write(`started ${job.id}\n`);
    await new Promise(() => undefined);
  },
});
process.stdout.write('ready\n');
