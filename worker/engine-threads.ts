/**
 * The worker's engine threads. New stages load on a fresh thread when the current one already
 * holds stages: loading blocks its thread (with onnxruntime, about a second per 1B-model layer
 * here), and the stages serving meanwhile must not wait behind it. Threads whose stages have all
 * been closed are ended.
 */
import type { TransportSpec } from '../common/security/node-security';
import { EngineThread, type EngineThreadHooks } from './engine-thread';

export class EngineThreads {
  private latest: EngineThread;
  /** Every thread that holds something, the latest included. */
  private readonly all = new Set<EngineThread>();

  constructor(
    private readonly hooks: EngineThreadHooks,
    private readonly transport: TransportSpec = { kind: 'insecure' },
  ) {
    this.latest = this.spawn();
  }

  /** Where new stages and experts load. */
  get current(): EngineThread {
    return this.latest;
  }

  /** A thread with nothing open on it: the current one if it is idle, else a new one. */
  fresh(): EngineThread {
    if (this.latest.openHandles > 0) this.latest = this.spawn();
    return this.latest;
  }

  /** Ends the threads (other than the current one) whose stages have all been closed. */
  async reap(): Promise<void> {
    for (const thread of [...this.all]) {
      if (thread === this.latest || thread.openHandles > 0) continue;
      this.all.delete(thread);
      await thread.terminate();
    }
  }

  async terminateAll(): Promise<void> {
    for (const thread of this.all) await thread.terminate();
  }

  private spawn(): EngineThread {
    const thread = new EngineThread(this.hooks, this.transport);
    this.all.add(thread);
    return thread;
  }
}
