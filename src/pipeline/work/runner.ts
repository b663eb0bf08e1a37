// The lifecycle that the durable runners share (job-runner.ts: encodings, decodings,
// reconstructions; generation-runner.ts: generations): take claimed work, at most `concurrency`
// at a time, each with its own AbortController; cancel aborts one; idle() waits until nothing runs; stop() stops taking
// work and aborts what runs, leaving it "running" in the database so that the next start
// recovers it. Subclasses say how to claim the next piece of work and how to run it; claiming
// (status "queued" -> "running", attempts + 1) and recovery stay with them, in SQLite.

/** Work that crashed the server this many times is failed rather than resumed again. */
export const MAX_ATTEMPTS = 3;

export interface RunnerBaseOptions {
  /** Pieces of work run at the same time (at least 1). */
  concurrency: number;
  log?: (line: string) => void;
  /** Prefix of log lines about a failed run ("jobs", "generations"). */
  name: string;
}

export abstract class RunnerBase<W> {
  protected readonly concurrency: number;
  protected readonly log: (line: string) => void;
  readonly #name: string;
  readonly #active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  #started = false;
  #stopping = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: RunnerBaseOptions) {
    this.concurrency = Math.max(1, options.concurrency);
    this.log = options.log ?? (() => {});
    this.#name = options.name;
  }

  /** Marks the next queued piece of work running and returns it; null when none is queued. */
  protected abstract claim(): W | null;
  protected abstract idOf(work: W): string;
  /** Runs a claimed piece of work to its final status (or, when stopping, leaves it running). */
  protected abstract execute(work: W, signal: AbortSignal): Promise<void>;

  /** True once stop() was called: runs that end now must leave their work "running". */
  protected get stopping(): boolean {
    return this.#stopping;
  }

  /** Starts taking work (call after recovery). */
  protected begin(): void {
    this.#started = true;
    this.notify();
  }

  /** Call after queuing work: starts it if a slot is free. */
  notify(): void {
    if (!this.#started || this.#stopping) return;
    while (this.#active.size < this.concurrency) {
      const next = this.claim();
      if (!next) break;
      const id = this.idOf(next);
      const controller = new AbortController();
      const entry = { controller, done: Promise.resolve() };
      this.#active.set(id, entry);
      entry.done = this.execute(next, controller.signal)
        .catch((err) => this.log(`${this.#name}: ${id}: ${(err as Error).stack ?? err}`))
        .finally(() => {
          this.#active.delete(id);
          this.notify();
          if (this.#active.size === 0) {
            for (const resolve of this.#idleWaiters.splice(0)) resolve();
          }
        });
    }
  }

  /** Aborts the running piece of work with this id, if any (after the store marked it canceled). */
  protected abortRunning(id: string, reason: unknown): void {
    this.#active.get(id)?.controller.abort(reason);
  }

  /** Resolves when nothing is running (queued work may remain only if stopping). */
  idle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  get running(): number {
    return this.#active.size;
  }

  /** Stops taking work and aborts what runs; it stays "running" in the db and resumes on start. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const { controller } of this.#active.values()) controller.abort(new Error("stopping"));
    await Promise.all([...this.#active.values()].map((a) => a.done));
  }
}
