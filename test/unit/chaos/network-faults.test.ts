/**
 * The pure parts of the harness's netem-free network faults: which packets the u32 filters take
 * (disjoint sets, the advertised shares, never id 0, which this kernel gives pure ACKs), the
 * filter commands, parsing tc's and nstat's counters, link throughput from byte counters, tc
 * rate units, and S10's fault order (every kind in each round) and recovery bounds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRateBitsPerS, peakRatesBitsPerS } from '../../../chaos/link-meter';
import { filterCommand, kindOfIpId, parseFilterCounts, parseNstat, SELECTORS, shareOf } from '../../../chaos/packet-faults';
import { faultMeasureMs, faultOrder, recoveryBoundMs, s10Kinds } from '../../../chaos/scenarios/soak';
import type { Capabilities, Capability } from '../../../chaos/capabilities';
import { seededRandom } from '../../../chaos/workload';

describe('packet faults (u32 on the IP id)', () => {
  test('the sets are disjoint and take 9.4 % (loss), 4.7 % (duplicate), 4.7 % (reorder) of ids', () => {
    for (let id = 0; id < 65536; id++) assert.ok(SELECTORS.filter((s) => (id & s.mask) === s.value).length <= 1, `id ${id} in two sets`);
    assert.equal(shareOf('loss'), 6 / 64);
    assert.equal(shareOf('duplicate'), 3 / 64);
    assert.equal(shareOf('reorder'), 3 / 64);
  });

  test('id 0 (pure ACKs, SYN-ACKs) is never taken; consecutive ids of one flow are taken periodically', () => {
    assert.equal(kindOfIpId(0), undefined);
    const start = 40000;
    const kinds = Array.from({ length: 640 }, (_, i) => kindOfIpId((start + i) & 0xffff));
    assert.equal(kinds.filter((k) => k === 'loss').length, 60);
    assert.equal(kinds.filter((k) => k === 'duplicate').length, 30);
    assert.equal(kinds.filter((k) => k === 'reorder').length, 30);
    // A retransmission gets the next id: a lost packet's next copy is never lost for the same reason.
    for (let id = 1; id < 65535; id++) if (kindOfIpId(id) === 'loss') assert.notEqual(kindOfIpId(id + 1), 'loss', `ids ${id}, ${id + 1}`);
  });

  test('filter commands: TCP only, the id field at offset 4, one prio per selector, the right action', () => {
    const cmds = SELECTORS.map((_, i) => filterCommand('bchaos-w1', i).join(' '));
    assert.match(cmds[0], /^tc filter add dev bchaos-w1 ingress prio 10 protocol ip u32 match ip protocol 6 0xff match u16 0x0001 0x000f at 4 action mirred egress redirect dev bchaos-sink$/);
    assert.match(cmds[2], /prio 12 .* match u16 0x0004 0x003e at 4 action mirred egress mirror dev bchaos-dup$/);
    assert.match(cmds[5], /prio 15 .* match u16 0x000a 0x003f at 4 action mirred egress redirect dev bchaos-ro$/);
  });

  test("tc -s filter show: each filter's action count goes to its kind", () => {
    const text = [
      'filter protocol ip pref 10 u32 chain 0 ',
      'filter protocol ip pref 10 u32 chain 0 fh 800::800 order 2048 key ht 800 bkt 0 terminal flowid not_in_hw ',
      '  match 00010000/000f0000 at 4',
      '\taction order 1: mirred (Egress Redirect to device bchaos-sink) stolen',
      '\tSent 202236 bytes 30 pkt (dropped 0, overlimits 0 requeues 0) ',
      'filter protocol ip pref 11 u32 chain 0 fh 801::800 order 2048 key ht 801 bkt 0 terminal flowid not_in_hw ',
      '\tSent 2490 bytes 7 pkt (dropped 0, overlimits 0 requeues 0) ',
      'filter protocol ip pref 12 u32 chain 0 fh 802::800 order 2048 key ht 802 bkt 0 terminal flowid not_in_hw ',
      '\tSent 1283 bytes 19 pkt (dropped 0, overlimits 0 requeues 0) ',
      'filter protocol ip pref 15 u32 chain 0 fh 805::800 order 2048 key ht 805 bkt 0 terminal flowid not_in_hw ',
      '\tSent 99 bytes 4 pkt (dropped 0, overlimits 0 requeues 0) ',
    ].join('\n');
    assert.deepEqual(parseFilterCounts(text), { loss: 37, duplicate: 19, reorder: 4 });
    assert.deepEqual(parseFilterCounts(''), { loss: 0, duplicate: 0, reorder: 0 });
  });

  test('nstat -asz lines parse to absolute counters', () => {
    const counters = parseNstat('#kernel\nTcpRetransSegs                  739                0.0\nTcpExtTCPOFOQueue               247                0.0\n');
    assert.equal(counters.get('TcpRetransSegs'), 739);
    assert.equal(counters.get('TcpExtTCPOFOQueue'), 247);
    assert.equal(counters.has('kernel'), false);
  });
});

describe('link throughput', () => {
  test('tc rate units are decimal bits per second', () => {
    assert.equal(parseRateBitsPerS('5mbit'), 5e6);
    assert.equal(parseRateBitsPerS('200kbit'), 2e5);
    assert.equal(parseRateBitsPerS('1gbit'), 1e9);
    assert.throws(() => parseRateBitsPerS('5MB'), /unsupported rate/);
  });

  test('peak rate over a window, per direction, from byte counters', () => {
    // 625,000 B/s to the node (5 mbit) for 4 s, then a 2 s burst at twice that; 100 kB/s from it.
    const samples = Array.from({ length: 25 }, (_, i) => {
      const t = i * 250;
      const toNode = t <= 4000 ? 625 * t : 625 * 4000 + 1250 * (t - 4000);
      return { atMs: t, toNodeBytes: toNode, fromNodeBytes: 100 * t };
    });
    const peak = peakRatesBitsPerS(samples, 2000);
    assert.ok(Math.abs(peak.toNode - 10e6) < 1, `${peak.toNode}`);
    assert.ok(Math.abs(peak.fromNode - 0.8e6) < 1, `${peak.fromNode}`);
    // A run shorter than the window (here 1 s at 5 mbit to the node) counts at its mean rate.
    const short = peakRatesBitsPerS(samples.slice(0, 5), 2000);
    assert.ok(Math.abs(short.toNode - 5e6) < 1, `${short.toNode}`);
    assert.ok(Math.abs(short.fromNode - 0.8e6) < 1, `${short.fromNode}`);
    assert.deepEqual(peakRatesBitsPerS(samples.slice(0, 1), 2000), { toNode: 0, fromNode: 0 }, 'one sample: no rate');
  });
});

describe('S10 schedule', () => {
  const ok: Capability = { ok: true, detail: 'x' };
  const no: Capability = { ok: false, reason: 'x' };
  const caps = { root: ok, netns: ok, netem: no, tcDrop: ok, tbf: ok, tcpReset: ok, packetFaults: ok, etcd: ok } as Capabilities;

  test('every kind is available without netem (delay in the proxy, partition with tc drop filters)', () => {
    assert.deepEqual([...s10Kinds(caps)].sort(), ['delay-worker', 'kill-coordinator', 'kill-worker', 'partition-worker', 'pause-worker']);
    assert.deepEqual([...s10Kinds({ ...caps, tcDrop: no })].sort(), ['delay-worker', 'kill-coordinator', 'kill-worker', 'pause-worker']);
  });

  test('the order is rounds of every kind once, seeded (so the first kinds.length faults cover every kind)', () => {
    const kinds = s10Kinds(caps);
    const order = faultOrder(kinds, seededRandom(7), 3);
    assert.equal(order.length, 3 * kinds.length);
    for (let r = 0; r < 3; r++) assert.deepEqual([...order.slice(r * kinds.length, (r + 1) * kinds.length)].sort(), [...kinds].sort(), `round ${r}`);
    assert.deepEqual(faultOrder(kinds, seededRandom(7), 3), order, 'same seed, same order');
    assert.notDeepEqual(faultOrder(kinds, seededRandom(8), 3), order);
  });

  test('recovery bounds: worker faults TTL + 3 s, the coordinator 2 x TTL + 3 s, a delay 1 s', () => {
    assert.equal(recoveryBoundMs('kill-worker', 3000), 6000);
    assert.equal(recoveryBoundMs('partition-worker', 3000), 6000);
    assert.equal(recoveryBoundMs('kill-coordinator', 3000), 9000);
    assert.equal(recoveryBoundMs('delay-worker', 3000), 1000);
  });

  test("a delay is measured by its longest gap between tokens, a disruptive fault by its recovery", () => {
    // Tokens every 400 ms from the fault at 0, one 513 ms gap 8 s in (S10's run of 2026-12-08: a
    // delay with tokens flowing throughout read as an 8.5 s recovery).
    const arrivals: number[] = [];
    for (let t = 400; t <= 8000; t += 400) arrivals.push(t);
    for (let t = 8513; t <= 10_000; t += 400) arrivals.push(t);
    assert.equal(faultMeasureMs('delay-worker', arrivals, 0, 10_000), 513);
    assert.equal(faultMeasureMs('pause-worker', arrivals, 0, 10_000), 8513);
    // A delay that stalls the streams for 3 s fails its 1 s bound wherever the stall is.
    const stalled = [...arrivals.filter((t) => t < 6000), 9000, 9400, 9800];
    assert.ok(faultMeasureMs('delay-worker', stalled, 0, 10_000)! > recoveryBoundMs('delay-worker', 3000));
  });
});
