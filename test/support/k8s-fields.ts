/**
 * Unknown fields in Kubernetes objects: the OpenAPI validators of kubernetes-models accept extra
 * keys (a misspelt `readinesProbe` passes them and is dropped by the API server, or refused by
 * its strict field validation), but the package's TypeScript types name every field. So each
 * object is type-checked as an object literal of its kind's interface (`IStatefulSet`, ...) with
 * the TypeScript compiler, in memory: an excess property anywhere in it is an error. TypeScript
 * reports the first one of each object, which is enough to fail and to name it.
 */
import { join } from 'node:path';
import * as ts from 'typescript';
import { repoRoot } from './checkpoints';

export interface FieldError {
  /** Index of the object in the list given. */
  readonly index: number;
  readonly message: string;
}

const OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  module: ts.ModuleKind.Node16,
  moduleResolution: ts.ModuleResolutionKind.Node16,
  target: ts.ScriptTarget.ES2022,
  skipLibCheck: true,
  types: [],
  // Not the default libraries of the target, which include the DOM's (most of the compile time).
  lib: ['lib.es2022.d.ts'],
};

/** Type-checks each object against `I<kind>` of kubernetes-models/<apiVersion>/<kind>. */
export function unknownFieldErrors(objects: readonly { apiVersion: string; kind: string }[]): FieldError[] {
  // Virtual .mts files beside node_modules, so that the package's exports resolve as for an import.
  const sources = new Map(
    objects.map((o, index) => [
      join(repoRoot(), `__k8s_fields_${index}.mts`),
      `import type { I${o.kind} } from 'kubernetes-models/${o.apiVersion}/${o.kind}';\nexport const object: I${o.kind} = ${JSON.stringify(o)};\n`,
    ]),
  );
  const host = ts.createCompilerHost(OPTIONS);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, language, ...rest) => {
    const text = sources.get(name);
    return text === undefined ? getSourceFile(name, language, ...rest) : ts.createSourceFile(name, text, language);
  };
  host.fileExists = (name) => sources.has(name) || fileExists(name);
  const program = ts.createProgram([...sources.keys()], OPTIONS, host);
  const files = [...sources.keys()];
  return ts.getPreEmitDiagnostics(program).map((d) => ({
    index: d.file === undefined ? -1 : files.indexOf(d.file.fileName),
    message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
  }));
}
