/**
 * A pipeline of in-process stages served over real gRPC on 127.0.0.1: one StageHost and Worker
 * server per stage, chained, and a RemotePipeline over them, plaintext or with each node's
 * transport security (the workers then check callers against the plan's workers).
 */
import { workerId } from '../../common/ids';
import type { Checkpoint } from '../../common/model/checkpoint';
import { INSECURE, type NodeSecurity } from '../../common/security/node-security';
import { RemotePipeline } from '../../coordinator/remote-pipeline';
import { InThreadStage } from '../../worker/stage-backend';
import { StageHost } from '../../worker/stage-host';
import { OPEN_WORKER_ACCESS, WorkerAccess } from '../../worker/worker-access';
import { startWorkerServer, type BoundServer } from '../../worker/worker-server';
import { loadPipeline } from './pipeline';

const STREAMS = { drainTimeoutMs: 5000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };

export interface RemoteStages {
  readonly hosts: StageHost[];
  readonly servers: BoundServer[];
  readonly pipeline: RemotePipeline;
  close(): Promise<void>;
}

export interface RemoteStagesOptions {
  /** Layer boundaries between stages, as loadPipeline takes them. */
  readonly splits: readonly number[];
  readonly epoch?: number;
  /** Stage i's worker (w<i>) security; plaintext when absent. */
  readonly workers?: readonly NodeSecurity[];
  /** The pipeline's (the coordinator's) security; plaintext when absent. */
  readonly coordinator?: NodeSecurity;
}

export async function startRemoteStages(ckpt: Checkpoint, options: RemoteStagesOptions): Promise<RemoteStages> {
  const epoch = options.epoch ?? 1;
  const engines = await loadPipeline(ckpt, options.splits);
  const ids = engines.map((_, i) => workerId(`w${i}`));
  const plan = new Set(ids);
  const security = (i: number): NodeSecurity => options.workers?.[i] ?? INSECURE;
  const hosts = engines.map((_, i) => new StageHost(ids[i], { ...STREAMS, security: security(i) }));
  const servers = await Promise.all(
    hosts.map((h, i) =>
      startWorkerServer(h, '127.0.0.1', 0, { timeMs: 1000, timeoutMs: 1000 }, undefined, security(i).kind === 'tls' ? new WorkerAccess(security(i), { planWorkers: () => plan }) : OPEN_WORKER_ACCESS),
    ),
  );
  engines.forEach((engine, i) =>
    hosts[i].install(epoch, { assignment: { epoch, stageIndex: i, stageCount: engines.length, range: engine.range }, stage: new InThreadStage(engine), nextAddress: servers[i + 1]?.address }, undefined),
  );
  const pipeline = await RemotePipeline.open({
    epoch,
    stageAddresses: servers.map((s) => s.address),
    hiddenSize: ckpt.config.hiddenSize,
    vocabSize: ckpt.config.vocabSize,
    stepTimeoutMs: 10_000,
    keepaliveTimeMs: 1000,
    keepaliveTimeoutMs: 1000,
    security: options.coordinator ?? INSECURE,
  });
  return {
    hosts,
    servers,
    pipeline,
    close: async () => {
      pipeline.close();
      for (const h of hosts) h.uninstall();
      await Promise.all(servers.map((s) => s.close()));
      await Promise.all(engines.map((e) => e.close()));
    },
  };
}
