/**
 * Runs a worker pass at most once at a time. A call while a pass runs does not start a second
 * one in parallel: it waits for the current pass and asks for one more afterwards, so news that
 * arrived mid-pass (a webhook, a freed slot) is never missed and never handled twice at once.
 */
export class CoalescingRunner {
  private running: Promise<void> | undefined;
  private rerun = false;

  constructor(private readonly pass: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.rerun = false;
        await this.pass();
      } while (this.rerun);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Settles when no pass is running (a pass started by a webhook or a create, too). */
  async idle(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
  }
}
