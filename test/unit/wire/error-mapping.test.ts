/**
 * Every error code, and the classes that carry more than a code, across both boundaries an error
 * crosses: a gRPC status (grpc-status.ts, in memory and over a real loopback call, which checks
 * that the metadata survives the transport) and a worker thread's reply (thread-errors.ts, through
 * structured cloning). Both sides rebuild with errorFromCode, so each row must arrive the same
 * way: class, code, message, retryable, and a CheckpointError's file and tensor, with no
 * placeholder file and no doubled "file: tensor t:" prefix.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  BoraError,
  CheckpointError,
  type ErrorCode,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  StaleEpochError,
  UnauthenticatedError,
  UnavailableError,
  errorFromCode,
} from '../../../common/errors';
import { fromThreadError, toThreadError } from '../../../common/pool/thread-errors';
import { fromServiceError, fromStatus, toServiceError } from '../../../common/wire/grpc-status';
import { boraProto, type WeightSourceClient, type WeightSourceHandlers } from '../../../common/wire/proto';

type ErrorClass = abstract new (...args: never[]) => BoraError;

/** The class each code arrives as (a Record: a code added to ErrorCode must be added here). */
const CLASS_OF: Record<ErrorCode, ErrorClass> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  CHECKPOINT_INVALID: CheckpointError,
  NOT_FOUND: NotFoundError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  FAILED_PRECONDITION: FailedPreconditionError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: BoraError,
  CANCELLED: BoraError,
  INTERNAL: InternalError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
};

interface Row {
  readonly name: string;
  readonly thrown: unknown;
  /** What arrives; class defaults to CLASS_OF[code]. */
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly cls?: ErrorClass;
  readonly file?: string;
  readonly tensor?: string;
}

const ROWS: readonly Row[] = [
  { name: 'InvalidArgumentError', thrown: new InvalidArgumentError('max_tokens must be positive'), code: 'INVALID_ARGUMENT', message: 'max_tokens must be positive', retryable: false },
  {
    name: 'CheckpointError without a tensor',
    thrown: new CheckpointError('/models/m/config.json', 'not JSON'),
    code: 'CHECKPOINT_INVALID',
    message: '/models/m/config.json: not JSON',
    retryable: false,
    file: '/models/m/config.json',
  },
  {
    name: 'CheckpointError with a tensor',
    thrown: new CheckpointError('/models/m/model.safetensors', 'shape [2] where [4] was expected', { tensor: 'layers.0.attention.wq.weight' }),
    code: 'CHECKPOINT_INVALID',
    message: '/models/m/model.safetensors: tensor layers.0.attention.wq.weight: shape [2] where [4] was expected',
    retryable: false,
    file: '/models/m/model.safetensors',
    tensor: 'layers.0.attention.wq.weight',
  },
  {
    name: 'CheckpointError naming a file and tensor that are not ASCII',
    thrown: new CheckpointError('/modèles/größe.safetensors', 'truncated', { tensor: 'poids.é' }),
    code: 'CHECKPOINT_INVALID',
    message: '/modèles/größe.safetensors: tensor poids.é: truncated',
    retryable: false,
    file: '/modèles/größe.safetensors',
    tensor: 'poids.é',
  },
  { name: 'NotFoundError', thrown: new NotFoundError('unknown model "x"'), code: 'NOT_FOUND', message: 'unknown model "x"', retryable: false },
  { name: 'ResourceExhaustedError', thrown: new ResourceExhaustedError('prompt of 9000 tokens'), code: 'RESOURCE_EXHAUSTED', message: 'prompt of 9000 tokens', retryable: false },
  { name: 'FailedPreconditionError', thrown: new FailedPreconditionError('position out of step'), code: 'FAILED_PRECONDITION', message: 'position out of step', retryable: false },
  {
    name: 'StaleEpochError (arrives as a retryable FailedPreconditionError)',
    thrown: new StaleEpochError(3, 4),
    code: 'FAILED_PRECONDITION',
    message: 'frame carries plan epoch 3, this node serves epoch 4',
    retryable: true,
  },
  { name: 'UnavailableError', thrown: new UnavailableError('worker gone'), code: 'UNAVAILABLE', message: 'worker gone', retryable: true },
  { name: 'DEADLINE_EXCEEDED', thrown: new BoraError('DEADLINE_EXCEEDED', 'too late'), code: 'DEADLINE_EXCEEDED', message: 'too late', retryable: false },
  { name: 'CANCELLED', thrown: new BoraError('CANCELLED', 'client went away'), code: 'CANCELLED', message: 'client went away', retryable: false },
  { name: 'InternalError', thrown: new InternalError('invariant broken'), code: 'INTERNAL', message: 'invariant broken', retryable: false },
  { name: 'UnauthenticatedError', thrown: new UnauthenticatedError('no API key'), code: 'UNAUTHENTICATED', message: 'no API key', retryable: false },
  { name: 'PermissionDeniedError', thrown: new PermissionDeniedError('Drain needs the admin role'), code: 'PERMISSION_DENIED', message: 'Drain needs the admin role', retryable: false },
  { name: 'a plain Error (as InternalError)', thrown: new Error('boom'), code: 'INTERNAL', message: 'boom', retryable: false },
  {
    name: 'override: a retryable FailedPreconditionError',
    thrown: new FailedPreconditionError('not yet', { retryable: true }),
    code: 'FAILED_PRECONDITION',
    message: 'not yet',
    retryable: true,
  },
  {
    name: 'override: a non-retryable UNAVAILABLE',
    thrown: new BoraError('UNAVAILABLE', 'cannot serve metrics on :9090', { retryable: false }),
    code: 'UNAVAILABLE',
    message: 'cannot serve metrics on :9090',
    retryable: false,
  },
  {
    name: 'override: a retryable DEADLINE_EXCEEDED',
    thrown: new BoraError('DEADLINE_EXCEEDED', 'step too slow', { retryable: true }),
    code: 'DEADLINE_EXCEEDED',
    message: 'step too slow',
    retryable: true,
  },
];

