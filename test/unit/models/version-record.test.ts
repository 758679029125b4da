/**
 * Version records (common/models/version-record.ts) and the digests behind them
 * (common/models/weight-digests.ts): describing the tiny fixture gives the SHA-256 an independent
 * hash of its file and tensors gives; a record is validated field by field; a tampered copy is
 * found, naming the file; a plan carries the version it serves.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validatePlan } from '../../../common/cluster/plan';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { Checkpoint, CONFIG_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import { decodeVersionRecord, encodeVersionRecord, validateVersionRecord, type ModelVersionRecord } from '../../../common/models/version-record';
import { DIGEST_MISMATCH, HASH_CHUNK_BYTES, describeModelVersion, digestMismatchError, digestMismatchOf, findDigestMismatch, hashFile } from '../../../common/models/weight-digests';
import { fixtureDir, tempDir } from '../../support/checkpoints';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('describing a model version', () => {
  test('records the SHA-256 of the weight file and of every tensor, and the config summary', async () => {
    const dir = fixtureDir('tiny-mistral');
    const record = await describeModelVersion({ name: 'tiny', version: 'v1' }, dir, new Date('2026-12-08T00:00:00Z'));
    const file = readFileSync(join(dir, SINGLE_FILE));
    assert.deepEqual(record.files, [{ file: SINGLE_FILE, sizeBytes: file.byteLength, sha256: sha256(file) }]);
    const ckpt = await Checkpoint.open(dir);
    assert.deepEqual(Object.keys(record.tensors).sort(), [...ckpt.tensorNames].sort());
    for (const name of ckpt.tensorNames) assert.equal(record.tensors[name], sha256((await ckpt.readRaw(name)).bytes), name);
    assert.equal(record.format, 'hub');
    assert.equal(record.path, dir);
    assert.equal(record.shape.numLayers, ckpt.config.numLayers);
    assert.equal(record.shape.hiddenSize, ckpt.config.hiddenSize);
    assert.ok(record.shape.weightBytes > 0 && record.shape.weightBytes <= file.byteLength);
    assert.deepEqual(decodeVersionRecord(encodeVersionRecord(record), 'k'), record);
  });

  test('hashFile streams: a file over several chunks hashes like one read', async (t) => {
    const dir = await tempDir(t, 'hash');
    const path = join(dir, 'big.bin');
    const bytes = Buffer.alloc(HASH_CHUNK_BYTES * 3 + 12345);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
    const fh = await open(path, 'w');
    await fh.write(bytes);
    await fh.close();
    assert.deepEqual(await hashFile(path), { sizeBytes: bytes.length, sha256: sha256(bytes) });
    await assert.rejects(hashFile(join(dir, 'missing.bin')), (err: unknown) => err instanceof CheckpointError && /missing\.bin: cannot read \(ENOENT\)/.test(err.message));
  });

  test('a copy with one byte changed is found, naming the file; an intact copy matches', async (t) => {
    const record = await describeModelVersion({ name: 'tiny', version: 'v1' }, fixtureDir('tiny-mistral'));
    const dir = await tempDir(t, 'tampered');
    await mkdir(dir, { recursive: true });
    for (const f of [CONFIG_FILE, SINGLE_FILE]) await copyFile(join(fixtureDir('tiny-mistral'), f), join(dir, f));
    assert.equal(await findDigestMismatch(dir, record), undefined);
    const path = join(dir, SINGLE_FILE);
    const size = (await stat(path)).size;
    const fh = await open(path, 'r+');
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    await fh.write(Buffer.from([last[0] ^ 0x01]), 0, 1, size - 1);
    await fh.close();
    const mismatch = await findDigestMismatch(dir, record);
    assert.equal(mismatch?.file, path);
    assert.equal(mismatch?.expectedSha256, record.files[0].sha256);
    assert.equal(mismatch?.actualSha256, sha256(readFileSync(path)));
    // The error names the file, and survives being rebuilt from its message (a thread boundary).
    const err = digestMismatchError({ file: 'coord:1/tiny', expectedSha256: 'a'.repeat(64), actualSha256: 'b'.repeat(64) }, 'tiny@v1', 'lm_head.weight');
    assert.match(err.message, new RegExp(`^coord:1/tiny: tensor lm_head.weight: ${DIGEST_MISMATCH} tiny@v1`));
    assert.deepEqual(digestMismatchOf(err), { file: 'tensor lm_head.weight (from coord:1/tiny)', expectedSha256: 'a'.repeat(64), actualSha256: 'b'.repeat(64), tensor: 'lm_head.weight' });
    assert.equal(digestMismatchOf(new CheckpointError('f', 'shape [2] does not match')), undefined);
  });
});

describe('validating a record', () => {
  const good: ModelVersionRecord = {
    name: 'tiny',
    version: 'v1',
    format: 'hub',
    path: '/models/tiny',
    files: [{ file: 'model.safetensors', sizeBytes: 10, sha256: 'a'.repeat(64) }],
    tensors: { 'lm_head.weight': 'b'.repeat(64) },
    shape: { modelType: 'mistral', numLayers: 2, hiddenSize: 64, vocabSize: 32000, numExperts: 0, weightBytes: 10 },
    addedAt: '2026-12-08T00:00:00.000Z',
  };

  test('accepts a well-formed record as given', () => {
    assert.deepEqual(validateVersionRecord(good), good);
  });

  test('refuses each malformed field, naming it', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...good, name: 'a/b' }, /letters, digits/],
      [{ ...good, format: 'onnx' }, /"format" must be "hub" or "gguf"/],
      [{ ...good, path: 'relative/dir' }, /"path" must be absolute/],
      [{ ...good, files: [] }, /at least one weight file/],
      [{ ...good, files: [{ ...good.files[0], sha256: 'A'.repeat(64) }] }, /files\[0\]\.sha256 must be 64 lower-case hex/],
      [{ ...good, files: [{ ...good.files[0], file: '../etc/passwd' }] }, /must be a file name, not a path/],
      [{ ...good, files: [good.files[0], good.files[0]] }, /lists a file twice/],
      [{ ...good, format: 'gguf', files: [good.files[0], { ...good.files[0], file: 'b' }] }, /exactly one weight file/],
      [{ ...good, files: [{ ...good.files[0], sizeBytes: -1 }] }, /sizeBytes must be an integer >= 0/],
      [{ ...good, tensors: {} }, /"tensors" must map at least one/],
      [{ ...good, tensors: { x: 'nope' } }, /tensors\["x"\] must be 64/],
      [{ ...good, shape: { ...good.shape, numLayers: 0 } }, /shape\.numLayers must be an integer >= 1/],
      [{ ...good, addedAt: 'yesterday' }, /"addedAt" must be an ISO 8601 time/],
      [{ ...good, extra: 1 }, /unknown field "extra"/],
    ];
    for (const [raw, message] of bad) assert.throws(() => validateVersionRecord(raw), (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message), message.source);
    assert.throws(() => decodeVersionRecord('{', '/bora/models/versions/x@y'), /\/bora\/models\/versions\/x@y: not JSON/);
  });
});

describe('a plan names its version', () => {
  const plan = { epoch: 1, modelId: 'm', numLayers: 2, stages: [{ range: { start: 0, end: 2 }, workers: ['w1'] }] };
  test('a well-formed modelVersion is kept, a malformed one refused', () => {
    assert.equal(validatePlan({ ...plan, modelVersion: 'tiny@v1' }).modelVersion, 'tiny@v1');
    assert.equal('modelVersion' in validatePlan(plan), false);
    assert.throws(() => validatePlan({ ...plan, modelVersion: 'tiny' }), /"modelVersion", when present, must be NAME@VERSION/);
  });
});
