/** A manual clock with timers: advance(ms) moves time and fires the timers that fall due, in order. */
export class FakeClock {
  private now = 0;
  private nextId = 0;
  private readonly timers = new Map<number, { atMs: number; callback: () => void }>();

  nowMs(): number {
    return this.now;
  }

  setTimer(callback: () => void, delayMs: number): { cancel(): void } {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.now + delayMs, callback });
    return { cancel: () => void this.timers.delete(id) };
  }

  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.atMs <= target).sort((a, b) => a[1].atMs - b[1].atMs || a[0] - b[0]);
      if (due.length === 0) break;
      const [id, timer] = due[0];
      this.timers.delete(id);
      this.now = timer.atMs;
      timer.callback();
    }
    this.now = target;
  }

  pendingTimers(): number {
    return this.timers.size;
  }
}
