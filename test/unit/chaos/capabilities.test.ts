/**
 * The chaos harness's capability probe (chaos/capabilities.ts): against stand-in machines, each
 * missing feature is reported with the command that failed and the kernel's words, a machine
 * without netem still offers the netem-free faults (tc drop filters, tbf, packet faults), and the
 * probe removes what it created; the scenarios then skip exactly what the machine cannot run. On
 * this machine (as root, as in CI) the probe agrees with the same commands tried directly, and
 * leaves no probe link behind.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { probeCapabilities, type ProbeHost } from '../../../chaos/capabilities';
import { SCENARIOS } from '../../../chaos/scenarios';
import { tryRun, type CommandResult } from '../../../chaos/shell';

const OK: CommandResult = { ok: true, status: 0, stdout: '', stderr: '' };

/** A machine whose commands succeed unless `refuse` matches their text; it records every command. */
function standIn(refuse: Record<string, string>, isRoot = true): ProbeHost & { calls: string[] } {
  const calls: string[] = [];
  return {
    isRoot,
    calls,
    findEtcd: () => '/usr/bin/etcd',
    run(argv) {
      const text = argv.join(' ');
      calls.push(text);
      if (text === 'ss --help') return { ...OK, stdout: '   -K, --kill          forcibly close sockets' };
      for (const [pattern, error] of Object.entries(refuse)) if (text.includes(pattern)) return { ok: false, status: 2, stdout: '', stderr: error };
      return OK;
    },
  };
}

describe('chaos capability probe', () => {
  test('a machine with everything: every capability ok, and the probe deletes what it made', () => {
    const host = standIn({});
    const caps = probeCapabilities(host);
    for (const [name, c] of Object.entries(caps)) assert.equal(c.ok, true, name);
    for (const made of ['ip link add bchaos-probea', 'ip link add bchaos-probei', 'ip netns add bchaos-probe']) assert.ok(host.calls.some((c) => c.startsWith(made)), made);
    for (const removed of ['ip link delete bchaos-probea', 'ip link delete bchaos-probei', 'ip netns delete bchaos-probe']) assert.ok(host.calls.includes(removed), removed);
    for (const s of SCENARIOS) assert.equal(s.unsupported(caps), undefined, s.id);
  });

  test('this kernel (no sch_netem): netem missing with the kernel error; S5, S6, S7, S10 still run without it', () => {
    const caps = probeCapabilities(standIn({ 'netem delay': 'Error: Specified qdisc kind is unknown.' }));
    assert.equal(caps.netem.ok, false);
    assert.match(!caps.netem.ok ? caps.netem.reason : '', /^tc netem \(kernel module sch_netem\): `tc qdisc add dev bchaos-probea root netem delay 1ms` failed: Error: Specified qdisc kind is unknown\.$/);
    for (const name of ['tcDrop', 'tbf', 'tcpReset', 'packetFaults'] as const) assert.equal(caps[name].ok, true, name);
    for (const s of SCENARIOS) assert.equal(s.unsupported(caps), undefined, `${s.id} runs without netem`);
  });

  test('no ifb: packet faults missing, naming ifb; S6 is then unsupported on a kernel without netem too, and says why', () => {
    const caps = probeCapabilities(standIn({ 'netem delay': 'unknown qdisc', 'type ifb': 'Error: Unknown device type.' }));
    assert.equal(caps.packetFaults.ok, false);
    assert.match(!caps.packetFaults.ok ? caps.packetFaults.reason : '', /^ifb devices \(kernel module ifb\): .*Unknown device type/);
    const s6 = SCENARIOS.find((s) => s.id === 'S6')!;
    assert.match(s6.unsupported(caps) ?? '', /^needs packetFaults or netem: ifb devices/);
    // With netem present, S6 falls back to netem.
    assert.equal(s6.unsupported({ ...caps, netem: { ok: true, detail: 'x' } }), undefined);
  });

  test('no mirred action: tcDrop and packetFaults both missing; S3 needs netem then, S4 cannot run', () => {
    const caps = probeCapabilities(standIn({ 'netem delay': 'unknown qdisc', 'action mirred': 'Error: Failed to load TC action module.' }));
    assert.equal(caps.tcDrop.ok, false);
    assert.equal(caps.packetFaults.ok, false);
    const unsupported = (id: string): string | undefined => SCENARIOS.find((s) => s.id === id)!.unsupported(caps);
    assert.match(unsupported('S3') ?? '', /^a blackhole needs netem or tc drop filters/);
    assert.match(unsupported('S4') ?? '', /^needs tcDrop: tc u32 filter with mirred redirect/);
    assert.equal(unsupported('S5'), undefined, 'S5 delays in user space');
  });

  test('not root: every system capability missing for that reason, and no command is run', () => {
    const host = standIn({}, false);
    const caps = probeCapabilities(host);
    for (const name of ['root', 'netns', 'netem', 'tcDrop', 'tbf', 'tcpReset', 'packetFaults'] as const) {
      assert.equal(caps[name].ok, false, name);
      assert.match(!caps[name].ok ? caps[name].reason : '', /must run as root/);
    }
    assert.deepEqual(host.calls, []);
  });

  test('no veth pairs: netns missing and every link capability with it', () => {
    const caps = probeCapabilities(standIn({ 'type veth': 'Error: Unknown device type.' }));
    assert.equal(caps.netns.ok, false);
    for (const name of ['netem', 'tcDrop', 'tbf', 'packetFaults'] as const) assert.match(!caps[name].ok ? caps[name].reason : '', /^veth pairs:/, name);
  });

  test('on this machine, as root: the probe agrees with the commands tried directly and leaves no probe link', { skip: process.getuid?.() !== 0 ? 'needs root (CI runs as root)' : false }, () => {
    const caps = probeCapabilities();
    const links = (): string[] => tryRun(['ip', '-o', 'link', 'show']).stdout.split('\n').filter((l) => l.includes('bchaos-probe'));
    assert.deepEqual(links(), []);
    const a = 'bcaptest-a';
    tryRun(['ip', 'link', 'delete', a]);
    assert.ok(tryRun(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', 'bcaptest-b']).ok);
    try {
      const netem = tryRun(['tc', 'qdisc', 'add', 'dev', a, 'root', 'netem', 'delay', '1ms']).ok;
      tryRun(['tc', 'qdisc', 'del', 'dev', a, 'root']);
      assert.equal(caps.netem.ok, netem, 'netem');
      const tbf = tryRun(['tc', 'qdisc', 'add', 'dev', a, 'root', 'tbf', 'rate', '1mbit', 'burst', '10kb', 'latency', '50ms']).ok;
      tryRun(['tc', 'qdisc', 'del', 'dev', a, 'root']);
      assert.equal(caps.tbf.ok, tbf, 'tbf');
      const ifb = tryRun(['ip', 'link', 'add', 'bcaptest-i', 'type', 'ifb']).ok;
      tryRun(['ip', 'link', 'delete', 'bcaptest-i']);
      if (!ifb) assert.equal(caps.packetFaults.ok, false, 'packet faults without ifb');
    } finally {
      tryRun(['ip', 'link', 'delete', a]);
    }
  });
});
