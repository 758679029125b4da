/**
 * S11 (issue 9): a rogue node on a secure cluster. While the 16 standard streams run, a process on
 * the cluster's bridge (rogue.ts) tries, at least once each and with every credential it may
 * hold, to register in etcd, forge Forward frames of the live epoch into the first and a middle
 * stage, subscribe to the last stage's Results, drain a worker and fetch the weights.
 *
 * Passing means nothing it tried worked, and that the refusals were of the right kind: at the TLS
 * handshake where a port requires a cluster certificate (no handler runs, so only etcd's own log
 * and the client's error show them), UNAUTHENTICATED / PERMISSION_DENIED from a handler otherwise,
 * each with its audit line on the node that refused. Its effects are looked for as well: a member
 * key for it in the etcd log, a plan change, a sequence left cached on a stage by a forged frame.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdKeys } from '../../common/cluster/etcd-keys';
import { workerId } from '../../common/ids';
import { epochAt } from '../measures';
import { attemptViolations, auditRefusals, describeAttempt, missingAuditLines, type RogueAttempt } from '../refusals';
import { makeRogueCredentials, Rogue, ROGUE_ID } from '../rogue';
import { criterion, noViolations, type Criterion, type Extra, type ScenarioContext } from '../scenario';
import { defineScenario, onceToMidGeneration, stageWorker, waitUntil } from './helpers';

/** How long the stages get, after the streams end, to free every sequence (the coordinator releases them). */
const SEQUENCES_FREED_WAIT_MS = 10_000;

/** Each worker's cached sequence count in its latest Status sample after `afterMs` (undefined: none yet). */
function sequencesAfter(ctx: ScenarioContext, afterMs: number): Map<string, number | undefined> {
  const out = new Map<string, number | undefined>(ctx.cluster.workerNames().map((w) => [w, undefined]));
  for (const s of ctx.observer.workers) if (s.atMs > afterMs && s.reply !== undefined) out.set(s.worker, s.reply.sequences);
  return out;
}

function summarize(attempts: readonly RogueAttempt[]): string {
  const byCode = new Map<string, number>();
  for (const a of attempts) byCode.set(a.outcome.code, (byCode.get(a.outcome.code) ?? 0) + 1);
  const handshake = attempts.filter((a) => a.expected === 'handshake').length;
  const handlers = attempts.filter((a) => a.expected !== 'handshake' && a.audit !== undefined).length;
  const rbac = attempts.length - handshake - handlers;
  return `${attempts.length} attempts: ${handshake} refused at the TLS handshake, ${handlers} by a Bora handler, ${rbac} by etcd RBAC; codes ${[...byCode].map(([c, n]) => `${c} x${n}`).join(', ')}`;
}

function auditCriterion(ctx: ScenarioContext, attempts: readonly RogueAttempt[]): Criterion {
  const byNode = new Map<string, Map<string, number>>();
  for (const node of [...ctx.cluster.coordinatorNames(), ...ctx.cluster.workerNames()]) {
    const file = ctx.cluster.auditLog(node);
    byNode.set(node, existsSync(file) ? auditRefusals(readFileSync(file, 'utf8')) : new Map());
  }
  const etcdLog = ctx.cluster.logFile('etcd');
  const rejectedConnections = existsSync(etcdLog) ? readFileSync(etcdLog, 'utf8').split('\n').filter((l) => /rejected connection/i.test(l)).length : 0;
  const handled = attempts.filter((a) => a.audit !== undefined && a.expected !== 'handshake');
  const handshakes = attempts.filter((a) => a.expected === 'handshake').length;
  const seen = [...byNode].flatMap(([node, m]) => [...m].map(([what, n]) => `${node} ${what} x${n}`)).join(', ');
  return noViolations(
    'every handler refusal has its audit line on the refusing node',
    missingAuditLines(attempts, byNode),
    `${handled.length} handler refusals, audited: ${seen || 'none'}; the ${handshakes} handshake refusals never reach a handler, so Bora cannot audit them (etcd logged ${rejectedConnections} rejected connection(s); the rogue's client saw UNAVAILABLE)`,
  );
}

