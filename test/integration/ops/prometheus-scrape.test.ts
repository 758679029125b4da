/**
 * A real Prometheus (Debian's `prometheus` package, which CI installs) scrapes a `bora up` cluster
 * of tiny-mixtral (two workers, experts spread over them: stages, expert dispatch, KV caches) with the rule files of
 * deploy/prometheus/ loaded. After a few requests, every recording rule and every query of the
 * Grafana dashboard (deploy/grafana/bora.json) returns data, every rule evaluates without error,
 * and the throughput rule sees the tokens that were generated. A rule or panel that names a metric
 * Bora does not export (a renamed metric, a typo) fails here.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { freePort } from '../../../cli/processes';
import { fixtureDir, loadReference, makeTempDir, repoRoot } from '../../support/checkpoints';
import { generateOn, greedyIds, startCluster } from '../../support/cluster';

const SCRAPE_INTERVAL_S = 1;
const READY_TIMEOUT_MS = 60_000;

interface QueryResult {
  readonly status: string;
  readonly data?: { readonly resultType: string; readonly result: readonly { metric: Record<string, string>; value: [number, string] }[] };
  readonly error?: string;
}

interface RuleGroups {
  readonly data: { readonly groups: readonly { name: string; rules: readonly { name: string; health: string; lastError?: string }[] }[] };
}

function recordingRules(): string[] {
  const text = readFileSync(join(repoRoot(), 'deploy', 'prometheus', 'bora-rules.yml'), 'utf8');
  return [...text.matchAll(/^\s*- record: (\S+)$/gm)].map((m) => m[1]);
}

function dashboardQueries(): string[] {
  const dashboard = JSON.parse(readFileSync(join(repoRoot(), 'deploy', 'grafana', 'bora.json'), 'utf8')) as {
    panels: { type: string; targets?: { expr: string }[] }[];
  };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

async function query(base: string, expr: string): Promise<QueryResult> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as QueryResult;
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function startPrometheus(dir: string, port: number, targets: readonly string[]): ChildProcess {
  const rules = ['bora-rules.yml', 'bora-alerts.yml'].map((f) => join(repoRoot(), 'deploy', 'prometheus', f));
  const config = [
    'global:',
    `  scrape_interval: ${SCRAPE_INTERVAL_S}s`,
    `  evaluation_interval: ${SCRAPE_INTERVAL_S}s`,
    'rule_files:',
    ...rules.map((r) => `  - ${JSON.stringify(r)}`),
    'scrape_configs:',
    '  - job_name: bora',
    '    static_configs:',
    `      - targets: ${JSON.stringify(targets)}`,
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), `${config}\n`);
  const child = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.setEncoding('utf8');
  return child;
}

describe('Prometheus against a bora up cluster', () => {
  test('every recording rule and dashboard query returns data; every rule evaluates cleanly', async (t) => {
    const cluster = await startCluster(t, fixtureDir('tiny-mixtral'), 2, ['--placement', 'experts']);
    const metricsTargets = [cluster.file.coordinatorMetrics, ...cluster.file.workers.map((w) => w.metrics)].filter((m): m is string => m !== undefined);
    assert.equal(metricsTargets.length, 3, 'the coordinator and both workers publish /metrics in cluster.json');

    const dir = await makeTempDir('prometheus');
    t.after(() => dir.remove());
    const port = await freePort();
    const prometheus = startPrometheus(dir.path, port, metricsTargets);
    let stderr = '';
    prometheus.stderr?.on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<void>((resolve) => prometheus.once('exit', () => resolve()));
    prometheus.once('error', (err) => assert.fail(`prometheus cannot start (${err.message}): install Debian's prometheus package, as .ci/run does`));
    t.after(async () => {
      prometheus.kill('SIGTERM');
      await exited;
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`Prometheus to scrape all 3 targets up (stderr: ${stderr})`, async () => {
      const up = await query(base, 'sum(up{job="bora"})');
      return up.data?.result[0]?.value[1] === '3';
    });

    // Requests while Prometheus scrapes, so that the rate() windows see tokens and requests.
    const ref = loadReference('tiny-mixtral');
    let generated = 0;
    for (let round = 0; round < 3; round++) {
      const done = await Promise.all(ref.cases.map((c) => generateOn(cluster.file.coordinator, greedyIds(c.prompt_ids, 12), 120_000, cluster.access)));
      generated += done.reduce((n, d) => n + d.tokens.length, 0);
      await new Promise((r) => setTimeout(r, 1500));
    }
    assert.equal(generated, 3 * ref.cases.length * 12);
    await waitFor('the throughput rule to see the generated tokens', async () => {
      const total = await query(base, 'sum(bora_generated_tokens_total)');
      const rate = await query(base, 'bora:generated_tokens:rate5m');
      const errors = await query(base, 'bora:availability_errors:ratio_rate5m');
      return Number(total.data?.result[0]?.value[1]) === generated && Number(rate.data?.result[0]?.value[1]) > 0 && errors.data?.result.length === 1;
    });

    const empty: string[] = [];
    const exprs = [...recordingRules(), ...dashboardQueries()];
    assert.ok(exprs.length > 60, `${exprs.length} queries`);
    for (const expr of exprs) {
      const result = await query(base, expr);
      assert.equal(result.status, 'success', `${expr}: ${result.error}`);
      if ((result.data?.result.length ?? 0) === 0) empty.push(expr);
    }
    assert.deepEqual(empty, [], 'queries that returned no data');

    // The availability SLI saw only successes; time to first token has observations.
    const errors = await query(base, 'bora:availability_errors:ratio_rate5m');
    assert.equal(Number(errors.data?.result[0]?.value[1]), 0);
    const ttft = await query(base, 'bora:time_to_first_token_seconds:p95_rate5m');
    assert.ok(Number(ttft.data?.result[0]?.value[1]) > 0);

    const rules = (await (await fetch(`${base}/api/v1/rules`)).json()) as RuleGroups;
    const all = rules.data.groups.flatMap((g) => g.rules);
    assert.ok(all.length >= recordingRules().length + 10, `${all.length} rules loaded`);
    const unhealthy = all.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
    assert.deepEqual(unhealthy, []);
  });
});
