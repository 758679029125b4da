/**
 * The Worker service behind mutual TLS and its access rules (worker/worker-access.ts), on a real
 * gRPC server on 127.0.0.1 with real grpc-js clients: who is refused at the handshake, who gets
 * PERMISSION_DENIED on which call, who gets through; every refusal audited and, on Forward, counted
 * as a rejected frame. Each refusal below fails if its check is removed.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { workerId, type WorkerId } from '../../../common/ids';
import { AuditLog, type AuditRecord } from '../../../common/security/audit';
import { INSECURE, type NodeSecurity, dialNode, tlsNodeSecurity } from '../../../common/security/node-security';
import { ForwardClient } from '../../../common/wire/forward-client';
import { boraProto, type WorkerClient } from '../../../common/wire/proto';
import { CommitGate } from '../../../worker/commit-gate';
import { KvSources, fetchKvHandler } from '../../../worker/kv-transfer';
import { StageHost } from '../../../worker/stage-host';
import { WorkerAccess, type WorkerMethod } from '../../../worker/worker-access';
import type { RejectReason } from '../../../worker/worker-service';
import { startWorkerServer, type BoundServer } from '../../../worker/worker-server';
import { type TestPki, testPki } from '../../support/security';

const STREAMS = { drainTimeoutMs: 2000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };
const ALL_METHODS: readonly WorkerMethod[] = ['Forward', 'Results', 'Release', 'CommitPlan', 'Status', 'RunExperts', 'FetchKv'];
/** A code that is neither of the two refusals: the call got past the access check. */
const PASSED = 'passed';
type Outcome = grpc.status | typeof PASSED;

interface Dial {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
}

function codeOf(err: unknown): grpc.status {
  return (err as grpc.ServiceError).code;
}

/** The refusal codes pass through; anything else (OK, or the handler's own error) is PASSED. */
function outcome(code: grpc.status): Outcome {
  return code === grpc.status.PERMISSION_DENIED || code === grpc.status.UNAUTHENTICATED || code === grpc.status.UNAVAILABLE ? code : PASSED;
}

/** One call of `method` on a fresh connection; what came of it. */
async function call(address: string, dial: Dial, method: WorkerMethod): Promise<Outcome> {
  if (method === 'Forward') return forward(address, dial);
  const client = new (boraProto().Worker)(address, dial.credentials, { ...dial.options, 'grpc.use_local_subchannel_pool': 1 }) as WorkerClient;
  const deadline = { deadline: Date.now() + 5_000 };
  const unary = (err: grpc.ServiceError | null): Outcome => (err === null ? PASSED : outcome(err.code));
  try {
    return await new Promise<Outcome>((resolve) => {
      const stream = (s: grpc.ClientReadableStream<unknown>): void => {
        s.on('data', () => undefined);
        s.on('error', (err: grpc.ServiceError) => resolve(outcome(err.code)));
        s.on('end', () => resolve(PASSED));
      };
      switch (method) {
        case 'Results':
          return stream(client.results({ planEpoch: 1 }, deadline));
        case 'FetchKv':
          return stream(client.fetchKv({ planEpoch: 1, layerStart: 0, layerEnd: 1, sequenceIds: [] }, deadline));
        case 'Release':
          return client.release({ planEpoch: 1, sequenceIds: [] }, deadline, (err) => resolve(unary(err)));
        case 'CommitPlan':
          return client.commitPlan({ planEpoch: 5, sequences: [] }, deadline, (err) => resolve(unary(err)));
        case 'Status':
          return client.status({}, deadline, (err) => resolve(unary(err)));
        case 'RunExperts':
          return client.runExperts({ planEpoch: 1, layer: 0, calls: [] }, deadline, (err) => resolve(unary(err)));
      }
    });
  } finally {
    client.close();
  }
}

/** One frame on a Forward stream: PASSED when it was acked (even with a frame-level error). */
function forward(address: string, dial: Dial, security?: NodeSecurity): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const client: ForwardClient = new ForwardClient(address, {
      hiddenSize: 4,
      ...STREAMS,
      security: security ?? dialAs(dial),
      onRejected: () => {
        resolve(PASSED);
        client.close();
      },
      onBroken: (err) => resolve(outcome(codeOf(err))),
    });
    client.send({ planEpoch: 1, batchId: 1, stageIndex: 0, slices: [{ id: 's' as never, startPosition: 0, tokenCount: 1 }], hidden: new Float32Array(4) }).catch(() => undefined);
  });
}

