/**
 * A worker's check of the weights it loads for a plan that names a registered version
 * (`plan.modelVersion`, common/models/): its own copy's weight files are hashed (streamed, the
 * event loop stays free) and compared with the registry record before anything is loaded; tensors
 * fetched from the coordinator's weight service are compared one by one, as they arrive, with the
 * record's tensor digests (worker/remote-weights.ts). On a mismatch the plan is refused with an
 * error naming the file (or tensor), and the worker reports it in the registry, which marks the
 * version failed.
 *
 * A local copy is hashed once per path and registered digests; a file changed after that is not
 * noticed until the worker restarts.
 */
import { CheckpointError, asBoraError } from '../common/errors';
import type { WorkerId } from '../common/ids';
import type { Plan } from '../common/cluster/plan';
import type { ModelRegistry } from '../common/models/model-registry';
import { parseModelRef } from '../common/models/model-ref';
import { digestMismatchError, digestMismatchOf, findDigestMismatch, type DigestMismatch } from '../common/models/weight-digests';
import type { WeightSourceSpec } from './engine-protocol';

export class VersionCheck {
  /** (path, the record's file digests) pairs whose files matched: a version removed and
   * registered again with other files is checked again. */
  private readonly verified = new Set<string>();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly workerId: WorkerId,
    private readonly log: (message: string) => void,
  ) {}

  /**
   * The source to load `plan` from: `spec` itself once a local copy matched the record, or a
   * remote spec carrying the record's tensor digests. Throws (after reporting) on a mismatch,
   * NOT_FOUND when the version is not registered.
   */
  async check(plan: Plan, spec: WeightSourceSpec): Promise<WeightSourceSpec> {
    const ref = plan.modelVersion;
    if (ref === undefined) return spec;
    const record = await this.registry.require(parseModelRef(ref));
    if (spec.kind === 'remote') return { ...spec, expectedDigests: { ref, tensors: record.tensors } };
    const verifiedKey = JSON.stringify([spec.dir, record.files]);
    if (this.verified.has(verifiedKey)) return spec;
    const started = performance.now();
    const mismatch = await findDigestMismatch(spec.dir, record);
    if (mismatch !== undefined) {
      await this.report(ref, mismatch);
      throw digestMismatchError(mismatch, ref);
    }
    const seconds = (performance.now() - started) / 1000;
    const bytes = record.files.reduce((sum, f) => sum + f.sizeBytes, 0);
    this.log(`verified ${record.files.length} weight file(s) of ${ref} in ${spec.dir} (${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s)`);
    this.verified.add(verifiedKey);
    return spec;
  }

  /** After a plan failed to load: reports the failure when it was a digest mismatch of a fetched tensor. */
  async onLoadFailed(plan: Plan, err: unknown): Promise<void> {
    const ref = plan.modelVersion;
    const mismatch = digestMismatchOf(err);
    if (ref === undefined || mismatch === undefined || !(err instanceof CheckpointError) || err.tensor === undefined) return;
    await this.report(ref, mismatch);
  }

  private async report(ref: string, mismatch: DigestMismatch): Promise<void> {
    this.log(`refusing ${ref}: ${mismatch.file} has SHA-256 ${mismatch.actualSha256}, the registry records ${mismatch.expectedSha256}`);
    try {
      await this.registry.reportFailure(this.workerId, { worker: this.workerId, ref, file: mismatch.file, expectedSha256: mismatch.expectedSha256, actualSha256: mismatch.actualSha256, at: new Date().toISOString() });
    } catch (err) {
      this.log(`could not mark ${ref} failed in the registry: ${asBoraError(err).message}`);
    }
  }
}
