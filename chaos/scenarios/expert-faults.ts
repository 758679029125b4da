/**
 * E1 (Bora's own, issue 5): experts spread over the workers (--placement experts), and a worker
 * that holds experts but no stage is SIGKILLed mid-generation. Stages send its experts' tokens to
 * the other copy in the same step; the lease expiry then brings a plan that restores two copies
 * of every expert. Every stream must complete identically to the fault-free run.
 */
import type { Plan } from '../../common/cluster/plan';
import { detectionMs, recoveryMs } from '../measures';
import { criterion, type Criterion, type ScenarioContext } from '../scenario';
import { defineScenario, ms, onceToMidGeneration, waitUntil } from './helpers';

/** Copies of every expert a plan must keep (the placement's rule: losing one worker loses none). */
const MIN_COPIES = 2;

/** The worker of the current plan that holds experts and serves no stage. */
function expertOnlyWorker(plan: Plan): string | undefined {
  const stageWorkers = new Set(plan.stages.flatMap((s) => s.workers));
  const holders = new Set((plan.experts ?? []).flatMap((e) => e.workers));
  return [...holders].sort().find((w) => !stageWorkers.has(w));
}

function latestPlan(ctx: ScenarioContext): Plan | undefined {
  const plans = ctx.observer.plans();
  return plans.size === 0 ? undefined : plans.get(Math.max(...plans.keys()));
}

/** Every expert of `plan` on at least MIN_COPIES workers, none of them `gone`. */
function copiesCriterion(plan: Plan | undefined, gone: string): Criterion {
  const thin = (plan?.experts ?? []).filter((e) => e.workers.length < MIN_COPIES || e.workers.includes(gone as never));
  const pass = plan !== undefined && (plan.experts?.length ?? 0) > 0 && thin.length === 0;
  const detail = plan === undefined ? 'no plan seen' : thin.length === 0 ? `plan ${plan.epoch}: every expert on ${MIN_COPIES}+ live workers` : `plan ${plan.epoch}: ${thin.map((e) => `L${e.layer}E${e.expert} on [${e.workers.join(', ')}]`).join('; ')}`;
  return criterion(`the next plan keeps ${MIN_COPIES} copies of every expert, none on the killed worker`, pass, detail);
}

export const E1 = defineScenario({
  id: 'E1',
  title: 'SIGKILL a worker that holds experts only (experts spread)',
  passWhen: 'all streams complete, byte-identical to the fault-free run; the next plan keeps two live copies of every expert; recovery within TTL + 2 s',
  topology: { workers: 4, coordinators: 1 },
  placement: 'experts',
  async run(ctx) {
    const before = latestPlan(ctx);
    const target = before === undefined ? undefined : expertOnlyWorker(before);
    if (before === undefined || target === undefined) {
      throw new Error(`E1 needs a worker holding experts and no stage; plan: ${JSON.stringify(before ?? null)}`);
    }
    const load = ctx.workload();
    const { done } = await onceToMidGeneration(ctx, load);
    const faultAtMs = ctx.faults.kill(target);
    const records = await done;
    await waitUntil(ctx, ctx.env.leaseTtlMs + 3000, () => detectionMs(ctx.observer.statuses, faultAtMs, ctx.epochBefore) !== undefined);
    const recovery = recoveryMs(load.arrivalTimesMs(), faultAtMs, Infinity);
    const recoveryBound = ctx.env.leaseTtlMs + 2000;
    return {
      records,
      faultAtMs,
      criteria: [
        copiesCriterion(latestPlan(ctx), target),
        criterion('recovery (fault -> next token after the longest stall) within TTL + 2 s', recovery !== undefined && recovery <= recoveryBound, `${ms(recovery)} (bound ${recoveryBound} ms)`),
      ],
      extra: { killed: target, killedExpertCopies: (before.experts ?? []).filter((e) => e.workers.includes(target as never)).length },
    };
  },
});
