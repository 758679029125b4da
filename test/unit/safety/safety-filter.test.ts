/**
 * The safety filter with its metrics and audit: prompt rules (block, redact, token-id prompts),
 * output rules through a TextFilter, and the external moderation service, served by a small HTTP
 * server in the test: its request shape, a flagged reply, and its deadline with fail-open and
 * fail-closed. Incidents move the metrics and write audit lines that never hold the text.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { sampleValue, parseExposition } from '../../../common/metrics/exposition';
import { AuditLog, type AuditRecord } from '../../../common/security/audit';
import { CoordinatorMetrics } from '../../../coordinator/coordinator-metrics';
import { ModerationClient, type FailMode, type ModerationRequestBody } from '../../../coordinator/safety/moderation-client';
import { parsePolicy } from '../../../coordinator/safety/policy-file';
import { SafetyFilter } from '../../../coordinator/safety/safety-filter';

const POLICY = parsePolicy(
  JSON.stringify({
    rules: [
      { id: 'codename', kind: 'deny', phrases: ['falcon'], action: 'block' },
      { id: 'email', kind: 'regex', pattern: '[a-z]{1,20}@[a-z]{1,20}\\.com', maxMatchChars: 45, action: 'redact' },
    ],
  }),
);

const SECRET_TEXT = 'mail bob@example.com now';

/** A filter whose audit lines and metrics the test reads back. */
function harness(options: { moderation?: ModerationClient; policy?: typeof POLICY } = {}) {
  const metrics = new CoordinatorMetrics();
  const sink = new PassThrough();
  let written = '';
  sink.on('data', (chunk: Buffer) => (written += chunk.toString()));
  const filter = new SafetyFilter({ policy: options.policy ?? POLICY, moderation: options.moderation, metrics, audit: new AuditLog(sink) });
  const audit = (): AuditRecord[] =>
    written
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AuditRecord);
  const incidents = async (stage: string, action: string): Promise<number> =>
    sampleValue(parseExposition(await metrics.registry.metrics()), 'bora_safety_incidents_total', { stage, action });
  const failures = async (outcome: string): Promise<number> =>
    sampleValue(parseExposition(await metrics.registry.metrics()), 'bora_safety_moderation_failures_total', { outcome });
  return { filter, audit, incidents, failures, rawAudit: () => written };
}

const ctx = { request: 'req-1', who: 'key alice from 127.0.0.1:5' };

describe('safety filter: policy rules', () => {
  test('a prompt with a block match is blocked; metric and audit line, without the text', async () => {
    const h = harness();
    assert.equal(await h.incidents('prompt', 'block'), 0);
    const verdict = await h.filter.checkPrompt('tell me about Falcon please', ctx, true);
    assert.deepEqual(verdict, { kind: 'blocked', incident: { request: 'req-1', stage: 'prompt', action: 'block', rule: 'codename' } });
    assert.equal(await h.incidents('prompt', 'block'), 1);
    await new Promise((r) => setImmediate(r));
    const [line] = h.audit();
    assert.equal(line?.who, ctx.who);
    assert.equal(line?.what, 'safety.block');
    assert.equal(line?.outcome, 'refused');
    assert.deepEqual(line?.detail, { request: 'req-1', stage: 'prompt', rule: 'codename', action: 'block' });
    assert.ok(!/falcon/i.test(h.rawAudit()), 'the audit line holds no text');
  });

  test('a text prompt is redacted; a token-id prompt with the same match is blocked', async () => {
    const h = harness();
    assert.deepEqual(await h.filter.checkPrompt(SECRET_TEXT, ctx, true), { kind: 'allowed', text: 'mail [redacted] now' });
    assert.equal(await h.incidents('prompt', 'redact'), 1);
    const ids = await h.filter.checkPrompt(SECRET_TEXT, ctx, false);
    assert.equal(ids.kind, 'blocked');
    assert.equal(await h.incidents('prompt', 'block'), 1);
    assert.deepEqual(await h.filter.checkPrompt('nothing to see', ctx, false), { kind: 'allowed', text: 'nothing to see' });
    await new Promise((r) => setImmediate(r));
    assert.ok(!h.rawAudit().includes('bob@example.com'), 'the audit lines hold no text');
  });

  test('output: redaction across pieces, then a block ends the stream', async () => {
    const h = harness();
    const out = h.filter.openOutput(ctx);
    const pieces = ['write to b', 'ob@exa', 'mple.com', ' about the fal', 'con launch'];
    const steps = pieces.map((p) => out.push(p));
    // The email rule may match up to 45 code units: that much waits until the text ends.
    assert.equal(steps.map((s) => s.release).join(''), 'writ');
    assert.ok(steps.every((s) => !s.blocked));
    assert.deepEqual(steps.map((s) => s.settledChars), [0, 0, 0, 0, 4]);
    const last = out.end();
    assert.equal(last.release, 'e to [redacted] about the ');
    assert.equal(last.blocked, true);
    assert.deepEqual(last.filtered, [{ start: 9, end: 24 }, { start: 35, end: Infinity }], "the e-mail, then everything from \"falcon\" on");
    assert.equal(last.settledChars, Infinity);
    assert.deepEqual(out.push('more').release, '');
    assert.equal(await h.incidents('output', 'redact'), 1);
    assert.equal(await h.incidents('output', 'block'), 1);
  });
});

