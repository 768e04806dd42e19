import { Command, Option } from 'commander';
import { ReflexError, toReflexError } from '../../errors.ts';
import { findDeadLetter, listDeadLetters, replayDeadLetter, replayJobIdOf, eventsCountedDeadLettered, type DeadLetter } from '../../pipeline/dead-letters.ts';
import { QueueSystem } from '../queue.ts';
import { queueConfigFor } from '../server.ts';
import { invalidInput, type CliDeps } from './tenant-commands.ts';

/**
 * `reflex dlq …`: jobs that failed for good (the `dead_letters` table), what killed them, and
 * their replay into the queue they came from (src/pipeline/dead-letters.ts has the rules). The
 * replay goes through the same queue backend as the server, built from the same configuration.
 * `list` and `show` only read, so they do not run migrations (as `audit verify`); `replay` does.
 */
const ACTOR = 'cli';
const QUEUE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

function queueArg(raw: string): string {
  if (!QUEUE_NAME.test(raw)) throw invalidInput(`${JSON.stringify(raw)} is not a queue name (e.g. pipeline.normalize, pipeline.dedupe).`, 'queue');
  return raw;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function summary(d: DeadLetter): Record<string, unknown> {
  return {
    id: d.id,
    queue: d.queue,
    job_id: d.jobId,
    tenant: d.tenantId,
    error: d.error,
    attempts: d.attempts,
    failed_at: d.failedAt.toISOString(),
    replayed_at: d.replayedAt?.toISOString() ?? null,
  };
}

export function registerDlqCommands(program: Command, deps: CliDeps): void {
  const { withStore, fail } = deps;
  const dlq = program.command('dlq').description('dead letters: jobs that failed for good, and their replay');

  dlq
    .command('list')
    .description('list dead letters, newest first')
    .argument('[queue]', 'only this queue, e.g. pipeline.dedupe')
    .addOption(new Option('--tenant <id>', 'only this tenant'))
    .addOption(new Option('--pending', 'only those not replayed yet'))
    .addOption(new Option('--limit <n>', 'at most this many').default('100'))
    .addOption(new Option('--json', 'print JSON lines instead of a table'))
    .action((rawQueue: string | undefined, opts: { tenant?: string; pending?: boolean; limit: string; json?: boolean }) =>
      withStore(false, async (store) => {
        const queue = rawQueue === undefined ? undefined : queueArg(rawQueue);
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw invalidInput(`--limit ${JSON.stringify(opts.limit)} must be a whole number from 1 to 100000.`, 'limit');
        const rows = await listDeadLetters(store.db, { ...(queue ? { queue } : {}), ...(opts.tenant ? { tenantId: opts.tenant } : {}), pendingOnly: Boolean(opts.pending), limit });
        if (opts.json) {
          for (const d of rows) process.stdout.write(`${JSON.stringify(summary(d))}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write('no dead letters\n');
          return;
        }
        process.stdout.write(`${'ID'.padEnd(6)} ${'QUEUE'.padEnd(20)} ${'JOB ID'.padEnd(48)} ${'TENANT'.padEnd(14)} ATT ${'FAILED AT'.padEnd(24)} ${'REPLAYED'.padEnd(24)} ERROR\n`);
        for (const d of rows) {
          process.stdout.write(
            `${d.id.padEnd(6)} ${d.queue.padEnd(20)} ${d.jobId.padEnd(48)} ${(d.tenantId ?? '-').padEnd(14)} ${String(d.attempts).padStart(3)} ${d.failedAt.toISOString().padEnd(24)} ${(d.replayedAt?.toISOString() ?? 'pending').padEnd(24)} ${oneLine(d.error, 100)}\n`,
          );
        }
      }).catch(fail),
    );

  dlq
    .command('show')
    .description('show one dead letter: the error, the attempts and the job data')
    .argument('<queue>', 'queue, e.g. pipeline.dedupe')
    .argument('<jobId>', 'job id, from `reflex dlq list`')
    .addOption(new Option('--json', 'print one JSON object'))
    .action((rawQueue: string, jobId: string, opts: { json?: boolean }) =>
      withStore(false, async (store) => {
        const queue = queueArg(rawQueue);
        const d = await findDeadLetter(store.db, queue, jobId);
        if (!d) throw new ReflexError('not_found', `no dead letter ${queue}/${jobId}`, { safeMessage: `No dead letter with job id "${jobId}" in queue "${queue}" (see \`reflex dlq list\`).` });
        const events = eventsCountedDeadLettered(d.queue, d.data);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ ...summary(d), events_dead_lettered: events, replay_job_id: replayJobIdOf(d.jobId), data: d.data })}\n`);
          return;
        }
        process.stdout.write(
          [
            `dead letter ${d.id}: ${d.queue} / ${d.jobId}`,
            `  tenant       ${d.tenantId ?? '-'}`,
            `  failed at    ${d.failedAt.toISOString()} after ${d.attempts} attempt(s)`,
            `  error        ${d.error}`,
            ...(events > 0 ? [`  events       ${events} (counted as dead_lettered)`] : []),
            d.replayedAt ? `  replayed at  ${d.replayedAt.toISOString()} as job ${replayJobIdOf(d.jobId)}` : `  replay with  reflex dlq replay ${d.queue} ${d.jobId}`,
            '  data',
            ...JSON.stringify(d.data, null, 2)
              .split('\n')
              .map((l) => `    ${l}`),
            '',
          ].join('\n'),
        );
      }).catch(fail),
    );

  dlq
    .command('replay')
    .description('re-add dead jobs to their queue as <jobId>-replay-<n>; their events leave the dead_lettered count')
    .argument('<queue>', 'queue, e.g. pipeline.normalize')
    .argument('[jobId]', 'one job id (or --all)')
    .addOption(new Option('--all', 'every dead letter of the queue not replayed yet'))
    .addOption(new Option('--tenant <id>', 'with --all: only this tenant'))
    .action((rawQueue: string, jobId: string | undefined, opts: { all?: boolean; tenant?: string }) =>
      withStore(true, async (store, config) => {
        const queue = queueArg(rawQueue);
        if (jobId && opts.all) throw invalidInput('Give either a job id or --all, not both.', 'jobId');
        if (!jobId && !opts.all) throw invalidInput('Give the job id to replay, or --all for every pending dead letter of the queue.', 'jobId');
        if (jobId && opts.tenant) throw invalidInput('--tenant filters --all; a job id names one dead letter already.', 'tenant');
        const queues = new QueueSystem(queueConfigFor(config, store.databaseUrl));
        try {
          if (jobId) {
            const out = await replayDeadLetter({ db: store.db, queues }, { queue, jobId }, ACTOR);
            process.stdout.write(`replayed ${queue}/${jobId} as ${out.replayJobId}${out.uncounted ? ` (${out.uncounted} event(s) taken off ${out.tenantId}'s dead_lettered count)` : ''}\n`);
            return;
          }
          const pending = await listDeadLetters(store.db, { queue, ...(opts.tenant ? { tenantId: opts.tenant } : {}), pendingOnly: true, limit: 100_000 });
          // Oldest first: the order they failed in.
          pending.reverse();
          if (pending.length === 0) {
            process.stdout.write(`no pending dead letters in ${queue}${opts.tenant ? ` for ${opts.tenant}` : ''}\n`);
            return;
          }
          let failed = 0;
          for (const [i, d] of pending.entries()) {
            try {
              const out = await replayDeadLetter({ db: store.db, queues }, { queue, jobId: d.jobId }, ACTOR);
              process.stdout.write(`[${i + 1} of ${pending.length}] replayed ${d.jobId} as ${out.replayJobId}${out.uncounted ? ` (${out.uncounted} event(s))` : ''}\n`);
            } catch (err) {
              failed += 1;
              const e = toReflexError(err);
              process.stdout.write(`[${i + 1} of ${pending.length}] NOT replayed ${d.jobId}: ${e.code === 'internal' ? e.message : e.safeMessage}\n`);
            }
          }
          process.stdout.write(`replayed ${pending.length - failed} of ${pending.length} dead letter(s) from ${queue}\n`);
          if (failed > 0) process.exitCode = 1;
        } finally {
          await queues.close();
        }
      }).catch(fail),
    );
}
