/**
 * The Kubernetes manifests (deploy/k8s/), as far as a machine without a cluster can test them:
 * - every YAML document of every file validates against the Kubernetes schemas of its apiVersion
 *   and kind (kubernetes-models), and the count of documents is checked against the files' text,
 *   so none is skipped; the validator itself rejects broken documents;
 * - every `bora` container's args are accepted by the CLI (BORA_CHECK_ARGS=1: the real flag
 *   parsers and checks, with the certificates of make-secrets.sh, run here), for the first and
 *   the last pod the StatefulSets and the autoscaler can make, so a renamed flag fails here;
 * - what the manifests must agree on: the workers' memory limit against --memory-bytes, the
 *   grace period against --drain-timeout-ms, probes and scrape annotations on the metrics port,
 *   certificates valid for the names the nodes advertise, the autoscaler's metrics against the
 *   adapter rules and the metrics Bora exports, maxReplicas against the worker certificates and
 *   etcd users; the example scrape configuration's relabelling, applied to a worker pod.
 * - no object has a field its kind does not define (the schemas accept extra keys, so the
 *   TypeScript types of kubernetes-models are checked too: k8s-fields.ts);
 * Not checked here (no cluster, no Docker): that the objects apply to a live API server, the
 * image build, and the adapter and Prometheus at run time.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';
import {
  K8S_DIR,
  KUSTOMIZATION,
  envReferences,
  flagValue,
  loadManifests,
  parseDocuments,
  parseQuantity,
  validateObject,
  yamlFiles,
  type Manifest,
} from '../../support/k8s-manifests';
import { unknownFieldErrors } from '../../support/k8s-fields';

const manifests = loadManifests();
const NAMESPACE = 'bora';
const GiB = 2 ** 30;
/** What a worker needs beyond --memory-bytes: Node.js, gRPC buffers, the engine threads. */
const WORKER_RUNTIME_BYTES = GiB;
/** How long a worker may take to stop after its drain ends or times out. */
const STOP_MARGIN_MS = 30_000;

function find(kind: string, name: string): Manifest['doc'] {
  const m = manifests.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  assert.ok(m !== undefined, `${kind}/${name} in deploy/k8s`);
  return m.doc;
}

const id = (m: Manifest): string => `${m.doc.kind}/${m.doc.metadata?.name} (${m.file} #${m.index})`;
const container = (workload: Manifest['doc'], name: string) => {
  const c = workload.spec.template.spec.containers.find((x: { name: string }) => x.name === name);
  assert.ok(c !== undefined, `container ${name}`);
  return c;
};
const clone = <T>(value: T): T => structuredClone(value);

interface Relabel {
  readonly source_labels?: string[];
  readonly action?: 'keep' | 'replace';
  readonly regex?: string;
  readonly replacement?: string;
  readonly target_label?: string;
}