export const S11 = defineScenario({
  id: 'S11',
  title: 'A rogue node (no certificate, another CA\'s, a client\'s) tries to register, forge frames, read results, drain and fetch weights while 16 streams run',
  passWhen: 'every attempt refused (at the handshake, or UNAUTHENTICATED / PERMISSION_DENIED by a handler, audited); outputs identical; no rogue member key, no plan change, no sequence left on a stage',
  topology: { workers: 3, coordinators: 1, secure: true },
  async run(ctx) {
    const { cluster } = ctx;
    const rogue = new Rogue(cluster, await makeRogueCredentials(cluster, join(cluster.runDir, 'rogue')), ctx.env.hiddenSize);
    const first = await stageWorker(ctx, 0);
    const middle = await stageWorker(ctx, 'middle');
    const last = await stageWorker(ctx, Number.MAX_SAFE_INTEGER);
    const epoch = first.status.planEpoch;
    const leader = (await cluster.leaderStatus())?.name ?? cluster.coordinatorNames()[0];

    const load = ctx.workload();
    const { done } = await onceToMidGeneration(ctx, load);
    const attackAtMs = ctx.timeline.record('fault', `rogue at ${cluster.harnessAddress} starts (plan epoch ${epoch})`).atMs;
    for (const presented of ['none', 'foreign', 'client'] as const) await rogue.registerInEtcd(presented);
    for (const stage of first.name === middle.name ? [first] : [first, middle]) {
      for (const presented of ['none', 'foreign', 'client'] as const) await rogue.forgeForward(stage.name, stage.stageIndex, epoch, presented);
    }
    for (const presented of ['none', 'foreign', 'client'] as const) await rogue.subscribeResults(last.name, epoch, presented);
    await rogue.drain(leader, middle.name, 'TLS, no API key', rogue.clientApiAccess('no key'), 'UNAUTHENTICATED');
    await rogue.drain(leader, middle.name, 'foreign-CA certificate, no API key', rogue.clientApiAccess('foreign certificate, no key'), 'UNAUTHENTICATED');
    await rogue.drain(leader, middle.name, 'client API key', rogue.clientApiAccess('client key'), 'PERMISSION_DENIED');
    // The coordinator's port takes TLS without a client certificate (the client API), so these reach WeightSource's own check.
    await rogue.fetchTensor(leader, 'none', 'UNAUTHENTICATED');
    await rogue.fetchTensor(leader, 'foreign', 'UNAUTHENTICATED');
    await rogue.fetchTensor(leader, 'client', 'PERMISSION_DENIED');
    const attackEndMs = ctx.timeline.record('heal', `rogue done: ${rogue.attempts.length} attempts`).atMs;
    const records = await done;
    // (An attempt's tokens join the records when it ends: counted now, not during the attack.)
    const tokensDuringAttack = load.arrivalTimesMs().filter((t) => t >= attackAtMs && t <= attackEndMs).length;
    const streamsEndMs = ctx.timeline.nowMs();
    await waitUntil(ctx, SEQUENCES_FREED_WAIT_MS, () => [...sequencesAfter(ctx, streamsEndMs).values()].every((n) => n === 0));
    const left = sequencesAfter(ctx, streamsEndMs);

    const attempts = rogue.attempts;
    writeFileSync(join(cluster.runDir, 'rogue-attempts.json'), JSON.stringify(attempts, null, 1));
    const memberKey = new EtcdKeys().member(workerId(ROGUE_ID));
    const admin = cluster.etcdClient();
    const stored = await admin.get(memberKey).string().finally(() => admin.close());
    const rogueEvents = ctx.observer.etcd.filter((e) => e.key.includes(ROGUE_ID));
    const epochAfter = epochAt(ctx.observer.etcd, ctx.timeline.nowMs());
    const leftOver = [...left].filter(([, n]) => n !== 0);

    const extra: Extra = { attempts: attempts.length, planEpoch: epoch, attackMs: Math.round(attackEndMs - attackAtMs), tokensDuringAttack };
    attempts.forEach((a, i) => (extra[`attempt${String(i + 1).padStart(2, '0')}`] = describeAttempt(a)));
    return {
      records,
      criteria: [
        noViolations('every rogue attempt refused, where and how expected', attemptViolations(attempts), summarize(attempts)),
        auditCriterion(ctx, attempts),
        criterion(
          'no member key for the rogue, ever',
          stored === null && rogueEvents.length === 0,
          stored === null && rogueEvents.length === 0 ? `${memberKey} absent from etcd and from every change the watch saw` : `stored: ${stored}; events: ${rogueEvents.map((e) => `${e.type} ${e.key}`).join(', ')}`,
        ),
        criterion('no plan change (the rogue neither joined nor drained anyone)', epochAfter === ctx.epochBefore, `plan epoch ${ctx.epochBefore} before, ${epochAfter} after`),
        criterion(
          'forged frames left nothing on the stages',
          leftOver.length === 0 && attempts.every((a) => a.outcome.code !== 'OK'),
          leftOver.length === 0 ? `every worker back to 0 cached sequences after the streams ended (${[...left].map(([w, n]) => `${w}: ${n}`).join(', ')})` : `still cached: ${leftOver.map(([w, n]) => `${w}: ${n ?? 'no Status'}`).join(', ')}`,
        ),
      ],
      extra,
    };
  },
});
