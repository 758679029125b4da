/**
 * A real etcd serving TLS with mandatory client certificates, for the security integration tests:
 * its own PKI directory (CA, etcd server certificate), free loopback ports, a temporary data dir.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { freePort } from '../../cli/processes';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { tlsHealthy } from '../../cli/local-etcd';
import { etcdTlsClientOptions, etcdTlsFlags } from '../../common/security/etcd-tls';
import type { CertFiles } from '../../common/security/pki-files';
import { ETCD_INSTALL_HINT, findEtcdBinary } from './etcd';
import { type TestPki, testPki } from './security';

const START_TIMEOUT_MS = 15_000;

export interface TlsEtcd {
  readonly url: string;
  readonly pki: TestPki;
  /** A client presenting `files` (default: none of its own beyond what is given). */
  client(files: CertFiles): Etcd3;
  stop(): Promise<void>;
}

export async function startTlsEtcd(): Promise<TlsEtcd> {
  const binary = findEtcdBinary();
  if (binary === undefined) throw new Error(ETCD_INSTALL_HINT);
  const pki = await testPki();
  const serverFiles = await pki.issue('etcd', 'e1');
  const probeFiles = await pki.issue('admin', 'probe');
  const clientPort = await freePort();
  const peerPort = await freePort(); // never clientPort: freePort hands each port out once
  const url = `https://127.0.0.1:${clientPort}`;
  const args = [
    ...etcdTlsFlags({ name: 'bora-tls-test', dataDir: join(pki.dir, 'etcd-data'), clientUrl: url, peerUrl: `https://127.0.0.1:${peerPort}`, files: serverFiles }),
    '--logger', 'zap',
    '--log-level', 'error',
  ];
  let stderrTail = '';
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.on('exit', killOnExit);
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderrTail = (stderrTail + chunk).slice(-4_000)));
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    pki.remove();
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited during start (code ${child.exitCode}): ${stderrTail}`);
    }
    if (await tlsHealthy(url, probeFiles)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`TLS etcd did not become healthy at ${url}: ${stderrTail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    pki,
    client: (files) => new Etcd3(etcdTlsClientOptions({ hosts: url }, files)),
    stop,
  };
}
