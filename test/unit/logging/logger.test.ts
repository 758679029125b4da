/** The logger: the fields on every line, child bindings, the plan epoch, and the level filter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memoryLogger, parseLogFormat, parseLogLevel } from '../../../common/logging/logger';
import { InvalidArgumentError } from '../../../common/errors';

test('every line carries level, time, msg, node, role and the current epoch', async () => {
  const { log, lines } = memoryLogger({ node: 'w1', role: 'worker' });
  log.info('serving', { address: '127.0.0.1:1' });
  log.setEpoch(7);
  log('plan applied');
  await log.flush();
  assert.equal(lines.length, 2);
  const [first, second] = lines;
  assert.equal(first.level, 'info');
  assert.equal(first.msg, 'serving');
  assert.equal(first.node, 'w1');
  assert.equal(first.role, 'worker');
  assert.equal(first.epoch, 0);
  assert.equal(first.address, '127.0.0.1:1');
  assert.ok(!Number.isNaN(Date.parse(String(first.time))), `time ${String(first.time)} is an ISO timestamp`);
  assert.equal(second.epoch, 7, 'a plan change shows on the next line');
  assert.equal(second.msg, 'plan applied');
});

test('a child binds fields on top of its parent, and follows the epoch', async () => {
  const { log, lines } = memoryLogger({ node: 'c', role: 'coordinator' });
  const request = log.child({ requestId: 'r-1' });
  const sequence = request.child({ sequenceId: 's-9' });
  log.setEpoch(3);
  sequence.warn('resumed', { resumes: 1 });
  request.error('failed');
  log.info('unrelated');
  await log.flush();
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.requestId, l.sequenceId, l.epoch, l.node]),
    [
      ['warn', 'resumed', 'r-1', 's-9', 3, 'c'],
      ['error', 'failed', 'r-1', undefined, 3, 'c'],
      ['info', 'unrelated', undefined, undefined, 3, 'c'],
    ],
  );
  assert.equal(lines[0].resumes, 1);
});

test('lines below the level are dropped', async () => {
  const { log, lines } = memoryLogger({ node: 'w2', role: 'worker', level: 'warn' });
  log.debug('d');
  log.info('i');
  log('plain');
  log.warn('w');
  log.error('e');
  await log.flush();
  assert.deepEqual(lines.map((l) => l.msg), ['w', 'e']);
  assert.equal(log.isLevelEnabled('info'), false);
  assert.equal(log.isLevelEnabled('error'), true);
  const { log: debug, lines: all } = memoryLogger({ node: 'w3', role: 'worker', level: 'debug' });
  debug.debug('d');
  await debug.flush();
  assert.deepEqual(all.map((l) => [l.level, l.msg]), [['debug', 'd']]);
});

test('--log-level and --log-format refuse unknown values', () => {
  assert.equal(parseLogLevel('debug'), 'debug');
  assert.equal(parseLogLevel(undefined), 'info');
  assert.throws(() => parseLogLevel('verbose'), InvalidArgumentError);
  assert.equal(parseLogFormat('pretty'), 'pretty');
  assert.throws(() => parseLogFormat('xml'), /--log-format must be json or pretty/);
});
