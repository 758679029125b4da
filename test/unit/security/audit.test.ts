/** The audit log: JSON lines with the five fields, bounded lines, bounded buffering. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { AuditLog, type AuditRecord, openAuditFile } from '../../../common/security/audit';

const FIXED_MS = Date.UTC(2026, 0, 2, 3, 4, 5, 6);

function collect(): { sink: PassThrough; lines: () => AuditRecord[] } {
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { sink, lines: () => text.trimEnd().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord) };
}

describe('AuditLog', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bora-audit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('writes one JSON object per event with who, what, when, outcome and detail', async () => {
    const { sink, lines } = collect();
    const log = new AuditLog(sink, { nowMs: () => FIXED_MS });
    log.record({ who: 'admin/ops', what: 'Drain', outcome: 'ok', detail: { worker: 'w1' } });
    log.record({ who: '10.0.0.9:5555', what: 'authenticate', outcome: 'refused', detail: 'no client certificate' });
    log.record({ who: 'worker/w2', what: 'register', outcome: 'ok' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(lines(), [
      { when: '2026-01-02T03:04:05.006Z', who: 'admin/ops', what: 'Drain', outcome: 'ok', detail: { worker: 'w1' } },
      { when: '2026-01-02T03:04:05.006Z', who: '10.0.0.9:5555', what: 'authenticate', outcome: 'refused', detail: 'no client certificate' },
      { when: '2026-01-02T03:04:05.006Z', who: 'worker/w2', what: 'register', outcome: 'ok' },
    ]);
  });

  test('newlines in caller-controlled fields cannot forge a line; long fields and lines are cut', async () => {
    const { sink, lines } = collect();
    const log = new AuditLog(sink, { maxLineBytes: 512 });
    log.record({ who: 'x\n{"who":"forged"}', what: 'a'.repeat(10_000), outcome: 'refused', detail: 'd'.repeat(10_000) });
    await new Promise((resolve) => setImmediate(resolve));
    const [line, ...rest] = lines();
    assert.equal(rest.length, 0);
    assert.equal(line.who, 'x\n{"who":"forged"}');
    assert.ok(line.what.length <= 260);
    assert.equal((line as unknown as { truncated: boolean }).truncated, true);
    assert.ok(String(line.detail).length <= 70);
  });

  test('a backed-up sink drops events instead of buffering them, then reports the count', async () => {
    let release: () => void = () => undefined;
    const written: string[] = [];
    const slow = new Writable({
      highWaterMark: 64,
      write(chunk: Buffer, _enc, callback) {
        written.push(chunk.toString('utf8'));
        release = callback; // completes only when the test says so
      },
    });
    const log = new AuditLog(slow, { maxBufferedBytes: 300 });
    for (let i = 0; i < 100; i++) log.record({ who: 'peer', what: 'authenticate', outcome: 'refused', detail: `attempt ${i}` });
    assert.ok(slow.writableLength <= 300 + 200, `buffered ${slow.writableLength} bytes`);
    const droppedNow = log.dropped();
    assert.ok(droppedNow >= 90, `dropped ${droppedNow}`);
    const step = (): void => {
      const next = release;
      release = () => undefined;
      next();
    };
    for (let i = 0; i < 200 && (slow.writableLength > 0 || written.join('').indexOf('"dropped"') < 0); i++) {
      step();
      await new Promise((resolve) => setImmediate(resolve));
    }
    const records = written.join('').trimEnd().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    const report = records.find((r) => r.what === 'dropped');
    assert.deepEqual(report?.detail, { events: droppedNow });
  });

  test('openAuditFile appends to a 0600 file', async () => {
    const path = join(dir, 'audit.jsonl');
    for (const n of [1, 2]) {
      const log = openAuditFile(path);
      log.record({ who: 'coordinator/c1', what: 'plan.publish', outcome: 'ok', detail: { epoch: n } });
      await log.close();
    }
    const records = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(records.map((r) => r.detail), [{ epoch: 1 }, { epoch: 2 }]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});
