/**
 * A worker that cannot see the GGUF file fetches it from the coordinator: FetchConfig serves the
 * config the metadata implies, FetchTensor the tensors as stored (Q8_0 blocks, q/k rows already
 * back in Hugging Face order, one Mixtral expert's slice), and RemoteWeightSource checks and
 * returns exactly the bytes the local reader gives.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GgufCheckpoint } from '../../../common/model/gguf/gguf-checkpoint';
import { bindServer } from '../../../common/wire/bind-server';
import { boraProto } from '../../../common/wire/proto';
import { weightServiceHandlers } from '../../../coordinator/weight-service';
import { RemoteWeightSource } from '../../../worker/remote-weights';
import { fixtureGguf } from '../../support/gguf';

describe('GGUF weights over the WeightSource service', () => {
  test('a Q8_0 tiny-mixtral: config and quantized tensors arrive as the local reader reads them', async (t) => {
    const gguf = await GgufCheckpoint.open(await fixtureGguf(t, 'tiny-mixtral', 'Q8_0'));
    const grpcServer = new grpc.Server();
    grpcServer.addService(boraProto().WeightSource.service, weightServiceHandlers(gguf, 'm.gguf'));
    const server = await bindServer(grpcServer, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    t.after(() => server.close());
    const remote = await RemoteWeightSource.connect(server.address, 'm.gguf');
    t.after(() => remote.close());
    assert.deepEqual(remote.config, gguf.config);
    for (const name of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.3.block_sparse_moe.experts.5.w2.weight', 'model.layers.0.input_layernorm.weight', 'lm_head.weight']) {
      const local = await gguf.readRaw(name);
      const fetched = await remote.readRaw(name, local.shape);
      assert.equal(fetched.dtype, local.dtype, name);
      assert.deepEqual(fetched.shape, local.shape, name);
      assert.ok(Buffer.from(fetched.bytes).equals(Buffer.from(local.bytes)), `${name} bytes`);
    }
    assert.equal((await remote.readRaw('lm_head.weight')).dtype, 'Q8_0');
  });
});
