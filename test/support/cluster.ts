/**
 * Local clusters for tests, started and stopped through the real CLI (`bora up` / `bora down`),
 * each process separate, with etcd from the machine (apt-get install -y etcd-server).
 *
 * These clusters are --insecure unless `extra` says --secure: the tests that use them are about
 * serving and failure, and the security tests (test/integration/security/) start secure ones. A
 * test that does start a secure one reaches it with `access` / `adminAccess`.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { ClusterFile } from '../../cli/cluster';
import { clusterAccess, readClusterFile } from '../../cli/cluster';
import type { CoordinatorAccess } from '../../cli/client-credentials';
import { generateRemote } from '../../cli/inference-client';
import { waitFor } from '../../cli/processes';
import type { GenerationEvent, GenerationRequest } from '../../common/generation/request';
import { makeTempDir, repoRoot } from './checkpoints';

const run = promisify(execFile);

export function boraBin(): string {
  return join(repoRoot(), 'dist', 'cli', 'bora.js');
}

/** Runs `bora ...args`; resolves with stdout, rejects with the exit code and stderr. */
export async function bora(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run(process.execPath, [boraBin(), ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface TestCluster {
  readonly stateDir: string;
  readonly file: ClusterFile;
  /** How to reach the coordinator as a client / as an admin (undefined: plaintext). */
  readonly access: CoordinatorAccess | undefined;
  readonly adminAccess: CoordinatorAccess | undefined;
  down(): Promise<void>;
}

export async function startCluster(t: TestContext | undefined, modelDir: string, workers: number, extra: readonly string[] = []): Promise<TestCluster> {
  const dir = await makeTempDir('cluster');
  const stateDir = dir.path;
  let stopped = false;
  const down = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await bora(['down', '--state-dir', stateDir]).catch(() => undefined);
    await dir.remove();
  };
  t?.after(down);
  const mode = extra.includes('--secure') || extra.includes('--insecure') ? [] : ['--insecure'];
  try {
    await bora(['up', '--model', modelDir, '--workers', String(workers), '--state-dir', stateDir, '--timeout-ms', '90000', ...mode, ...extra]);
  } catch (err) {
    // The state dir goes with `down`: keep the end of every process's log in the failure.
    const logs = logTails(stateDir);
    await down();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs}`, { cause: err });
  }
  const file = readClusterFile(stateDir);
  return { stateDir, file, access: clusterAccess(file, 'client'), adminAccess: clusterAccess(file, 'admin'), down };
}

/** The last lines of each *.log in `dir`, for a failure message. */
function logTails(dir: string, lines = 15): string {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  } catch {
    return '(no logs)';
  }
}

export interface Collected {
  readonly tokens: number[];
  readonly text: string;
  readonly finish: GenerationEvent & { type: 'finish' };
}

/** One request through the coordinator's gRPC API, collecting its events. */
export async function generateOn(coordinator: string, request: GenerationRequest, deadlineMs = 120_000, access?: CoordinatorAccess): Promise<Collected> {
  const tokens: number[] = [];
  let text = '';
  let finish: (GenerationEvent & { type: 'finish' }) | undefined;
  await generateRemote(
    coordinator,
    request,
    (event) => {
      if (event.type === 'token') tokens.push(event.tokenId);
      else finish = event;
      text += event.text;
    },
    deadlineMs,
    access,
  );
  if (finish === undefined) throw new Error('the stream ended without a finish event');
  return { tokens, text, finish };
}

export function greedyIds(ids: readonly number[], maxTokens: number): GenerationRequest {
  return { prompt: { kind: 'ids', ids }, maxTokens, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false };
}

/** One greedy stream a cluster test runs under a fault: the tokens so far, its resumes, its end. */
export interface GreedyStream {
  readonly tokens: number[];
  /** From the finish event; -1 until then. */
  resumes: number;
  finished: boolean;
  readonly done: Promise<void>;
}

/**
 * Starts one greedy stream of `maxTokens` per prompt on `addresses` (one coordinator, or several
 * comma-separated); each token must arrive at the index it claims (no lost or repeated token).
 */
export function startGreedyStreams(
  addresses: string,
  prompts: readonly (readonly number[])[],
  maxTokens: number,
  o: { readonly deadlineMs?: number; readonly access?: CoordinatorAccess } = {},
): GreedyStream[] {
  return prompts.map((p) => {
    const tokens: number[] = [];
    const stream: GreedyStream = {
      tokens,
      resumes: -1,
      finished: false,
      done: generateRemote(
        addresses,
        greedyIds(p, maxTokens),
        (e) => {
          if (e.type === 'token') {
            if (e.index !== tokens.length) throw new Error(`token index ${e.index} arrived after ${tokens.length} tokens: a lost or repeated token`);
            tokens.push(e.tokenId);
          } else stream.resumes = e.resumes;
        },
        o.deadlineMs ?? 120_000,
        o.access,
      ).then(() => {
        stream.finished = true;
      }),
    };
    return stream;
  });
}

/** Waits until every stream has at least `count` tokens. */
export async function untilStreamTokens(streams: readonly GreedyStream[], count: number): Promise<void> {
  await waitFor(`${count} tokens on every stream`, 60_000, async () => (streams.every((s) => s.tokens.length >= count) ? true : undefined), 5);
}