/** Prometheus' `keep` and `replace` relabelling (anchored regex, `;`-joined sources); undefined: dropped. */
function relabel(labels: Record<string, string>, rules: readonly Relabel[]): Record<string, string> | undefined {
  const out = { ...labels };
  for (const rule of rules) {
    const value = (rule.source_labels ?? []).map((l) => out[l] ?? '').join(';');
    const match = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`).exec(value);
    if ((rule.action ?? 'replace') === 'keep') {
      if (match === null) return undefined;
      continue;
    }
    if (match === null || rule.target_label === undefined) continue;
    out[rule.target_label] = (rule.replacement ?? '$1').replace(/\$(\d)/g, (_, n: string) => match[Number(n)] ?? '');
  }
  return out;
}

describe('deploy/k8s against the Kubernetes schemas', () => {
  test('every document of every manifest validates against its kind\'s schema', async () => {
    // Counted from the text, independently of the YAML parser: each object has one top-level `kind:`.
    const files = yamlFiles().filter((f) => f !== KUSTOMIZATION);
    const kinds = files.reduce((n, f) => n + [...readFileSync(join(K8S_DIR, f), 'utf8').matchAll(/^kind: /gm)].length, 0);
    assert.equal(manifests.length, kinds, 'every document was parsed');
    assert.deepEqual(
      manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort(),
      [
        'ConfigMap/bora-prometheus',
        'ConfigMap/bora-prometheus-adapter',
        'HorizontalPodAutoscaler/bora-worker',
        'Job/bora-etcd-rbac',
        'Namespace/bora',
        'PersistentVolumeClaim/bora-models',
        'PodDisruptionBudget/bora-coordinator',
        'PodDisruptionBudget/bora-etcd',
        'PodDisruptionBudget/bora-worker',
        'Service/bora-api',
        'Service/bora-coordinator',
        'Service/bora-etcd',
        'Service/bora-etcd-client',
        'Service/bora-worker',
        'StatefulSet/bora-coordinator',
        'StatefulSet/bora-etcd',
        'StatefulSet/bora-worker',
      ],
    );
    let validated = 0;
    for (const m of manifests) {
      await assert.doesNotReject(validateObject(m.doc), id(m));
      validated++;
    }
    assert.equal(validated, 17);
  });

  test('the validator rejects broken documents', async () => {
    const workers = find('StatefulSet', 'bora-worker');
    const wrongType = clone(workers);
    wrongType.spec.replicas = 'three';
    await assert.rejects(validateObject(wrongType), /replicas must be integer/);
    const badQuantity = clone(workers);
    container(badQuantity, 'worker').resources.limits.memory = '8 GB';
    await assert.rejects(validateObject(badQuantity), /limits\/memory/);
    const noTemplate = clone(workers);
    delete noTemplate.spec.template;
    await assert.rejects(validateObject(noTemplate), /template/);
    const badEnum = clone(workers);
    badEnum.spec.podManagementPolicy = 'AllAtOnce';
    await assert.rejects(validateObject(badEnum), /allowed values/);
    await assert.rejects(validateObject({ ...clone(workers), kind: 'StatefulSett' }), /no StatefulSett in apps\/v1/);
    await assert.rejects(validateObject({ ...clone(workers), apiVersion: 'apps/v9' }), /no schemas for apiVersion apps\/v9/);
    await assert.rejects(validateObject(parseDocuments('kind: Service\n', 'inline')[0]), /apiVersion and kind are required/);
  });

  /** Broken copies of the workers' StatefulSet, for the field check to find. */
  function brokenWorkers(): Manifest['doc'][] {
    const workers = find('StatefulSet', 'bora-worker');
    const typo = clone(workers);
    const c = container(typo, 'worker');
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const top = clone(workers);
    top.spec.replica = 3;
    const wrongType = clone(workers);
    wrongType.spec.template.spec.terminationGracePeriodSeconds = '300';
    return [typo, top, wrongType];
  }

  test('no document has a field its kind does not define (the schemas accept extra keys; the types do not), and the check finds one', () => {
    // One compile for all: the manifests, then the broken copies.
    const errors = unknownFieldErrors([...manifests.map((m) => m.doc), ...brokenWorkers()]);
    const ofManifests = errors.filter((e) => e.index < manifests.length);
    assert.deepEqual(ofManifests.map((e) => `${e.index < 0 ? '?' : id(manifests[e.index])}: ${e.message}`), []);
    const ofBroken = errors.filter((e) => e.index >= manifests.length);
    assert.deepEqual(ofBroken.map((e) => e.index - manifests.length), [0, 1, 2], ofBroken.map((e) => e.message).join('\n'));
    assert.match(ofBroken[0].message, /'"?readinesProbe"?' does not exist in type 'IContainer'/);
    assert.match(ofBroken[1].message, /'"?replica"?' does not exist/);
    assert.match(ofBroken[2].message, /string' is not assignable to type 'number/);
  });

  test('the kustomization lists every manifest of deploy/k8s (monitoring/ goes elsewhere)', () => {
    const k = parseYaml(readFileSync(join(K8S_DIR, KUSTOMIZATION), 'utf8')) as { kind: string; resources: string[] };
    assert.equal(k.kind, 'Kustomization');
    const topLevel = yamlFiles().filter((f) => f !== KUSTOMIZATION && !f.includes('/'));
    assert.deepEqual([...k.resources].sort(), topLevel);
    for (const m of manifests.filter((x) => !x.file.startsWith('monitoring/'))) {
      if (m.doc.kind !== 'Namespace') assert.equal(m.doc.metadata.namespace, NAMESPACE, id(m));
    }
  });
});

describe('deploy/k8s against Bora', () => {
  let dir: string;
  let secrets: Map<string, Map<string, Buffer>>;
  const secretFile = (secret: string, key: string): Buffer => {
    const file = secrets.get(secret)?.get(key);
    assert.ok(file !== undefined, `Secret ${secret} holds ${key}`);
    return file;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bora-k8s-'));
    // The Secrets exactly as an operator makes them (APPLY=0: the files and secrets.yaml, no kubectl).
    const run = spawnSync('sh', [join(K8S_DIR, 'make-secrets.sh')], {
      cwd: repoRoot(),
      env: { ...process.env, BORA: `${process.execPath} ${boraBin()}`, OUT: join(dir, 'pki'), APPLY: '0' },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    secrets = new Map();
    for (const doc of parseDocuments(readFileSync(join(dir, 'pki', 'secrets.yaml'), 'utf8'), 'secrets.yaml') as Manifest['doc'][]) {
      if (doc === null) continue;
      secrets.set(doc.metadata.name, new Map(Object.entries(doc.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')])));
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('make-secrets.sh makes valid Secrets for every secret volume, and keeps the CA key out of them', async () => {
    const docs = (parseDocuments(readFileSync(join(dir, 'pki', 'secrets.yaml'), 'utf8'), 'secrets.yaml') as Manifest['doc'][]).filter((d) => d !== null);
    assert.equal(docs.length, 5);
    for (const doc of docs) await validateObject(doc);
    const wanted = manifests
      .flatMap((m) => (m.doc.spec?.template?.spec?.volumes ?? []) as { secret?: { secretName: string } }[])
      .flatMap((v) => (v.secret === undefined ? [] : [v.secret.secretName]));
    assert.deepEqual([...new Set(wanted)].sort(), [...secrets.keys()].sort());
    for (const [name, files] of secrets) assert.ok(!files.has('ca-key.pem'), `${name} holds no CA key`);
  });

  /** Every Bora container: its workload, its pods' names, and its args with $(POD_NAME) replaced. */
  function boraPods(): { what: string; workload: Manifest['doc']; argv: string[]; pod: string }[] {
    const hpa = find('HorizontalPodAutoscaler', 'bora-worker');
    const out: { what: string; workload: Manifest['doc']; argv: string[]; pod: string }[] = [];
    for (const m of manifests) {
      const spec = m.doc.spec?.template?.spec;
      if (spec === undefined) continue;
      for (const c of spec.containers as { image: string; name: string; args?: string[]; env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] }[]) {
        if (!c.image.startsWith('bora:')) continue;
        const args = c.args ?? [];
        const refs = new Set(args.flatMap(envReferences));
        for (const ref of refs) {
          assert.equal(ref, 'POD_NAME', `${id(m)}: only $(POD_NAME) is used`);
          assert.equal(c.env?.find((e) => e.name === ref)?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', `${id(m)}: POD_NAME is the pod's name`);
        }
        const name = m.doc.metadata.name as string;
        const scaled = hpa.spec.scaleTargetRef.kind === m.doc.kind && hpa.spec.scaleTargetRef.name === name;
        const count = m.doc.kind === 'StatefulSet' ? (scaled ? hpa.spec.maxReplicas : m.doc.spec.replicas) : 1;
        // The first and the last pod (every pod's certificate is checked by the autoscaler test).
        for (const i of [...new Set([0, count - 1])]) {
          const pod = m.doc.kind === 'StatefulSet' ? `${name}-${i}` : name;
          out.push({ what: `${id(m)} pod ${pod}`, workload: m.doc, pod, argv: args.map((a) => a.replaceAll('$(POD_NAME)', pod)) });
        }
      }
    }
    return out;
  }

  /** argv with each secret mount's path pointed at that Secret's files, written out here. */
  function localArgs(workload: Manifest['doc'], argv: readonly string[]): string[] {
    const spec = workload.spec.template.spec;
    let out = [...argv];
    for (const c of spec.containers) {
      for (const mount of c.volumeMounts ?? []) {
        const volume = spec.volumes.find((v: { name: string }) => v.name === mount.name);
        if (volume?.secret === undefined) continue;
        const local = join(dir, 'mounts', volume.secret.secretName);
        for (const [key, bytes] of secrets.get(volume.secret.secretName) ?? []) {
          spawnSync('mkdir', ['-p', local]);
          writeFileSync(join(local, key), bytes);
        }
        out = out.map((a) => (a.startsWith(`${mount.mountPath}/`) ? `${local}/${a.slice(mount.mountPath.length + 1)}` : a));
      }
    }
    return out;
  }

  const checkArgs = (argv: readonly string[]) =>
    spawnSync(process.execPath, [boraBin(), ...argv], { env: { ...process.env, BORA_CHECK_ARGS: '1' }, encoding: 'utf8', timeout: 60_000 });

  test('every bora container\'s args are accepted by the CLI, for the first and the last pod the StatefulSets and the autoscaler can make', () => {
    const pods = boraPods();
    assert.deepEqual([...new Set(pods.map((p) => p.argv[0]))].sort(), ['coordinator', 'etcd-rbac', 'worker']);
    assert.deepEqual(pods.filter((p) => p.argv[0] === 'worker').map((p) => p.pod), ['bora-worker-0', `bora-worker-${find('HorizontalPodAutoscaler', 'bora-worker').spec.maxReplicas - 1}`]);
    for (const p of pods) {
      const run = checkArgs(localArgs(p.workload, p.argv));
      assert.equal(run.status, 0, `${p.what}: ${run.stderr}`);
    }
  });

  test('a renamed or mistyped flag would fail that check', () => {
    const worker = boraPods().find((p) => p.argv[0] === 'worker')!;
    const renamed = localArgs(worker.workload, worker.argv).map((a) => (a === '--drain-timeout-ms' ? '--drain-timeout' : a));
    const run = checkArgs(renamed);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /Unknown option '--drain-timeout'/);
    const badValue = localArgs(worker.workload, worker.argv).map((a, i, all) => (all[i - 1] === '--memory-bytes' ? '6GiB' : a));
    assert.equal(checkArgs(badValue).status, 2);
  });

  test('workers: the memory limit covers --memory-bytes and the runtime; --threads fits the CPU limit; requests = limits', () => {
    const workers = find('StatefulSet', 'bora-worker');
    const c = container(workers, 'worker');
    const memoryBytes = Number(flagValue(c.args, '--memory-bytes'));
    assert.ok(Number.isSafeInteger(memoryBytes) && memoryBytes > 0, 'a worker must be given --memory-bytes (its default is 80% of the host)');
    const limit = parseQuantity(c.resources.limits.memory);
    assert.ok(memoryBytes + WORKER_RUNTIME_BYTES <= limit, `--memory-bytes ${memoryBytes} + ${WORKER_RUNTIME_BYTES} runtime <= the ${c.resources.limits.memory} limit`);
    assert.ok(Number(flagValue(c.args, '--threads')) <= parseQuantity(c.resources.limits.cpu), '--threads <= the CPU limit');
    assert.deepEqual(c.resources.requests, c.resources.limits, 'Guaranteed QoS');
  });

  test('workers drain on stop: the preStop hook signals the worker (PID 1) and waits; the grace period covers the drain', () => {
    const workers = find('StatefulSet', 'bora-worker');
    const c = container(workers, 'worker');
    const hook = (c.lifecycle.preStop.exec.command as string[]).join(' ');
    assert.match(hook, /kill -TERM 1\b/);
    // It waits: the kubelet's own SIGTERM after the hook would be a second signal, which skips the drain.
    assert.match(hook, /while kill -0 1\b/);
    const drainMs = Number(flagValue(c.args, '--drain-timeout-ms'));
    assert.ok(drainMs > 0, 'the drain is on');
    assert.ok(workers.spec.template.spec.terminationGracePeriodSeconds * 1000 >= drainMs + STOP_MARGIN_MS, 'terminationGracePeriodSeconds >= --drain-timeout-ms + 30 s');
    assert.equal(workers.spec.podManagementPolicy, 'Parallel');
  });

  test('coordinators and workers: /readyz and /livez probes and the Prometheus annotations on the metrics port', () => {
    for (const [name, cname] of [['bora-coordinator', 'coordinator'], ['bora-worker', 'worker']] as const) {
      const set = find('StatefulSet', name);
      const c = container(set, cname);
      const port = Number(flagValue(c.args, '--metrics-port'));
      assert.ok(port > 0, name);
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port }, name);
      assert.deepEqual(c.livenessProbe.httpGet, { path: '/livez', port }, name);
      assert.ok(c.ports.some((p: { containerPort: number }) => p.containerPort === port), name);
      const annotations = set.spec.template.metadata.annotations;
      assert.equal(annotations['prometheus.io/scrape'], 'true', name);
      assert.equal(annotations['prometheus.io/port'], String(port), name);
      assert.equal(annotations['prometheus.io/path'], '/metrics', name);
    }
    assert.equal(find('StatefulSet', 'bora-coordinator').spec.replicas, 2, 'a leader and a standby');
  });

  test('each node advertises its pod\'s DNS name under a headless Service, and its certificate is valid for it', () => {
    const ca = secretFile('bora-worker-tls', 'ca.pem');
    for (const p of boraPods().filter((x) => x.argv[0] !== 'etcd-rbac')) {
      const service = p.workload.spec.serviceName as string;
      const advertised = flagValue(p.argv, '--advertise')!;
      const host = `${p.pod}.${service}.${NAMESPACE}.svc.cluster.local`;
      assert.equal(advertised.split(':')[0], host, p.what);
      const headless = find('Service', service);
      assert.equal(headless.spec.clusterIP, 'None', service);
      assert.equal(headless.spec.publishNotReadyAddresses, true, `${service}: peers dial nodes before they are ready`);
      const secret = p.argv[0] === 'worker' ? 'bora-worker-tls' : 'bora-coordinator-tls';
      const cert = new X509Certificate(secretFile(secret, `${p.argv[0]}-${p.pod}.pem`));
      assert.equal(cert.checkHost(host), host, `${p.what}: its certificate names ${host}`);
      assert.ok(cert.verify(new X509Certificate(ca).publicKey), `${p.what}: signed by the cluster CA`);
      const etcdHost = new URL(flagValue(p.argv, '--etcd')!).hostname;
      assert.equal(etcdHost, `bora-etcd-client.${NAMESPACE}.svc.cluster.local`);
    }
    const etcd = find('StatefulSet', 'bora-etcd');
    const etcdCert = new X509Certificate(secretFile('bora-etcd-tls', 'etcd-etcd.pem'));
    assert.ok(etcdCert.checkHost(`bora-etcd-client.${NAMESPACE}.svc.cluster.local`) !== undefined);
    const initial = (container(etcd, 'etcd').command as string[]).find((a) => a.startsWith('--initial-cluster='))!;
    const members = initial.slice('--initial-cluster='.length).split(',');
    assert.equal(members.length, etcd.spec.replicas);
    for (const [i, member] of members.entries()) {
      const host = `bora-etcd-${i}.bora-etcd.${NAMESPACE}.svc.cluster.local`;
      assert.equal(member, `bora-etcd-${i}=https://${host}:2380`);
      assert.equal(etcdCert.checkHost(host), host, `the etcd certificate names member ${i}`);
    }
  });

  test('the autoscaler scales the workers on the adapter\'s metrics, which Bora exports; maxReplicas = worker certificates = etcd users', () => {
    const hpa = find('HorizontalPodAutoscaler', 'bora-worker');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'bora-worker' });
    const adapter = parseYaml(find('ConfigMap', 'bora-prometheus-adapter').data['config.yaml']) as {
      rules: { seriesQuery: string; name: { as: string }; metricsQuery: string }[];
      externalRules: { seriesQuery: string; name: { as: string }; metricsQuery: string }[];
    };
    const pods = hpa.spec.metrics.filter((m: { type: string }) => m.type === 'Pods').map((m: { pods: { metric: { name: string } } }) => m.pods.metric.name);
    const external = hpa.spec.metrics.filter((m: { type: string }) => m.type === 'External').map((m: { external: { metric: { name: string } } }) => m.external.metric.name);
    assert.deepEqual(pods, adapter.rules.map((r) => r.name.as));
    assert.deepEqual(external, adapter.externalRules.map((r) => r.name.as));
    assert.ok(pods.length >= 1 && external.length >= 1);
    // Every series the rules read is one Bora's nodes export.
    const sources = ['coordinator/coordinator-metrics.ts', 'worker/worker-metrics.ts'].map((f) => readFileSync(join(repoRoot(), f), 'utf8')).join('\n');
    const series = [...adapter.rules, ...adapter.externalRules].flatMap((r) => [...`${r.seriesQuery} ${r.metricsQuery}`.matchAll(/\b(bora_[a-z_]+)\{/g)].map((m) => m[1]));
    assert.ok(series.length >= 3);
    for (const s of series) assert.ok(sources.includes(`name: '${s}'`), `${s} is a Bora metric`);

    const rbac = container(find('Job', 'bora-etcd-rbac'), 'etcd-rbac').args as string[];
    const workerIds = flagValue(rbac, '--workers')!.split(',');
    assert.deepEqual(workerIds, Array.from({ length: hpa.spec.maxReplicas }, (_, i) => `bora-worker-${i}`));
    const coordinators = find('StatefulSet', 'bora-coordinator').spec.replicas as number;
    assert.deepEqual(flagValue(rbac, '--coordinators')!.split(','), Array.from({ length: coordinators }, (_, i) => `bora-coordinator-${i}`));
    const workerCerts = [...secrets.get('bora-worker-tls')!.keys()].filter((k) => /^worker-.*(?<!-key)\.pem$/.test(k));
    assert.equal(workerCerts.length, hpa.spec.maxReplicas, 'make-secrets.sh issues a certificate for each worker the autoscaler may start');
  });

  test('PodDisruptionBudgets and Services select the pods they are for', () => {
    for (const name of ['bora-etcd', 'bora-coordinator', 'bora-worker']) {
      const labels = find('StatefulSet', name).spec.template.metadata.labels;
      assert.deepEqual(find('PodDisruptionBudget', name).spec.selector.matchLabels, { 'app.kubernetes.io/name': name });
      assert.equal(find('PodDisruptionBudget', name).spec.maxUnavailable, 1);
      assert.equal(labels['app.kubernetes.io/name'], name);
      assert.deepEqual(find('Service', name).spec.selector, { 'app.kubernetes.io/name': name });
    }
    assert.deepEqual(find('Service', 'bora-api').spec.selector, { 'app.kubernetes.io/name': 'bora-coordinator' });
  });

  test('the example scrape configuration keeps annotated pods, on their annotated port, with namespace and pod labels', () => {
    // Debian's promtool is built without Kubernetes service discovery (it refuses
    // kubernetes_sd_configs), so the relabelling is applied here to a worker pod's discovery labels.
    const config = parseYaml(find('ConfigMap', 'bora-prometheus').data['prometheus.yml']) as {
      scrape_configs: { kubernetes_sd_configs: { role: string; namespaces: { names: string[] } }[]; relabel_configs: Relabel[] }[];
    };
    const [job] = config.scrape_configs;
    assert.deepEqual(job.kubernetes_sd_configs, [{ role: 'pod', namespaces: { names: [NAMESPACE] } }]);
    const workers = find('StatefulSet', 'bora-worker').spec.template.metadata;
    const discovered = (annotations: Record<string, string>): Record<string, string> => ({
      __address__: '10.1.2.3:7100',
      __metrics_path__: '/metrics',
      __meta_kubernetes_namespace: NAMESPACE,
      __meta_kubernetes_pod_name: 'bora-worker-5',
      __meta_kubernetes_pod_label_app_kubernetes_io_name: workers.labels['app.kubernetes.io/name'],
      ...Object.fromEntries(Object.entries(annotations).map(([k, v]) => [`__meta_kubernetes_pod_annotation_${k.replace(/[^a-zA-Z0-9]/g, '_')}`, v])),
    });
    const target = relabel(discovered(workers.annotations), job.relabel_configs);
    assert.ok(target !== undefined, 'the worker pod is scraped');
    assert.equal(target.__address__, `10.1.2.3:${workers.annotations['prometheus.io/port']}`);
    assert.equal(target.__metrics_path__, '/metrics');
    assert.equal(target.namespace, NAMESPACE);
    assert.equal(target.pod, 'bora-worker-5');
    assert.equal(relabel(discovered({}), job.relabel_configs), undefined, 'a pod without the annotation is not scraped');
  });
});
