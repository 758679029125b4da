/**
 * A private copy of the compiled product for one game day. The cluster's processes start (and
 * restart, minutes later in S10) from OUT/build, so a `tsc` run in the working tree meanwhile
 * cannot hand a restarted node half-rebuilt files: every node of a run runs the same build.
 *
 *   OUT/build/dist/...      copy of dist/ (without the tests and benches)
 *   OUT/build/proto/...     copy of proto/ (found by walking up from dist/common/wire)
 *   OUT/build/build/native  copy of the native kernels, when built (found the same way)
 *   OUT/build/node_modules  symlink to the repository's node_modules
 */
import { cpSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { ADDON } from '../common/kernels/native-kernels';

/** The repository root, seen from dist/chaos/. */
export const REPO_ROOT = join(__dirname, '..', '..');

/** Copies the build under `outDir`/build; returns the path of its bora.js. */
export function snapshotBuild(outDir: string): string {
  const root = join(outDir, 'build');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const dist = join(REPO_ROOT, 'dist');
  const skipped = [join(dist, 'test'), join(dist, 'bench'), join(dist, 'chaos')];
  cpSync(dist, join(root, 'dist'), { recursive: true, filter: (src) => !skipped.some((s) => src === s || src.startsWith(s + sep)) });
  cpSync(join(REPO_ROOT, 'proto'), join(root, 'proto'), { recursive: true });
  if (existsSync(join(REPO_ROOT, ADDON))) {
    mkdirSync(dirname(join(root, ADDON)), { recursive: true });
    cpSync(join(REPO_ROOT, ADDON), join(root, ADDON));
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
  const bora = join(root, 'dist', 'cli', 'bora.js');
  if (!existsSync(bora)) throw new Error(`${bora} is missing: build first (npx tsc -p .)`);
  return bora;
}
