/**
 * The SLO rules in deploy/prometheus/ (recording rules and alerts) pass `promtool check rules`,
 * and their unit tests (deploy/prometheus/tests/*.test.yml: each recording rule computes what its
 * name says, each alert fires on its situation and stays quiet just below it) pass
 * `promtool test rules`. promtool comes with Debian's `prometheus` package, which CI installs
 * (.ci/run); without it this test fails and says so, rather than passing untested.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
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

  test('every alert links a runbook page that says what it means, how to confirm it and what to do', () => {
    const doc = parse(readFileSync(join(DIR, 'bora-alerts.yml'), 'utf8')) as { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] };
    const alerts = doc.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
    assert.ok(alerts.length >= 16, `alerts found: ${alerts.length}`);
    for (const alert of alerts) {
      const url = alert.annotations?.runbook_url;
      assert.match(url ?? '', /^docs\/runbooks\/[a-z-]+\.md$/, `${alert.alert}: runbook_url ${url}`);
      const page = join(repoRoot(), url!);
      assert.ok(existsSync(page), `${alert.alert}: ${url} does not exist`);
      const text = readFileSync(page, 'utf8');
      for (const section of ['## What it means', '## How to confirm', '## What to do']) {
        assert.ok(text.includes(section), `${url} lacks "${section}"`);
      }
      assert.ok(text.includes(alert.alert!.replace(/(Fast|Medium|Slow|Chronic)$/, '')), `${url} does not name ${alert.alert}`);
    }
  });

  test('a broken rule fails the check (the check can fail)', () => {
    const { status } = promtool(['check', 'rules', join('tests', 'broken-rule.fixture.yml')]);
    assert.notEqual(status, 0);
  });
});
