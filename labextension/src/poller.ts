/**
 * A timer that runs one check at a time, only while it is started and the
 * page is visible, and waits longer after a failure.
 *
 * The panel starts it when it is shown and stops it when it is hidden; the
 * check asks the server for its change token (see model.ts). Timers and page
 * visibility are injected so that tests drive the clock by hand.
 */

/** The timer functions the poller uses; `window`'s by default. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** How a poller runs. */
export interface PollerOptions {
  /** One poll; a rejection counts as a failure. */
  check: () => Promise<void>;
  /** Whether the page can be seen (`document.visibilityState === 'visible'`). */
  isPageVisible: () => boolean;
  /** Milliseconds between polls. */
  intervalMs?: number;
  /** Milliseconds to wait after a failed poll. */
  backoffMs?: number;
  clock?: Clock;
}

const defaultClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
};

/** Runs `check` every `intervalMs` while started and the page is visible. */
export class Poller {
  readonly intervalMs: number;
  readonly backoffMs: number;
  private readonly options: PollerOptions;
  private readonly clock: Clock;
  private handle: unknown = null;
  private running = false;
  private busy = false;
  // Bumped by each start(), so that a check still in flight from before a
  // stop() does not schedule a second loop beside the new one.
  private generation = 0;

  constructor(options: PollerOptions) {
    this.options = options;
    this.intervalMs = options.intervalMs ?? 3000;
    this.backoffMs = options.backoffMs ?? 30000;
    this.clock = options.clock ?? defaultClock;
  }

  /** Whether the poller is started. */
  get isRunning(): boolean {
    return this.running;
  }

  /** Start polling, with a first check right away; nothing if already started. */
  start(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.generation += 1;
    this.schedule(0);
  }

  /** Stop polling; a check in flight finishes but schedules nothing. */
  stop(): void {
    this.running = false;
    this.cancel();
  }

  /** Check now (the page became visible again, say) if started and idle. */
  wake(): void {
    if (this.running && !this.busy) {
      this.schedule(0);
    }
  }

  private schedule(ms: number): void {
    this.cancel();
    const generation = this.generation;
    this.handle = this.clock.setTimeout(() => void this.tick(generation), ms);
  }

  private cancel(): void {
    if (this.handle !== null) {
      this.clock.clearTimeout(this.handle);
      this.handle = null;
    }
  }

  private async tick(generation: number): Promise<void> {
    this.handle = null;
    if (!this.running || generation !== this.generation) {
      return;
    }
    if (!this.options.isPageVisible()) {
      // A hidden tab asks nothing of the server; look again at the next interval.
      this.schedule(this.intervalMs);
      return;
    }
    let failed = false;
    this.busy = true;
    try {
      await this.options.check();
    } catch {
      failed = true;
    } finally {
      this.busy = false;
    }
    if (this.running && generation === this.generation) {
      this.schedule(failed ? this.backoffMs : this.intervalMs);
    }
  }
}
