/**
 * How the gateway's process ends: one stop, however many ask for it (SIGINT, SIGTERM, the
 * primary of `WORKERS` giving up), ending with the status of the one that failed. Two stops side
 * by side closed the store twice, and the first to end chose the status: a SIGTERM that came
 * while the primary gave up (a worker refused the configuration) could end the process with 0,
 * which a supervisor reads as a clean stop rather than a gateway that cannot run.
 */
export class ProcessStop {
  private code = 0;
  private stopping: Promise<void> | undefined;

  constructor(
    /** Everything the stop does before the process ends (run once). */
    private readonly work: () => Promise<void>,
    private readonly exit: (code: number) => void,
    /** What the stop's work threw (the process then ends with 1 unless a failure already said). */
    private readonly onError: (error: unknown) => void,
  ) {}

  /** A stop has begun. */
  get begun(): boolean {
    return this.stopping !== undefined;
  }

  /** Stops the process (once); a `code` other than 0 is what it ends with, whoever asked first. */
  request(code = 0): Promise<void> {
    if (code !== 0 && this.code === 0) this.code = code;
    this.stopping ??= this.work().then(
      () => this.exit(this.code),
      (error: unknown) => {
        this.onError(error);
        this.exit(this.code || 1);
      },
    );
    return this.stopping;
  }
}
