/**
 * Fencing probe: the harness sends a worker one well-formed activation frame of a given (stale)
 * epoch and stage over the data plane, exactly as a stale coordinator or upstream stage would,
 * and reads the worker's ack. An ack without an error means the worker accepted the frame into
 * its stage: a fencing failure. The frame is valid in every other respect (one token of one
 * sequence, hidden state of the right width), so a refusal can only be the epoch or the lease.
 *
 * The same frame, sent with the live epoch and other credentials (`dial`), is S11's forged frame:
 * there a refusal can only be the caller's certificate (a failed handshake, or a stream that
 * ends with PERMISSION_DENIED before any ack).
 */
import * as grpc from '@grpc/grpc-js';
import { sequenceId } from '../common/ids';
import type { NodeDial } from '../common/security/node-security';
import { encodeStageFrame } from '../common/wire/frames';
import type { ForwardAck } from '../common/wire/messages';
import { boraProto } from '../common/wire/proto';

export type ProbeOutcome =
  | { readonly kind: 'refused'; readonly message: string; readonly code: number }
  | { readonly kind: 'accepted' }
  /** `code`: the gRPC status the stream ended with (UNAVAILABLE for a refused handshake). */
  | { readonly kind: 'no-answer'; readonly message: string; readonly code?: number };

const PROBE_TIMEOUT_MS = 3000;
let probeCount = 0;

const PLAINTEXT: NodeDial = { credentials: grpc.credentials.createInsecure(), options: {} };

export function probeStaleFrame(address: string, epoch: number, stageIndex: number, hiddenSize: number, dial: NodeDial = PLAINTEXT): Promise<ProbeOutcome> {
  const id = sequenceId(`chaos-probe-${process.pid}-${++probeCount}`);
  const batchId = 9_000_000 + probeCount;
  const frames = encodeStageFrame(
    {
      planEpoch: epoch,
      batchId,
      stageIndex,
      slices: [{ id, startPosition: 0, tokenCount: 1, tokenIds: stageIndex === 0 ? [1] : undefined }],
      hidden: stageIndex === 0 ? undefined : new Float32Array(hiddenSize), // (1, H)
    },
    hiddenSize,
  );
  const client = new (boraProto().Worker)(address, dial.credentials, dial.options);
  return new Promise<ProbeOutcome>((resolve) => {
    const call = client.Forward({ deadline: Date.now() + PROBE_TIMEOUT_MS });
    let settled = false;
    const settle = (outcome: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      call.cancel();
      if (outcome.kind === 'accepted') {
        // Free what the worker took in, so the probe leaves no cache behind.
        client.Release({ planEpoch: epoch, sequenceIds: [id] }, { deadline: Date.now() + 1000 }, () => client.close());
      } else {
        client.close();
      }
      resolve(outcome);
    };
    call.on('data', (ack: ForwardAck) => {
      if (Number(ack.batchId) !== batchId) return;
      settle(ack.error === '' ? { kind: 'accepted' } : { kind: 'refused', message: ack.error, code: ack.code });
    });
    call.on('error', (err: grpc.ServiceError) => settle({ kind: 'no-answer', message: err.details ?? err.message, code: err.code }));
    call.on('end', () => settle({ kind: 'no-answer', message: 'stream ended without an ack' }));
    for (const f of frames) call.write(f);
  });
}