describe('safety filter: external moderation service', () => {
  let server: Server;
  let url: string;
  const seen: ModerationRequestBody[] = [];
  let behaviour: 'clean' | 'flag' | 'slow' | 'broken' = 'clean';

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(JSON.parse(body) as ModerationRequestBody);
        const reply = (status: number, json: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(json));
        };
        if (behaviour === 'clean') reply(200, { results: [{ flagged: false, categories: { violence: false } }] });
        else if (behaviour === 'flag') reply(200, { results: [{ flagged: true, categories: { violence: true, hate: false }, category_scores: { violence: 0.9 } }] });
        else if (behaviour === 'broken') reply(200, { verdict: 'ok' });
        else setTimeout(() => reply(200, { results: [{ flagged: false }] }), 1_000);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/moderate`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const client = (failMode: FailMode, timeoutMs = 5_000): ModerationClient => new ModerationClient({ url, timeoutMs, failMode });

  test('sends the (redacted) prompt in the documented shape; a clean reply allows it', async () => {
    behaviour = 'clean';
    seen.length = 0;
    const h = harness({ moderation: client('closed') });
    assert.deepEqual(await h.filter.checkPrompt(SECRET_TEXT, ctx, true), { kind: 'allowed', text: 'mail [redacted] now' });
    assert.deepEqual(seen, [{ input: 'mail [redacted] now', metadata: { request: 'req-1', stage: 'prompt' } }]);
  });

  test('a flagged reply blocks, naming the categories in the audit line', async () => {
    behaviour = 'flag';
    const h = harness({ moderation: client('open') });
    const verdict = await h.filter.checkPrompt('hello', ctx, true);
    assert.deepEqual(verdict, { kind: 'blocked', incident: { request: 'req-1', stage: 'prompt', action: 'block', rule: 'moderation' } });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.audit()[0]?.detail, { request: 'req-1', stage: 'prompt', rule: 'moderation', action: 'block', categories: 'violence' });
  });

  test('past the deadline, fail-open lets the prompt through and fail-closed blocks it', async () => {
    behaviour = 'slow';
    const open = harness({ moderation: client('open', 200) });
    const started = performance.now();
    assert.deepEqual(await open.filter.checkPrompt('hello', ctx, true), { kind: 'allowed', text: 'hello' });
    const waitedMs = performance.now() - started;
    assert.ok(waitedMs >= 150 && waitedMs < 900, `waited ${waitedMs} ms for a 200 ms deadline`);
    assert.equal(await open.failures('allowed'), 1);
    assert.equal(await open.incidents('prompt', 'block'), 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(open.audit()[0]?.what, 'safety.moderation');
    assert.equal(open.audit()[0]?.outcome, 'failed');
    assert.match(String((open.audit()[0]?.detail as { reason: string }).reason), /no answer within 200 ms/);

    const closed = harness({ moderation: client('closed', 200) });
    const verdict = await closed.filter.checkPrompt('hello', ctx, true);
    assert.deepEqual(verdict, { kind: 'blocked', incident: { request: 'req-1', stage: 'prompt', action: 'block', rule: 'moderation-unavailable' } });
    assert.equal(await closed.failures('blocked'), 1);
    assert.equal(await closed.incidents('prompt', 'block'), 1);
  });

  test('a reply of the wrong shape, or no server at all, is a failure of the service', async () => {
    behaviour = 'broken';
    const h = harness({ moderation: client('closed') });
    assert.equal((await h.filter.checkPrompt('hello', ctx, true)).kind, 'blocked');
    const gone = new ModerationClient({ url: 'http://127.0.0.1:1/moderate', timeoutMs: 500, failMode: 'open' });
    assert.deepEqual(await gone.check('hello', 'r', 'prompt').then((v) => v.kind), 'failed');
  });
});
