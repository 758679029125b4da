/**
 * The SLO rules in deploy/prometheus/ (recording rules and alerts) pass `promtool check rules`,
 * and their unit tests (deploy/prometheus/tests/*.test.yml: each recording rule computes what its
 * name says, each alert fires on its situation and stays quiet just below it) pass
 * `promtool test rules`. promtool comes with Debian's `prometheus` package, which CI installs
 * (.ci/run); without it this test fails and says so, rather than passing untested.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { repoRoot } from '../../support/checkpoints';

const DIR = join(repoRoot(), 'deploy', 'prometheus');
const RULE_FILES = ['bora-rules.yml', 'bora-alerts.yml'];

function promtool(args: readonly string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });
  if (run.error !== undefined) {
    assert.fail(`promtool cannot run (${run.error.message}): install Debian's prometheus package (apt-get install prometheus), as .ci/run does`);
  }
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('Prometheus rules (deploy/prometheus)', () => {
  test('promtool check rules accepts every rule file', () => {
    for (const file of RULE_FILES) {
      const { status, output } = promtool(['check', 'rules', file]);
      assert.equal(status, 0, output);
      assert.match(output, /SUCCESS: \d+ rules found/);
    }
  });

  test('promtool test rules passes every rule unit test', () => {
    const tests = readdirSync(join(DIR, 'tests')).filter((f) => f.endsWith('.test.yml'));
    assert.ok(tests.length >= 2, `rule tests found: ${tests.join(', ')}`);
    const { status, output } = promtool(['test', 'rules', ...tests.map((t) => join('tests', t))]);
    assert.equal(status, 0, output);
    assert.doesNotMatch(output, /FAILED/);
  });

  test('a broken rule fails the check (the check can fail)', () => {
    const { status } = promtool(['check', 'rules', join('tests', 'broken-rule.fixture.yml')]);
    assert.notEqual(status, 0);
  });
});
