/**
 * Runs `run` every `intervalMs` in the background, never two runs at once (a tick that finds one
 * still going does nothing); the timer does not keep the process alive. `stop()` clears the timer
 * and waits for a run in progress. `run` must handle its own errors.
 *
 * @example
 * const sealer = new PeriodicTask(() => sealAuditLog(db).catch(log), 200).start();
 * await sealer.stop();
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      this.running ??= this.run().finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
