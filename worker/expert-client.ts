/**
 * The gRPC side of RemoteExperts: RunExperts calls to expert holders, one channel per address,
 * reused across layer steps; a step larger than MAX_EXPERT_REQUEST_BYTES goes as several calls. A reply that does not match its request (output count or shapes) is
 * the holder's fault and is reported as UnavailableError, so that the step moves to a replica.
 */
import { UnavailableError, asBoraError } from '../common/errors';
import { INSECURE, dialNode, type NodeSecurity } from '../common/security/node-security';
import type { ExpertReply, ExpertRequest } from '../common/wire/messages';
import { fromServiceError } from '../common/wire/grpc-status';
import { MAX_EXPERT_REQUEST_BYTES, MAX_NODE_MESSAGE_BYTES, boraProto, channelOptions, type WorkerClient } from '../common/wire/proto';
import { decodeF32, encodeF32 } from '../common/wire/tensor-codec';
import { joinExpertOutputs, splitExpertCalls } from './expert-request-split';
import type { ExpertRequestSpec, ExpertTransport } from './remote-experts';

export class GrpcExpertTransport implements ExpertTransport {
  private readonly clients = new Map<string, WorkerClient>();

  constructor(
    /** The worker's transport security: its certificate on every call. */
    private readonly security: NodeSecurity = INSECURE,
    private readonly keepaliveMs = 1000,
    /** Activation bytes per request; a step's calls beyond it go in several (expert-request-split.ts). */
    private readonly maxRequestBytes = MAX_EXPERT_REQUEST_BYTES,
  ) {}

  async run(address: string, request: ExpertRequestSpec, deadlineMs: number): Promise<Float32Array[]> {
    const pieces = splitExpertCalls(request.calls, this.maxRequestBytes);
    const outputs = await Promise.all(pieces.map((piece) => this.runPiece(address, { ...request, calls: piece.calls }, deadlineMs)));
    return joinExpertOutputs(request.calls, pieces, outputs);
  }

  private runPiece(address: string, request: ExpertRequestSpec, deadlineMs: number): Promise<Float32Array[]> {
    const client = this.clientFor(address);
    const message: ExpertRequest = {
      planEpoch: request.epoch,
      layer: request.layer,
      calls: request.calls.map((c) => ({ expert: c.expert, x: encodeF32(c.x, [c.tokens, c.x.length / c.tokens]) })), // x: (tokens, H)
    };
    return new Promise((resolve, reject) => {
      client.runExperts(message, { deadline: Date.now() + deadlineMs }, (err, reply) => {
        if (err !== null) return reject(fromServiceError(err));
        try {
          resolve(decodeReply(reply, request));
        } catch (cause) {
          reject(new UnavailableError(`RunExperts reply from ${address} does not match its request: ${asBoraError(cause).message}`, { cause }));
        }
      });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private clientFor(address: string): WorkerClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      const Worker = boraProto().Worker;
      const dial = dialNode(this.security, address);
      client = new Worker(address, dial.credentials, { ...channelOptions(this.keepaliveMs, this.keepaliveMs, MAX_NODE_MESSAGE_BYTES), ...dial.options });
      this.clients.set(address, client);
    }
    return client;
  }
}

function decodeReply(reply: ExpertReply | undefined, request: ExpertRequestSpec): Float32Array[] {
  const outputs = reply?.outputs ?? [];
  if (outputs.length !== request.calls.length) throw new Error(`${outputs.length} outputs for ${request.calls.length} calls`);
  return request.calls.map((c, i) => decodeF32(outputs[i], `expert ${c.expert} output`, [c.tokens, c.x.length / c.tokens]));
}
