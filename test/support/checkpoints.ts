/**
 * Test helpers for checkpoints: where the reference fixtures live, their reference outputs
 * (typed), temporary directories that are removed after the test, and copies of a fixture broken
 * in one specific way each, for the loader's error paths.
 *
 * Tests run from dist/test/..., so paths are resolved from the repository root (the nearest
 * directory above this file holding package.json), never from the working directory.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, open, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import type { TokenRoute } from '../../common/engine/moe-routing';
import { CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from '../../common/model/checkpoint';
import { rewriteCheckpoint } from '../../common/model/rewrite';
import { maxAbsDiff } from './pipeline';

/**
 * Awaits `p`, asserts (with assert.rejects) that it rejects with an instance of `type`, and
 * returns the error so the caller can check its message. Fails the test if `p` resolves.
 */
export async function rejection<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  let caught: unknown;
  await assert.rejects(
    p.catch((err: unknown) => {
      caught = err;
      throw err;
    }),
    type,
  );
  return caught as E;
}

export type FixtureName = 'tiny-mistral' | 'tiny-mixtral';

let cachedRoot: string | undefined;
export function repoRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return (cachedRoot = dir);
    if (dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

export function fixtureDir(name: FixtureName): string {
  return join(repoRoot(), 'test', 'fixtures', name);
}

/** One greedy decoding step of the reference run. */
export interface ReferenceStep {
  readonly token: number;
  readonly top5_ids: readonly number[];
  readonly top5_logits: readonly number[];
  /** Best minus second-best logit. */
  readonly margin: number;
  readonly logsumexp: number;
}

export interface ReferenceRouterLayer {
  /** [seq][numExperts], computed from the MoE block input. */
  readonly router_logits: readonly (readonly number[])[];
  /** [seq][expertsPerToken] */
  readonly topk_experts: readonly (readonly number[])[];
  /** [seq][expertsPerToken], summing to 1 per position. */
  readonly topk_weights_normalized: readonly (readonly number[])[];
}

export interface ReferenceCase {
  /** null where the ids are synthetic. */
  readonly prompt_text: string | null;
  readonly prompt_ids: readonly number[];
  /** Cache-free greedy decoding. */
  readonly greedy_tokens: readonly number[];
  /** model.generate with a KV cache: identical to greedy_tokens. */
  readonly hf_generate_tokens: readonly number[];
  /** [vocab]: the logits that choose greedy_tokens[0]. */
  readonly last_prompt_logits: readonly number[];
  readonly steps: readonly ReferenceStep[];
  /** Case 0 only. values: [numLayers + 1][seq][hidden]; 0 is the embedding output, i the output of layer i - 1. */
  readonly hidden_states?: { readonly note: string; readonly values: readonly (readonly (readonly number[])[])[] };
  /** Case 0 of Mixtral only; one entry per layer. */
  readonly router?: { readonly note: string; readonly layers: readonly ReferenceRouterLayer[] };
}

export interface Reference {
  readonly generator: string;
  /** The same content as the fixture's config.json. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly cases: readonly ReferenceCase[];
}

const references = new Map<FixtureName, Reference>();

/** The fixture's reference.json (parsed once per process), checked for the fields tests rely on. */
export function loadReference(name: FixtureName): Reference {
  const cached = references.get(name);
  if (cached !== undefined) return cached;
  const path = join(fixtureDir(name), 'reference.json');
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Reference;
  if (!Array.isArray(parsed.cases) || parsed.cases.length === 0) throw new Error(`${path}: no cases`);
  for (const [i, c] of parsed.cases.entries()) {
    if (!Array.isArray(c.prompt_ids) || !Array.isArray(c.greedy_tokens) || !Array.isArray(c.last_prompt_logits) || !Array.isArray(c.steps)) {
      throw new Error(`${path}: case ${i} lacks prompt_ids, greedy_tokens, last_prompt_logits or steps`);
    }
  }
  references.set(name, parsed);
  return parsed;
}

/**
 * Asserts that the routes a stage reported through onRoute (by layer) for a case's prompt are the
 * reference router's: the same top-k experts at every layer and position, weights within 1e-5.
 */
export function assertReferenceRoutes(routed: ReadonlyMap<number, readonly TokenRoute[]>, c: ReferenceCase): void {
  const layers = c.router!.layers;
  assert.equal(routed.size, layers.length);
  layers.forEach((expected, layer) => {
    const routes = routed.get(layer)!;
    assert.equal(routes.length, c.prompt_ids.length);
    routes.forEach((r, pos) => {
      assert.deepEqual([...r.experts], expected.topk_experts[pos], `layer ${layer} position ${pos} experts`);
      assert.ok(maxAbsDiff(r.weights, expected.topk_weights_normalized[pos]) < 1e-5, `layer ${layer} position ${pos} weights`);
    });
  });
}

export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

/** A fresh directory under the OS temp dir; the caller removes it (for suite-level hooks). */
export async function makeTempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `bora-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A fresh directory removed when test `t` ends, pass or fail. */
export async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  t.after(() => dir.remove());
  return dir.path;
}

/** A plain copy of a fixture (config.json and model.safetensors) in a temp dir. */
export async function copyFixture(t: TestContext, name: FixtureName): Promise<string> {
  const dir = await tempDir(t, name);
  for (const file of [CONFIG_FILE, SINGLE_FILE]) await copyFile(join(fixtureDir(name), file), join(dir, file));
  return dir;
}

// ---- config.json ----

/** A fixture copy whose config.json has been edited (e.g. a key deleted or changed). */
export async function withConfig(t: TestContext, name: FixtureName, edit: (json: Record<string, unknown>) => void): Promise<string> {
  const dir = await copyFixture(t, name);
  const json = JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(join(dir, CONFIG_FILE), JSON.stringify(json, null, 2));
  return dir;
}

/** A fixture copy whose config.json is replaced by `text` (e.g. not JSON at all). */
export async function withConfigText(t: TestContext, name: FixtureName, text: string): Promise<string> {
  const dir = await copyFixture(t, name);
  await writeFile(join(dir, CONFIG_FILE), text);
  return dir;
}

// ---- the safetensors header ----

interface RawHeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}
type RawHeader = Record<string, RawHeaderEntry>;

/**
 * Rewrites model.safetensors of a fixture copy with an edited header and the data section
 * unchanged. data_offsets are relative to the data section, so they stay valid whatever the new
 * header's length.
 */
async function editHeader(t: TestContext, name: FixtureName, edit: (header: RawHeader) => void): Promise<string> {
  const dir = await copyFixture(t, name);
  const path = join(dir, SINGLE_FILE);
  const file = await readFile(path);
  const headerBytes = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerBytes).toString('utf8')) as RawHeader;
  edit(header);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(body.length), 0);
  await writeFile(path, Buffer.concat([length, body, file.subarray(8 + headerBytes)]));
  return dir;
}

function entryOf(header: RawHeader, tensor: string): RawHeaderEntry {
  const entry = header[tensor];
  if (entry === undefined || tensor === '__metadata__') throw new Error(`no tensor ${tensor} in the fixture`);
  return entry;
}

/** A fixture copy whose header no longer lists `tensor`. */
export function withoutTensor(t: TestContext, name: FixtureName, tensor: string): Promise<string> {
  return editHeader(t, name, (header) => {
    entryOf(header, tensor);
    delete header[tensor];
  });
}

/**
 * A fixture copy in which `tensor` claims `shape`. The shape must have the same element count, so
 * the header stays self-consistent and only a reader that checks shapes against the config notices.
 */
export function withTensorShape(t: TestContext, name: FixtureName, tensor: string, shape: readonly number[]): Promise<string> {
  return editHeader(t, name, (header) => {
    const entry = entryOf(header, tensor);
    const count = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
    if (count(shape) !== count(entry.shape)) throw new Error(`shape [${shape.join(', ')}] changes the element count of ${tensor}`);
    entry.shape = [...shape];
  });
}

/** A fixture copy in which `tensor` is stored as `dtype` (e.g. "I8", "F8_E4M3"); offsets unchanged. */
export function withTensorDtype(t: TestContext, name: FixtureName, tensor: string, dtype: string): Promise<string> {
  return editHeader(t, name, (header) => {
    entryOf(header, tensor).dtype = dtype;
  });
}

// ---- the file itself ----

/** A fixture copy whose model.safetensors lost its last `missingBytes` bytes. */
export async function truncatedCopy(t: TestContext, name: FixtureName, missingBytes = 4096): Promise<string> {
  const dir = await copyFixture(t, name);
  const path = join(dir, SINGLE_FILE);
  await truncate(path, (await stat(path)).size - missingBytes);
  return dir;
}

/** A fixture copy whose 8-byte header length field holds `headerBytes`. */
export async function withHeaderLength(t: TestContext, name: FixtureName, headerBytes: bigint): Promise<string> {
  const dir = await copyFixture(t, name);
  const handle = await open(join(dir, SINGLE_FILE), 'r+');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(headerBytes, 0);
    await handle.write(length, 0, 8, 0);
  } finally {
    await handle.close();
  }
  return dir;
}

// ---- sharded checkpoints ----

/** The fixture rewritten, still bf16, as shards of at most `maxShardBytes` (several, for the fixtures). */
export async function shardedCopy(t: TestContext, name: FixtureName, maxShardBytes = 2 * 1024 * 1024): Promise<string> {
  const dir = await tempDir(t, `${name}-sharded`);
  const written = await rewriteCheckpoint(fixtureDir(name), dir, { dtype: 'bf16', maxShardBytes });
  if (!written.files.includes(INDEX_FILE)) throw new Error(`maxShardBytes ${maxShardBytes} did not shard ${name}`);
  return dir;
}

/** A sharded copy whose model.safetensors.index.json is replaced by `text`. */
export async function withIndexText(t: TestContext, name: FixtureName, text: string): Promise<string> {
  const dir = await shardedCopy(t, name);
  await writeFile(join(dir, INDEX_FILE), text);
  return dir;
}

/** A sharded copy with one shard file deleted; the index still lists it. */
export async function withMissingShard(t: TestContext, name: FixtureName): Promise<{ dir: string; missingShard: string }> {
  const dir = await shardedCopy(t, name);
  const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
  const shards = [...new Set(Object.values(index.weight_map))].sort();
  const missingShard = shards[shards.length - 1];
  await unlink(join(dir, missingShard));
  return { dir, missingShard };
}