function assertArrived(got: BoraError, row: Row): void {
  assert.equal(got.constructor, row.cls ?? CLASS_OF[row.code], `${row.name}: class ${got.constructor.name}`);
  assert.equal(got.code, row.code, `${row.name}: code`);
  assert.equal(got.message, row.message, `${row.name}: message`);
  assert.equal(got.retryable, row.retryable, `${row.name}: retryable`);
  const file = got instanceof CheckpointError ? got.file : undefined;
  const tensor = got instanceof CheckpointError ? got.tensor : undefined;
  assert.equal(file, row.file, `${row.name}: file`);
  assert.equal(tensor, row.tensor, `${row.name}: tensor`);
}

/** What toServiceError gives, as the ServiceError a client's callback would get. */
function asReceived(sent: Partial<grpc.ServiceError>): grpc.ServiceError {
  return Object.assign(new Error(sent.message), { code: sent.code ?? grpc.status.UNKNOWN, details: sent.details ?? '', metadata: sent.metadata ?? new grpc.Metadata() });
}

describe('errors across boundaries', () => {
  test('the table covers every error code', () => {
    assert.deepEqual(new Set(ROWS.map((r) => r.code)), new Set(Object.keys(CLASS_OF)));
  });

  test('gRPC status: toServiceError -> fromServiceError', () => {
    for (const row of ROWS) assertArrived(fromServiceError(asReceived(toServiceError(row.thrown))), row);
  });

  test('worker thread: toThreadError -> structured clone -> fromThreadError, with the thread stack', () => {
    for (const row of ROWS) {
      const record = structuredClone(toThreadError(row.thrown));
      const got = fromThreadError(record);
      assertArrived(got, row);
      assert.ok(record.stack?.includes(row.message), `${row.name}: a stack was sent`);
      assert.equal(got.stack, record.stack, `${row.name}: the thread's stack`);
    }
  });

  test('errorFromCode is the one rebuild: what each boundary carries gives the same error', () => {
    for (const row of ROWS) {
      const thread = toThreadError(row.thrown);
      assertArrived(errorFromCode(thread.code, thread.message, { retryable: thread.retryable, file: thread.file, tensor: thread.tensor }), row);
    }
  });

  test('a status without Bora metadata (from gRPC itself, or a frame error) maps by its status code', () => {
    const cases: [grpc.status, ErrorClass, boolean][] = [
      [grpc.status.UNAVAILABLE, UnavailableError, true],
      [grpc.status.INVALID_ARGUMENT, InvalidArgumentError, false],
      [grpc.status.FAILED_PRECONDITION, FailedPreconditionError, false],
      [grpc.status.DEADLINE_EXCEEDED, BoraError, false],
      [grpc.status.UNKNOWN, UnavailableError, true],
    ];
    for (const [status, cls, retryable] of cases) {
      const got = fromServiceError(asReceived({ code: status, details: 'from the transport' }));
      assert.equal(got.constructor, cls, grpc.status[status]);
      assert.equal(got.retryable, retryable, grpc.status[status]);
      assert.equal(got.message, 'from the transport');
      assert.equal(fromStatus(status, 'frame error').constructor, cls);
    }
  });

  test('CHECKPOINT_INVALID without its file, and an unknown Bora code', () => {
    const noFile = errorFromCode('CHECKPOINT_INVALID', 'x.safetensors: bad');
    assert.equal(noFile.constructor, BoraError);
    assert.equal(noFile.code, 'CHECKPOINT_INVALID');
    assert.equal(noFile.message, 'x.safetensors: bad');
    assert.equal(noFile.retryable, false);
    assert.equal(fromStatus(grpc.status.NOT_FOUND, 'gone', 'NOT_A_CODE').constructor, NotFoundError);
  });

  describe('over a loopback gRPC call', () => {
    let server: grpc.Server;
    let client: WeightSourceClient;

    before(async () => {
      server = new grpc.Server();
      // FetchConfig fails with the row its model field names.
      const handlers: WeightSourceHandlers = {
        FetchConfig: (call, callback) => callback(toServiceError(ROWS[Number(call.request.model)].thrown)),
        FetchTensor: (call) => call.end(),
      };
      server.addService(boraProto().WeightSource.service, handlers);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      client = new (boraProto().WeightSource)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    });

    after(() => {
      client.close();
      server.forceShutdown();
    });

    test('every row arrives as it does in memory', async () => {
      for (const [i, row] of ROWS.entries()) {
        const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
          client.fetchConfig({ model: String(i) }, { deadline: Date.now() + 5000 }, (e) => (e === null ? reject(new Error(`${row.name}: the call succeeded`)) : resolve(e))),
        );
        assertArrived(fromServiceError(err), row);
      }
    });
  });
});
