/**
 * Every instantiation of the kernels is right, not only the widest this machine has: the linear
 * kernel tests (float and quantized weights) run again in child processes with BORA_KERNELS_ISA=avx2
 * and =generic.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { nativeKernels } from '../../../common/kernels/native-kernels';
import { nativeSkip } from '../../support/kernels';

describe('kernel instruction sets', { skip: nativeSkip }, () => {
  for (const isa of ['avx2', 'generic']) {
    test(`the linear kernel tests pass with BORA_KERNELS_ISA=${isa}`, () => {
      // Without NODE_TEST_CONTEXT the child's test runner prints its own report instead of
      // streaming results to this one.
      const { NODE_TEST_CONTEXT: _, ...parentEnv } = process.env;
      const env = { ...parentEnv, BORA_KERNELS_ISA: isa };
      const reported = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(join(__dirname, '../../../common/kernels/native-kernels.js'))}).nativeKernels().isa())`], { env, encoding: 'utf8' });
      assert.equal(reported.status, 0, reported.stderr);
      // A CPU without AVX2 falls back to generic; one with it must use what was asked for.
      if (isa === 'generic' || nativeKernels()!.isa() !== 'generic') assert.equal(reported.stdout, isa);
      for (const file of ['linear.test.js', 'quant-linear.test.js']) {
        const run = spawnSync(process.execPath, ['--test', join(__dirname, file)], { env, encoding: 'utf8' });
        assert.equal(run.status, 0, `${isa} ${file}: ${run.stdout.slice(-2000)}${run.stderr.slice(-1000)}`);
        assert.match(run.stdout, /# fail 0/);
        assert.doesNotMatch(run.stdout, /# pass 0\b/);
      }
    });
  }
});
