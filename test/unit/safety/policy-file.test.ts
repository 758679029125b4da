/**
 * The policy file: a good one compiles with its defaults; each kind of bad one is refused with an
 * error naming the file and the rule; `bora coordinator` stops at start on a bad one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { loadPolicyFile, parsePolicy, rulesFor } from '../../../coordinator/safety/policy-file';
import { holdBackChars } from '../../../coordinator/safety/rules';
import { fixtureDir, makeTempDir } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';

const GOOD = {
  rules: [
    { id: 'codenames', kind: 'deny', phrases: ['project falcon', 'x9'], action: 'block' },
    { id: 'card', kind: 'regex', pattern: '\\b\\d{4}(?:[ -]?\\d{4}){3}\\b', maxMatchChars: 19, action: 'redact', stages: ['output'], replacement: '****' },
  ],
};

describe('safety policy file', () => {
  test('a good policy compiles with its defaults and states its hold-back', () => {
    const policy = parsePolicy(JSON.stringify(GOOD));
    assert.deepEqual(policy.rules.map((r) => r.spec.id), ['codenames', 'card']);
    const deny = policy.rules[0]!.spec;
    assert.equal(deny.kind === 'deny' && deny.caseSensitive, false);
    assert.deepEqual(deny.stages, ['prompt', 'output']);
    assert.equal(deny.replacement, '[redacted]');
    assert.deepEqual(rulesFor(policy, 'prompt').map((r) => r.spec.id), ['codenames']);
    // "project falcon" is 14 code units: 13 can wait; the card pattern: 19 + 1 for \b, so 19.
    assert.equal(holdBackChars(rulesFor(policy, 'prompt')), 13);
    assert.equal(holdBackChars(rulesFor(policy, 'output')), 19);
  });

  const bad: [string, unknown, RegExp][] = [
    ['not JSON', '{"rules": [', /not valid JSON/],
    ['no rules list', {}, /"rules" must be a list/],
    ['an unknown top-level field', { rules: [], extra: 1 }, /unknown top-level field "extra"/],
    ['an unknown rule field', { rules: [{ id: 'a', kind: 'deny', phrases: ['x'], action: 'block', pattern: 'x' }] }, /rule "a": unknown field "pattern"/],
    ['a bad action', { rules: [{ id: 'a', kind: 'deny', phrases: ['x'], action: 'drop' }] }, /rule "a": "action" must be "block" or "redact"/],
    ['a bad kind', { rules: [{ id: 'a', kind: 'words', action: 'block' }] }, /rule "a": "kind" must be/],
    ['an empty phrase', { rules: [{ id: 'a', kind: 'deny', phrases: [''], action: 'block' }] }, /rule "a": a phrase is empty/],
    ['an unbounded regex', { rules: [{ id: 'r', kind: 'regex', pattern: 'a.*b', maxMatchChars: 10, action: 'block' }] }, /rule "r": .*"\*" is unbounded/],
    ['a regex longer than it says', { rules: [{ id: 'r', kind: 'regex', pattern: 'a{1,20}', maxMatchChars: 10, action: 'block' }] }, /rule "r": .*can match 20 characters, more than its maxMatchChars 10/],
    ['a regex with no maxMatchChars', { rules: [{ id: 'r', kind: 'regex', pattern: 'ab', action: 'block' }] }, /rule "r": "maxMatchChars" must be/],
    ['a regex matching empty text', { rules: [{ id: 'r', kind: 'regex', pattern: 'a?', maxMatchChars: 1, action: 'block' }] }, /rule "r": .*can match empty text/],
    ['a g flag', { rules: [{ id: 'r', kind: 'regex', pattern: 'ab', flags: 'g', maxMatchChars: 2, action: 'block' }] }, /rule "r": flags must be some of i, m, s, u/],
    ['a duplicate id', { rules: [GOOD.rules[0], GOOD.rules[0]] }, /rule "codenames": the id is used twice/],
    ['bad stages', { rules: [{ id: 'a', kind: 'deny', phrases: ['x'], action: 'block', stages: ['input'] }] }, /rule "a": "stages" must be/],
  ];
  for (const [what, doc, message] of bad) {
    test(`refuses ${what}, naming the file`, async () => {
      const dir = await makeTempDir('policy');
      try {
        const path = join(dir.path, 'policy.json');
        writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
        assert.throws(
          () => loadPolicyFile(path),
          (err: unknown) => err instanceof InvalidArgumentError && err.message.startsWith(`safety policy ${path}: `) && message.test(err.message),
        );
      } finally {
        await dir.remove();
      }
    });
  }

  test('bora coordinator stops at start on a malformed policy, naming the file', async () => {
    const dir = await makeTempDir('policy');
    try {
      const path = join(dir.path, 'broken.json');
      writeFileSync(path, JSON.stringify({ rules: [{ id: 'r', kind: 'regex', pattern: '(ab)+', maxMatchChars: 8, action: 'block' }] }));
      const args = ['coordinator', '--etcd', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--model', fixtureDir('tiny-mistral'), '--insecure', '--safety-policy', path];
      const result = spawnSync(process.execPath, [boraBin(), ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BORA_CHECK_ARGS: '1' } });
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, new RegExp(`safety policy ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: rule "r": .*"\\+" is unbounded`));
      const ok = join(dir.path, 'ok.json');
      writeFileSync(ok, JSON.stringify(GOOD));
      const fine = spawnSync(process.execPath, [boraBin(), ...args.slice(0, -1), ok], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BORA_CHECK_ARGS: '1' } });
      assert.equal(fine.status, 0, fine.stderr);
      const noUrl = spawnSync(process.execPath, [boraBin(), ...args.slice(0, -2), '--safety-fail', 'closed'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BORA_CHECK_ARGS: '1' } });
      assert.match(noUrl.stderr, /--safety-timeout-ms and --safety-fail need --safety-url/);
    } finally {
      await dir.remove();
    }
  });
});
