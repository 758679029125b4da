/**
 * The game day CI runs, through the chaos harness in short mode, each scenario on its own cluster
 * in network namespaces: SCENARIOS below. The harness is run as its own process (it needs root,
 * owns the bchaos-* namespaces and cleans them up on any exit) and its report.json is checked:
 * every scenario passed. A skip is accepted only for a scenario this machine cannot run, as this
 * test's own capability probe says (the same probe the harness makes, repeated here so that a
 * harness that skipped wrongly is caught), and never in CI: CI runs as root on a kernel with tc
 * clsact/u32/mirred, tbf, ifb and `ss -K`, where every scenario S0-S12 and E1 runs (S5 and S6
 * without sch_netem: a fault proxy and packet filters, see chaos/README.md).
 *
 * Which scenarios, and why: all of them. Short-mode wall time per scenario (oracle + cluster
 * start + fault-free run + faulted run + teardown), one run of all 14 on the 2-core dev machine
 * at load average ~20 from other work (2026-12-07, `node dist/chaos/main.js --short`): S0 50 s,
 * S1 45, S2 55, S3 60, S4 47, S5 82 (failed early; up to ~220 when its streams run to their
 * 180 s deadline), S6 209, S7 100, S8 38, S9 46, S10 52 (aborted; ~130 with its 60 s of faults),
 * E1 87, S11 115, S12 67: 1053 s, about 18 minutes, 22 at worst. With S5/S6's product fixes
 * (2026-12-08, load average 20-27): 952 s (S5 79 s, S6 76, S10 116; chaos/README.md). CI ran ~10 minutes before
 * (a 3-5 minute game day of 8 scenarios), so the whole CI stays near 25 minutes of its 90 on
 * 2 cores, with room for a 3x slower machine. Dropping any scenario would save at most ~3
 * minutes and leave a fault class (soak, one-way cut, delay, loss, slow link, random faults)
 * unchecked by CI, so none is dropped.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { probeCapabilities } from '../../../chaos/capabilities';
import type { Report } from '../../../chaos/report';
import type { ScenarioResult } from '../../../chaos/runner';
import { scenarioById } from '../../../chaos/scenarios';

const SCENARIOS = ['S0', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9', 'S10', 'E1', 'S11', 'S12'] as const;
const HARNESS_TIMEOUT_MS = 30 * 60_000;
/** S10 and S12 may fail some requests by design (S12 refuses most); the others must complete every one. */
const PARTIAL = new Set<string>(['S10', 'S12']);
const MAIN_JS = join(__dirname, '..', '..', '..', 'chaos', 'main.js');
const IN_CI = process.env.CI === 'true';

