/**
 * The grpc.health.v1 service (proto/grpc/health/v1/health.proto) on a node's gRPC port: a
 * status per service name ("" for the node as a whole), set by the node as its readiness
 * changes. Check answers the status now (NOT_FOUND for a name this node does not serve); Watch
 * sends the status now and then every change until the caller cancels (SERVICE_UNKNOWN for an
 * unknown name, kept open in case it appears, as the protocol asks).
 *
 * Who may call: anyone the port admits. On a coordinator that is any client (TLS without a
 * client certificate, like the Inference API); on a worker, any holder of a cluster certificate
 * (the port's mutual TLS). The reply is one enum, the same fact /readyz publishes; it names no
 * plan, peer or model.
 */
import * as grpc from '@grpc/grpc-js';
import type { HealthCheckResponse } from './generated/grpc/health/v1/HealthCheckResponse';
import { healthProto, type HealthHandlers } from './proto';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';
type WireStatus = NonNullable<HealthCheckResponse['status']>;

/** The name for the node as a whole. */
export const WHOLE_NODE = '';

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<grpc.ServerWritableStream<unknown, HealthCheckResponse>>>();

  /** Starts with every name NOT_SERVING until the node says otherwise. */
  constructor(services: readonly string[]) {
    for (const name of [WHOLE_NODE, ...services]) this.statuses.set(name, 'NOT_SERVING');
  }

  /** Sets every name's status (the node's readiness covers all its services). */
  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) this.set(name, status);
  }

  set(service: string, status: ServingStatus): void {
    if (!this.statuses.has(service)) throw new Error(`health: ${JSON.stringify(service)} is not one of this node's services`);
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const call of this.watchers.get(service) ?? []) call.write({ status });
  }

  status(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  addTo(server: grpc.Server): void {
    server.addService(healthProto().Health.service, this.handlers());
  }

  /** Ends every Watch stream (the node is stopping). */
  close(): void {
    for (const calls of this.watchers.values()) for (const call of calls) call.end();
    this.watchers.clear();
  }

  private handlers(): HealthHandlers {
    return {
      Check: (call, callback) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: `no service ${JSON.stringify(call.request.service)} on this node` });
          return;
        }
        callback(null, { status });
      },
      Watch: (call) => {
        const name = call.request.service;
        const current: WireStatus = this.statuses.get(name) ?? 'SERVICE_UNKNOWN';
        let calls = this.watchers.get(name);
        if (calls === undefined) {
          calls = new Set();
          this.watchers.set(name, calls);
        }
        calls.add(call);
        const forget = (): void => {
          this.watchers.get(name)?.delete(call);
        };
        call.on('cancelled', forget);
        call.on('close', forget);
        call.write({ status: current });
      },
    };
  }
}
