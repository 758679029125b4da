/**
 * The chaos scenarios' headers, as the runner reads them: the cluster each runs on, its client
 * policy, whether every stream must complete, the capabilities it needs and its requests. Most
 * take the common header (defineScenario); the table pins where each one differs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Capabilities, Capability } from '../../../chaos/capabilities';
import type { ChaosEnv } from '../../../chaos/scenario';
import { SCENARIOS } from '../../../chaos/scenarios';

const ok: Capability = { ok: true, detail: 'test' };
const no = (reason: string): Capability => ({ ok: false, reason });
const ALL: Capabilities = { root: ok, netns: ok, netem: ok, tcDrop: ok, tbf: ok, tcpReset: ok, packetFaults: ok, etcd: ok };

const env = { short: true, vocabSize: 32000, seed: 7 } as ChaosEnv;

describe('chaos scenario headers', () => {
  interface Header {
    workers: number;
    coordinators: number;
    placement: string | undefined;
    client: { retryMidStream: boolean; deadlineMs?: number };
    allMustComplete: boolean;
    secure: boolean | undefined;
  }
  const common: Header = { workers: 3, coordinators: 1, placement: undefined, client: { retryMidStream: false }, allMustComplete: true, secure: undefined };
  const expected: Record<string, Partial<Header>> = {
    S0: {},
    S1: {},
    S2: {},
    S3: {},
    S4: {},
    S5: {},
    S6: {},
    S7: { client: { retryMidStream: false, deadlineMs: 600_000 } },
    S8: {},
    S9: { coordinators: 2, client: { retryMidStream: true } },
    S10: { coordinators: 2, client: { retryMidStream: true, deadlineMs: 120_000 }, allMustComplete: false },
    E1: { workers: 4, placement: 'experts' },
    S11: { secure: true },
    S12: { secure: true, allMustComplete: false },
  };

  test('the scenarios, in order', () => {
    assert.deepEqual(
      SCENARIOS.map((s) => s.id),
      Object.keys(expected),
    );
  });

  for (const s of SCENARIOS) {
    test(`${s.id}: topology, placement, client, completion`, () => {
      const want = { ...common, ...expected[s.id] };
      assert.deepEqual(
        { workers: s.topology.workers, coordinators: s.topology.coordinators, placement: s.placement, client: s.client, allMustComplete: s.allMustComplete, secure: s.topology.secure },
        want,
      );
    });
  }

  test('requests: 16 streams each; the standard ones have prompts of 4, 13, ... 139 tokens and 64 new tokens, S7 long prompts', () => {
    for (const s of SCENARIOS.filter((x) => x.id !== 'S12')) {
      const requests = s.requests(env);
      assert.equal(requests.length, 16, s.id);
      const lengths = requests.map((r) => r.promptIds.length);
      if (s.id === 'S7') {
        assert.deepEqual(lengths, Array.from({ length: 16 }, (_, i) => 1024 + 8 * i), s.id);
        assert.ok(requests.every((r) => r.maxTokens === 16), s.id);
      } else {
        assert.deepEqual(lengths, Array.from({ length: 16 }, (_, i) => 4 + 9 * i), s.id);
        assert.ok(requests.every((r) => r.maxTokens === 64), s.id);
      }
    }
  });

  test('S12: its reference is what the limits run at once (4 streams, 2 per key), on a coordinator given those limits', () => {
    const s12 = SCENARIOS.find((s) => s.id === 'S12')!;
    const requests = s12.requests(env);
    assert.deepEqual(requests.map((r) => [r.promptIds.length, r.keyName]), [[4, 'client-1'], [13, 'client-1'], [22, 'client-2'], [31, 'client-2']]);
    assert.deepEqual(s12.coordinatorArgs, ['--key-streams', '2', '--max-streams', '4', '--max-queued-streams', '2', '--queue-wait-ms', '2000', '--max-prompt-bytes', String(1024 * 1024)]);
    assert.equal(s12.topology.clientKeys, 4);
  });

  test('every scenario runs on a machine with every capability, and none without root, netns or etcd', () => {
    for (const s of SCENARIOS) {
      assert.equal(s.unsupported(ALL), undefined, s.id);
      for (const name of ['root', 'netns', 'etcd'] as const) {
        assert.equal(s.unsupported({ ...ALL, [name]: no(`no ${name}`) }), `needs ${name}: no ${name}`, `${s.id} without ${name}`);
      }
    }
  });

  test('the network scenarios also need their tc features', () => {
    const unsupported = (id: string, caps: Partial<Capabilities>) => SCENARIOS.find((s) => s.id === id)!.unsupported({ ...ALL, ...caps });
    assert.equal(unsupported('S3', { netem: no('x') }), undefined, 'S3 blackholes with tc drop filters without netem');
    assert.match(unsupported('S3', { netem: no('no netem'), tcDrop: no('no drop') }) ?? '', /^a blackhole needs netem or tc drop filters/);
    assert.equal(unsupported('S4', { tcDrop: no('no drop') }), 'needs tcDrop: no drop');
    assert.equal(unsupported('S5', { netem: no('no netem'), tcDrop: no('x'), tbf: no('x'), tcpReset: no('x'), packetFaults: no('x') }), undefined, 'S5 delays in the fault proxies');
    assert.equal(unsupported('S6', { tcpReset: no('no ss -K') }), 'needs tcpReset: no ss -K');
    assert.equal(unsupported('S6', { netem: no('no netem') }), undefined, 'S6 makes packet faults with u32 + mirred + ifb without netem');
    assert.equal(unsupported('S6', { packetFaults: no('no ifb') }), undefined, 'S6 uses netem where packet faults are missing');
    assert.equal(unsupported('S6', { netem: no('no netem'), packetFaults: no('no ifb') }), 'needs packetFaults or netem: no ifb');
    assert.equal(unsupported('S7', { netem: no('x') }), undefined, 'S7 rate-limits with tbf without netem');
    assert.match(unsupported('S7', { netem: no('x'), tbf: no('no tbf') }) ?? '', /^a rate limit needs netem or tbf: no tbf$/);
    for (const id of ['S0', 'S1', 'S2', 'S5', 'S8', 'S9', 'S10', 'E1', 'S11', 'S12']) assert.equal(unsupported(id, { netem: no('x'), tcDrop: no('x'), tbf: no('x'), tcpReset: no('x'), packetFaults: no('x') }), undefined, id);
  });

  test('S5 and S10 run proxied (every link through a fault proxy), S6 with one packet per skb; the others as before', () => {
    const byId = (id: string) => SCENARIOS.find((s) => s.id === id)!;
    assert.equal(byId('S5').topology.proxied, true);
    assert.equal(byId('S10').topology.proxied, true);
    assert.equal(byId('S6').topology.singlePacketSkbs, true);
    for (const s of SCENARIOS.filter((x) => !['S5', 'S10'].includes(x.id))) assert.notEqual(s.topology.proxied, true, s.id);
  });
});
