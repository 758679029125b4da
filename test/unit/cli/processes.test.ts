/**
 * freePort: the ports `bora up` hands to the processes it starts are bound only later, by those
 * processes, so one process must never hand out the same port twice (a coordinator's API and
 * metrics ports once collided this way and the coordinator could not start).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort } from '../../../cli/processes';

describe('freePort', () => {
  test('never returns a port twice in one process, always from below the ephemeral range', async () => {
    const ports: number[] = [];
    // 300 draws from 12000 ports: without the memory of handed-out ports a repeat is all but certain.
    for (let i = 0; i < 300; i++) ports.push(await freePort());
    assert.equal(new Set(ports).size, ports.length);
    assert.ok(ports.every((p) => p >= 20000 && p < 32000));
  });
});
