#!/usr/bin/env node
// Generates the TypeScript types of proto/bora/v1 and of grpc.health.v1 (messages, typed clients, server handlers) into
// common/wire/generated/ with @grpc/proto-loader's proto-loader-gen-types. Every npm script that
// runs tsc runs this first, so a change to a .proto that the code does not follow fails the build
// instead of surfacing as an undefined field at run time. The folder is rebuilt from scratch each
// time (a message removed from the protos must not linger) and is not committed.
//
// The options must match the loader's in common/wire/proto.ts: the types describe what that
// loader hands the code (camelCase fields, uint64 as number, enums as names, bytes as Buffer,
// defaults filled in, oneofs naming their set field).
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'proto');
const outDir = join(root, 'common', 'wire', 'generated');
const require = createRequire(import.meta.url);
const generator = join(dirname(require.resolve('@grpc/proto-loader/package.json')), 'build', 'bin', 'proto-loader-gen-types.js');
const protos = readdirSync(join(protoDir, 'bora', 'v1'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => `bora/v1/${f}`)
  .concat(['grpc/health/v1/health.proto']);

rmSync(outDir, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    generator,
    '--longs=Number',
    '--enums=String',
    '--bytes=Buffer',
    '--defaults',
    '--oneofs',
    '--includeComments',
    '--grpcLib=@grpc/grpc-js',
    `--includeDirs=proto`,
    `--outDir=${outDir}`,
    ...protos,
  ],
  { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
);
console.log(`gen-proto-types: ${protos.join(', ')} -> ${outDir.slice(root.length + 1)}/`);
