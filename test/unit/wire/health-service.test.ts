/**
 * grpc.health.v1 over a real grpc-js server and client: Check answers each known service's status
 * and NOT_FOUND for an unknown one; Watch sends the status now and each change (not repeats), and
 * SERVICE_UNKNOWN for an unknown name; setting a name the node does not serve is a programming
 * error.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HealthService } from '../../../common/wire/health-service';
import { healthProto, type HealthClient } from '../../../common/wire/proto';

describe('HealthService', () => {
  const health = new HealthService(['bora.v1.Worker']);
  const server = new grpc.Server();
  let client: HealthClient;

  before(async () => {
    health.addTo(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new (healthProto().Health)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(() => {
    client.close();
    health.close();
    server.forceShutdown();
  });

  const check = (service: string): Promise<string> =>
    new Promise((resolve, reject) => client.check({ service }, (err, reply) => (err ? reject(err) : resolve(String(reply!.status)))));

  test('Check: NOT_SERVING until set, then the status set; NOT_FOUND for an unknown service', async () => {
    assert.equal(await check(''), 'NOT_SERVING');
    assert.equal(await check('bora.v1.Worker'), 'NOT_SERVING');
    health.setAll('SERVING');
    assert.equal(await check(''), 'SERVING');
    assert.equal(await check('bora.v1.Worker'), 'SERVING');
    await assert.rejects(check('bora.v1.Inference'), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
    assert.throws(() => health.set('bora.v1.Inference', 'SERVING'), /not one of this node's services/);
  });

  test('Watch: the status now, then each change once', async () => {
    health.setAll('SERVING');
    const call = client.watch({ service: 'bora.v1.Worker' });
    const seen: string[] = [];
    const three = new Promise<void>((resolve) =>
      call.on('data', (reply: { status: string }) => {
        seen.push(reply.status);
        if (seen.length === 3) resolve();
      }),
    );
    call.on('error', () => undefined); // the cancel below
    await new Promise((r) => setTimeout(r, 50));
    health.set('bora.v1.Worker', 'NOT_SERVING');
    health.set('bora.v1.Worker', 'NOT_SERVING'); // no change, nothing sent
    health.set('bora.v1.Worker', 'SERVING');
    await three;
    call.cancel();
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING', 'SERVING']);
  });

  test('Watch of an unknown service answers SERVICE_UNKNOWN', async () => {
    const call = client.watch({ service: 'nope' });
    const first = await new Promise<string>((resolve) => call.once('data', (reply: { status: string }) => resolve(reply.status)));
    call.on('error', () => undefined);
    call.cancel();
    assert.equal(first, 'SERVICE_UNKNOWN');
  });
});
