/**
 * Whether `bora worker` and `bora coordinator` accept the security flags `bora up` passes in secure
 * mode (--ca/--cert/--key/--audit-log, and --api-keys for the coordinator), checked the way the
 * deployment test checks command lines: BORA_CHECK_ARGS=1 parses and validates, then stops.
 *
 * Tests of a whole secure cluster skip with the returned reason while the flags are missing (they
 * are wired by another change); everything else about a secure `up` is tested without nodes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addApiKey } from '../../common/security/api-keys-file';
import { createCa, issueCertificate } from '../../common/security/pki';
import { writeCaFiles, writeIssuedFiles } from '../../common/security/pki-files';
import { boraBin } from './cluster';

let cached: Promise<string | undefined> | undefined;

function accepted(argv: readonly string[]): string | undefined {
  const result = spawnSync(process.execPath, [boraBin(), ...argv], { env: { ...process.env, BORA_CHECK_ARGS: '1' }, encoding: 'utf8', timeout: 30_000 });
  return result.status === 0 ? undefined : `bora ${argv[0]} refuses its security flags (${result.stderr.trim().split('\n')[0]})`;
}

async function probe(): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'bora-flags-'));
  try {
    const ca = await createCa();
    writeCaFiles(dir, ca);
    const worker = writeIssuedFiles(dir, 'worker-w1', await issueCertificate(ca, { role: 'worker', id: 'w1' }));
    const coordinator = writeIssuedFiles(dir, 'coordinator-c1', await issueCertificate(ca, { role: 'coordinator', id: 'c1' }));
    const keys = join(dir, 'api-keys.json');
    addApiKey(keys, 'client');
    const audit = join(dir, 'audit.log');
    const etcd = 'https://127.0.0.1:2379';
    return (
      accepted(['worker', '--etcd', etcd, '--id', 'w1', '--listen', '127.0.0.1:0', '--ca', worker.ca, '--cert', worker.cert, '--key', worker.key, '--audit-log', audit]) ??
      accepted(['coordinator', '--etcd', etcd, '--listen', '127.0.0.1:0', '--model', dir, '--ca', coordinator.ca, '--cert', coordinator.cert, '--key', coordinator.key, '--api-keys', keys, '--audit-log', audit])
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** undefined when both node commands accept the flags, else why not (a skip reason). */
export function missingNodeSecurityFlags(): Promise<string | undefined> {
  cached ??= probe();
  return cached;
}
