/**
 * The NAME@VERSION grammar (common/models/model-ref.ts) and how a request's `model` routes to the
 * served version (coordinator/model-routing.ts): malformed is INVALID_ARGUMENT, not served here
 * NOT_FOUND.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError, NotFoundError } from '../../../common/errors';
import { formatModelRef, isModelRef, parseModelRef, parseModelSelector } from '../../../common/models/model-ref';
import { routeModel } from '../../../coordinator/model-routing';

describe('model names', () => {
  test('parses NAME@VERSION and NAME', () => {
    assert.deepEqual(parseModelRef('mistral-7b@v1'), { name: 'mistral-7b', version: 'v1' });
    assert.deepEqual(parseModelRef('Mixtral_8x7B.Instruct@2024-12-01.rc1'), { name: 'Mixtral_8x7B.Instruct', version: '2024-12-01.rc1' });
    assert.deepEqual(parseModelSelector('mistral'), { name: 'mistral' });
    assert.deepEqual(parseModelSelector('mistral@7'), { name: 'mistral', version: '7' });
    assert.equal(formatModelRef({ name: 'a', version: 'b' }), 'a@b');
  });

  test('refuses malformed names with a message saying what is wrong', () => {
    const bad: [string, RegExp][] = [
      ['', /name is empty/],
      ['mistral', /a version is required/],
      ['mistral@', /version is empty/],
      ['@v1', /name is empty/],
      ['a@b@c', /more than one "@"/],
      ['a/b@v1', /letters, digits/],
      ['m@v/1', /letters, digits/],
      ['.hidden@v1', /must start with a letter or digit/],
      ['m@-v1', /must start with a letter or digit/],
      ['m o@v1', /letters, digits/],
      ['mé@v1', /letters, digits/],
      [`${'a'.repeat(129)}@v1`, /129 characters, at most 128/],
      [`m@${'1'.repeat(65)}`, /65 characters, at most 64/],
    ];
    for (const [text, message] of bad) {
      assert.throws(() => parseModelRef(text), (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message), text);
      assert.equal(isModelRef(text), false, text);
    }
    assert.doesNotThrow(() => parseModelRef(`${'a'.repeat(128)}@${'1'.repeat(64)}`));
  });

  test('formatting and parsing are inverse for every well-formed name', () => {
    const part = (max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${max - 1}}$`));
    fc.assert(
      fc.property(part(128), part(64), (name, version) => {
        assert.deepEqual(parseModelRef(formatModelRef({ name, version })), { name, version });
      }),
    );
    // Any string is either parsed into parts that format back to it, or refused as INVALID_ARGUMENT.
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        try {
          const ref = parseModelRef(text);
          assert.equal(formatModelRef(ref), text);
        } catch (err) {
          assert.ok(err instanceof InvalidArgumentError, String(err));
        }
      }),
    );
  });
});

describe('routing a request to the served version', () => {
  const served = { modelId: 'tiny-mistral', version: { name: 'tiny', version: 'v2' } };

  test('empty, the model id, NAME and NAME@VERSION route to the served version', () => {
    for (const requested of ['', 'tiny-mistral', 'tiny', 'tiny@v2']) assert.deepEqual(routeModel(requested, served), served.version, requested);
  });

  test('another version or name is NOT_FOUND naming what is served; a malformed one INVALID_ARGUMENT', () => {
    for (const requested of ['tiny@v1', 'other', 'other@v2']) {
      assert.throws(() => routeModel(requested, served), (err: unknown) => err instanceof NotFoundError && /serves "tiny@v2"/.test(err.message), requested);
    }
    for (const requested of ['tiny@', 'ti ny', 'a@b@c']) assert.throws(() => routeModel(requested, served), InvalidArgumentError, requested);
  });

  test('without a registered version only the model id routes, and no version is named', () => {
    const plain = { modelId: 'tiny-mistral' };
    assert.equal(routeModel('', plain), undefined);
    assert.equal(routeModel('tiny-mistral', plain), undefined);
    assert.throws(() => routeModel('tiny-mistral@v1', plain), NotFoundError);
    assert.throws(() => routeModel('tiny', plain), NotFoundError);
  });
});
