/**
 * Reading and checking the Kubernetes manifests of deploy/k8s/ for the unit tests: every YAML
 * document of every file, each validated against the Kubernetes OpenAPI schemas that
 * kubernetes-models ships (one class per apiVersion and kind; `validate()` throws on a schema
 * error: a wrong type, a missing required field, a value outside an enum or a quantity format),
 * and the few helpers the invariant checks need (quantities, container args, env references).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './checkpoints';

export const K8S_DIR = join(repoRoot(), 'deploy', 'k8s');
/** Not a Kubernetes object: kustomize's own file, checked on its own. */
export const KUSTOMIZATION = 'kustomization.yaml';

/** One parsed YAML document and where it came from. */
export interface Manifest {
  readonly file: string;
  readonly index: number;
  /** The object as parsed: the tests read into it freely, the schemas say what it holds. */
  readonly doc: any;
}

/** Every *.yaml / *.yml under `dir`, recursively, relative to it, sorted. */
export function yamlFiles(dir: string = K8S_DIR): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(name)) out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

/** Parses every document of `text`; a YAML error or warning throws, naming `file`. */
export function parseDocuments(text: string, file: string): unknown[] {
  return parseAllDocuments(text).map((d, i) => {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length > 0) throw new Error(`${file} document ${i}: ${problems.map((p) => p.message).join('; ')}`);
    return d.toJS() as unknown;
  });
}

/** Every Kubernetes object under deploy/k8s (the kustomization excluded), in file order. */
export function loadManifests(dir: string = K8S_DIR): Manifest[] {
  return yamlFiles(dir)
    .filter((f) => f !== KUSTOMIZATION)
    .flatMap((file) => parseDocuments(readFileSync(join(dir, file), 'utf8'), file).map((doc, index) => ({ file, index, doc })));
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

/**
 * Validates one object against its kind's schema; throws on a schema error, and on an
 * apiVersion or kind that kubernetes-models does not know (a document is never skipped).
 */
export async function validateObject(doc: unknown): Promise<void> {
  if (doc === null || typeof doc !== 'object') throw new Error('a Kubernetes object must be a mapping');
  const { apiVersion, kind } = doc as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new Error('apiVersion and kind are required');
  if (!/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) throw new Error(`unknown apiVersion ${apiVersion}`);
  let module: Record<string, unknown>;
  try {
    module = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, unknown>;
  } catch {
    throw new Error(`kubernetes-models has no schemas for apiVersion ${apiVersion}`);
  }
  const Model = module[kind];
  if (typeof Model !== 'function') throw new Error(`kubernetes-models has no ${kind} in ${apiVersion}`);
  new (Model as ModelClass)(doc).validate();
}

/** A Kubernetes quantity ("8Gi", "512Mi", "500m", "4") as a number (bytes, or cores). */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$/.exec(q);
  if (m === null) throw new Error(`not a quantity: ${q}`);
  const scale: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12, m: 1e-3 };
  return Number(m[1]) * (m[2] === undefined ? 1 : scale[m[2]]);
}

/** The value after `flag` in argv. */
export function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}

/** Kubernetes' $(VAR) references in a string. */
export function envReferences(value: string): string[] {
  return [...value.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1]);
}