function explain(r: ScenarioResult): string {
  const failed = r.criteria.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`);
  return [`${r.id} ${r.status}: ${r.reason ?? ''}`, ...failed, 'evidence:', ...r.evidence.slice(-20)].join('\n');
}

describe(`chaos game day (short): ${SCENARIOS.join(', ')}`, { timeout: HARNESS_TIMEOUT_MS + 60_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'bora-chaos-'));
  let report: Report;
  let exitCode: number | null = null;
  let stderr = '';

  before(async () => {
    await new Promise<void>((resolve) => {
      execFile(process.execPath, [MAIN_JS, '--scenarios', SCENARIOS.join(','), '--short', '--out', out], { timeout: HARNESS_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, errText) => {
        exitCode = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        stderr = errText;
        resolve();
      });
    });
    const file = join(out, 'report.json');
    assert.ok(existsSync(file), `the harness wrote no report (exit ${exitCode}):\n${stderr.slice(-4000)}`);
    report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  });

  after(() => rmSync(out, { recursive: true, force: true }));

  test('the report covers exactly the scenarios asked for, and the exit status agrees with it', () => {
    assert.deepEqual(report.results.map((r) => r.id), [...SCENARIOS]);
    const anyFailed = report.results.some((r) => r.status === 'fail');
    assert.equal(exitCode, anyFailed ? 1 : 0, stderr.slice(-2000));
  });

  for (const id of SCENARIOS) {
    test(`${id} passes; it is skipped only where this machine cannot run it (never in CI)`, () => {
      const r = report.results.find((x) => x.id === id)!;
      if (r.status === 'skipped') {
        assert.ok(!IN_CI, `${id} was skipped in CI (CI runs as root, every scenario is supported there): ${r.reason}`);
        // This test's own probe, not the harness's word: a scenario the machine supports must run.
        const why = scenarioById(id).unsupported(probeCapabilities());
        assert.notEqual(why, undefined, `${id} was skipped ("${r.reason}") but this machine supports it`);
        assert.equal(r.reason, scenarioById(id).unsupported(report.capabilityProbe), 'the skip gives the probe\'s reason');
        assert.equal(r.measures, null);
        return;
      }
      assert.equal(r.status, 'pass', explain(r));
      assert.ok(r.criteria.length >= 4 && r.criteria.every((c) => c.pass), explain(r));
      assert.ok(r.criteria.some((c) => c.name === 'the fault-free cluster run is identical to the in-process oracle' && c.pass), `${id} compared with the oracle`);
      const m = r.measures!;
      assert.equal(m.outputsIdentical, true);
      if (!PARTIAL.has(id)) assert.equal(m.completed, m.requests);
      assert.ok(m.requests >= 16, `${m.requests} requests`);
    });
  }

  test('S11 recorded every rogue attempt, each refused; S12 admitted some and refused the rest', () => {
    for (const r of report.results.filter((x) => x.status === 'pass')) {
      if (r.id === 'S11') {
        assert.ok(Number(r.extra.attempts) >= 18, `S11 made ${r.extra.attempts} attempts`);
        const outcomes = Object.entries(r.extra).filter(([k]) => k.startsWith('attempt') && k !== 'attempts');
        assert.equal(outcomes.length, Number(r.extra.attempts));
        for (const [, text] of outcomes) assert.match(String(text), /-> (UNAVAILABLE|UNAUTHENTICATED|PERMISSION_DENIED): /);
      }
      if (r.id === 'S12') {
        assert.equal(r.measures!.requests, 60);
        assert.ok(Number(r.extra.admitted) >= 4 && Number(r.extra.refused) > 0, JSON.stringify(r.extra));
        assert.equal(r.measures!.reshards, 0);
      }
    }
  });

  test('S1 and S9 measured their detection and recovery; S8 resharded nothing', () => {
    for (const r of report.results.filter((x) => x.status === 'pass')) {
      if (r.id === 'S1' || r.id === 'S9') {
        assert.ok(r.measures!.detectionMs !== null && r.measures!.detectionMs > 0, `${r.id} detection ${r.measures!.detectionMs}`);
        assert.ok(r.measures!.recoveryMs !== null && r.measures!.recoveryMs > 0, `${r.id} recovery ${r.measures!.recoveryMs}`);
      }
      if (r.id === 'S8') assert.equal(r.measures!.reshards, 0);
    }
  });

  test('the network faults were applied: S5 delayed every link, S6 dropped, duplicated and reordered packets, S7 held the link at its limit, S10 applied every kind', () => {
    for (const r of report.results.filter((x) => x.status === 'pass')) {
      const passed = (prefix: string): boolean => r.criteria.some((c) => c.name.startsWith(prefix) && c.pass);
      if (r.id === 'S5') {
        assert.ok(passed('the delay was applied on every link'), explain(r));
        assert.equal(r.measures!.reshards, 0);
      }
      if (r.id === 'S6') {
        if (r.extra.injection === 'packet-faults') assert.ok(Number(r.extra.loss) > 0 && Number(r.extra.duplicate) > 0 && Number(r.extra.reorder) > 0, JSON.stringify(r.extra));
        assert.ok(Number(r.extra.resetConnections) > 0, JSON.stringify(r.extra));
        assert.equal(r.measures!.reshards, 0);
      }
      if (r.id === 'S7') assert.ok(passed('the rate limit slowed the link') && passed('the rate limit held the link'), explain(r));
      if (r.id === 'S10') assert.ok(passed('every fault kind was applied') && passed('every fault recovered within its bound'), explain(r));
    }
  });
});