/** ForwardClient takes a NodeSecurity, not a Dial: the dial's security travels alongside it. */
const dialSecurity = new WeakMap<Dial, NodeSecurity>();
function dialAs(dial: Dial): NodeSecurity {
  const security = dialSecurity.get(dial);
  if (security === undefined) throw new Error('forward() needs a dial made by nodeDial()');
  return security;
}

function nodeDial(security: NodeSecurity, address: string): Dial {
  const dial = { ...dialNode(security, address) };
  dialSecurity.set(dial, security);
  return dial;
}

interface SecureWorker {
  readonly server: BoundServer;
  readonly planWorkers: Set<WorkerId>;
  readonly audit: AuditRecord[];
  readonly rejected: RejectReason[];
}

async function startSecureWorker(security: NodeSecurity, plan: readonly string[]): Promise<SecureWorker & { close(): Promise<void> }> {
  const planWorkers = new Set(plan.map((w) => workerId(w)));
  const audit: AuditRecord[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    for (const line of String(chunk).split('\n')) if (line !== '') audit.push(JSON.parse(line) as AuditRecord);
  });
  const rejected: RejectReason[] = [];
  const host = new StageHost(workerId('w0'), STREAMS, { onRejected: (reason) => rejected.push(reason) });
  const gate = new CommitGate(workerId('w0'), 1000);
  const access = new WorkerAccess(security, { planWorkers: () => planWorkers, audit: new AuditLog(sink) });
  const server = await startWorkerServer(host, '127.0.0.1', 0, { timeMs: 1000, timeoutMs: 1000 }, { CommitPlan: (c, cb) => gate.commitPlan(c, cb), FetchKv: fetchKvHandler(new KvSources()) }, access);
  return { server, planWorkers, audit, rejected, close: () => server.close() };
}

describe('Worker service with mutual TLS', () => {
  let pki: TestPki;
  let other: TestPki;
  let worker: Awaited<ReturnType<typeof startSecureWorker>>;
  const as = new Map<string, Dial>();

  before(async () => {
    pki = await testPki();
    other = await testPki();
    worker = await startSecureWorker(tlsNodeSecurity(await pki.issue('worker', 'w0'), 'worker'), ['w0', 'w1']);
    for (const [role, id] of [['coordinator', 'c1'], ['worker', 'w1'], ['worker', 'w9'], ['client', 'u1'], ['admin', 'ops']] as const) {
      as.set(`${role}/${id}`, nodeDial(tlsNodeSecurity(await pki.issue(role, id)), worker.server.address));
    }
  });
  after(async () => {
    await worker?.close();
    pki?.remove();
    other?.remove();
  });

  test('dialing a node by IP sends no IP as TLS server name (no DEP0123 warning)', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      assert.equal(await call(worker.server.address, as.get('coordinator/c1')!, 'Status'), PASSED);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings.map((w) => (w as Error & { code?: string }).code).filter((c) => c === 'DEP0123'), []);
  });

  test('a client without a certificate is refused at the handshake', async () => {
    // (the DNS SAN `localhost` as server name: an IP would draw Node's DEP0123 warning)
    const dial = { credentials: grpc.credentials.createSsl(Buffer.from(pki.ca.certPem)), options: { 'grpc.ssl_target_name_override': 'localhost' } };
    for (const method of ['Status', 'Results', 'Release'] as const) assert.equal(await call(worker.server.address, dial, method), grpc.status.UNAVAILABLE, method);
  });

  test('a plaintext client is refused', async () => {
    assert.equal(await call(worker.server.address, { credentials: grpc.credentials.createInsecure(), options: {} }, 'Status'), grpc.status.UNAVAILABLE);
  });

  test("a worker certificate from another CA is refused at the handshake, on every call", async () => {
    const foreign = nodeDial(tlsNodeSecurity(await other.issue('worker', 'w1')), worker.server.address);
    for (const method of ALL_METHODS) assert.equal(await call(worker.server.address, foreign, method), grpc.status.UNAVAILABLE, method);
  });

  test('a client-role certificate gets PERMISSION_DENIED on every call, each audited; Forward counts a rejected frame', async () => {
    const auditedBefore = worker.audit.length;
    const rejectedBefore = worker.rejected.length;
    for (const method of ALL_METHODS) assert.equal(await call(worker.server.address, as.get('client/u1')!, method), grpc.status.PERMISSION_DENIED, method);
    await new Promise((r) => setImmediate(r));
    const audited = worker.audit.slice(auditedBefore);
    assert.deepEqual(audited.map((r) => r.what).sort(), [...ALL_METHODS].sort());
    for (const r of audited) {
      assert.equal(r.outcome, 'refused');
      assert.equal(r.who, 'client/u1');
    }
    assert.deepEqual(worker.rejected.slice(rejectedBefore), ['permission_denied']);
  });

  test('a worker not in the plan gets PERMISSION_DENIED on Forward, RunExperts and FetchKv (and every coordinator call)', async () => {
    for (const method of ALL_METHODS) assert.equal(await call(worker.server.address, as.get('worker/w9')!, method), grpc.status.PERMISSION_DENIED, method);
    assert.ok(worker.audit.some((r) => r.who === 'worker/w9' && r.what === 'FetchKv' && /not a worker of the current plan/.test(JSON.stringify(r.detail))));
  });

  test('a worker of the plan may Forward, RunExperts and FetchKv, and nothing the coordinator does', async () => {
    const w1 = as.get('worker/w1')!;
    for (const method of ['Forward', 'RunExperts', 'FetchKv'] as const) assert.equal(await call(worker.server.address, w1, method), PASSED, method);
    for (const method of ['Results', 'Release', 'CommitPlan', 'Status'] as const) assert.equal(await call(worker.server.address, w1, method), grpc.status.PERMISSION_DENIED, method);
  });

  test('the coordinator certificate is accepted on Forward, Results, Release, CommitPlan and Status, not on worker-to-worker calls', async () => {
    const c1 = as.get('coordinator/c1')!;
    for (const method of ['Forward', 'Results', 'Release', 'CommitPlan', 'Status'] as const) assert.equal(await call(worker.server.address, c1, method), PASSED, method);
    for (const method of ['RunExperts', 'FetchKv'] as const) assert.equal(await call(worker.server.address, c1, method), grpc.status.PERMISSION_DENIED, method);
  });

  test('an admin certificate may ask for Status only', async () => {
    const admin = as.get('admin/ops')!;
    assert.equal(await call(worker.server.address, admin, 'Status'), PASSED);
    for (const method of ['Forward', 'Results', 'Release', 'CommitPlan', 'RunExperts', 'FetchKv'] as const) assert.equal(await call(worker.server.address, admin, method), grpc.status.PERMISSION_DENIED, method);
  });

  test('an open Forward stream is cut once its worker leaves the plan', async () => {
    const w1 = as.get('worker/w1')!;
    const events: Outcome[] = [];
    let broken!: (o: Outcome) => void;
    const brokenOutcome = new Promise<Outcome>((resolve) => (broken = resolve));
    const client = new ForwardClient(worker.server.address, {
      hiddenSize: 4,
      ...STREAMS,
      security: dialAs(w1),
      onRejected: () => events.push(PASSED),
      onBroken: (err) => broken(outcome(codeOf(err))),
    });
    const frame = (batchId: number) => ({ planEpoch: 1, batchId, stageIndex: 0, slices: [{ id: 's' as never, startPosition: 0, tokenCount: 1 }], hidden: new Float32Array(4) });
    try {
      await client.send(frame(1));
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(events, [PASSED]); // acked (with a frame-level error: no stage here)
      worker.planWorkers.delete(workerId('w1'));
      await client.send(frame(2)).catch(() => undefined);
      assert.equal(await brokenOutcome, grpc.status.PERMISSION_DENIED);
    } finally {
      worker.planWorkers.add(workerId('w1'));
      client.close();
    }
  });
});

describe('Worker service in insecure mode', () => {
  test('checks nothing: plaintext callers reach every handler', async () => {
    const worker = await startSecureWorker(INSECURE, []);
    try {
      const plain = nodeDial(INSECURE, worker.server.address);
      for (const method of ALL_METHODS) assert.equal(await call(worker.server.address, plain, method), PASSED, method);
      assert.deepEqual(worker.audit, []);
    } finally {
      await worker.close();
    }
  });
});
