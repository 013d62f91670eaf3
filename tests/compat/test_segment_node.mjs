// @segment/analytics-node → switchyard: every call type through the real SDK, then the stored
// NDJSON is checked event by event against what the SDK says it sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import { Daemon, WRITE_KEY, freePort } from './lib/daemon.mjs';
import { richProperties, byMessageId, checkServerFields } from './lib/checks.mjs';

const LIBRARY = '@segment/analytics-node';
let daemon;

before(async () => {
  daemon = await new Daemon().start();
});

after(async () => {
  const exit = await daemon?.stop();
  const log = daemon?.stderr;
  await daemon?.cleanup();
  assert.deepEqual(exit, { code: 0, signal: null }, `daemon exit on SIGTERM; its log:\n${log}`);
});

function client(opts = {}) {
  const analytics = new Analytics({
    writeKey: WRITE_KEY,
    host: daemon.url,
    path: '/v1/batch',
    flushAt: 4,
    flushInterval: 200,
    maxRetries: 1,
    httpRequestTimeout: 5000,
    ...opts,
  });
  const responses = [];
  const errors = [];
  analytics.on('http_response', (r) => responses.push(r));
  analytics.on('error', (e) => errors.push(e));
  return { analytics, responses, errors };
}

/** Calls analytics[method](params) and resolves with the SDK's event once it was delivered. */
function send(analytics, method, params) {
  return new Promise((ok, fail) => {
    analytics[method](params, (err, ctx) => {
      if (err) fail(new Error(`${method} failed: ${err?.message ?? JSON.stringify(err)}`));
      else ok(ctx.event);
    });
  });
}

test('every call type arrives once, intact, with collector fields', async () => {
  const start = Date.now();
  const { analytics, responses, errors } = client();
  const ts = (s) => new Date(`2024-03-0${s}T10:11:12.345Z`);
  const calls = [
    ['track', {
      userId: 'user-seg-1', event: 'Order Completed', properties: richProperties('track'),
      context: { campaign: { name: 'spring', source: 'newsletter' } }, timestamp: ts(1),
    }],
    ['track', {
      anonymousId: 'anon-seg-1', event: 'Anonymous Click ✓', properties: { button: 'cta', n: 1 },
      timestamp: ts(2), messageId: 'seg-explicit-message-id-0001',
    }],
    ['identify', {
      userId: 'user-seg-1', anonymousId: 'anon-seg-1', timestamp: ts(3),
      traits: { email: 'jane@example.com', name: 'Jane Dœ', plan: 'pro', logins: 12, verified: true,
        address: { city: 'Zürich', country: 'CH' }, tags: ['a', 'b'] },
    }],
    ['page', {
      userId: 'user-seg-1', category: 'Docs', name: 'Pricing', timestamp: ts(4),
      properties: { url: 'https://example.com/pricing?q=ü', title: 'Pricing – Plans', referrer: '', depth: 2 },
    }],
    ['screen', {
      anonymousId: 'anon-seg-1', name: 'Home Screen', timestamp: ts(5),
      properties: { variant: 'A', nested: { list: [1, 'two', { three: 3 }] } },
    }],
    ['group', {
      userId: 'user-seg-1', groupId: 'org-42', timestamp: ts(6),
      traits: { name: 'Acme Inc', employees: 100, industry: 'Rockets 🚀', plan: { tier: 'gold', seats: 25 } },
    }],
    ['alias', { userId: 'user-seg-1', previousId: 'anon-seg-1', timestamp: ts(7) }],
  ];

  const sentEvents = await Promise.all(calls.map(([m, p]) => send(analytics, m, p)));
  await analytics.closeAndFlush({ timeout: 10000 });
  const end = Date.now();

  assert.deepEqual(errors, [], 'the SDK emitted errors');
  assert.ok(responses.length >= 1, 'no HTTP response seen');
  for (const r of responses) assert.equal(r.status, 200, `HTTP ${r.status}: ${r.body}`);

  const ids = sentEvents.map((e) => e.messageId);
  assert.equal(new Set(ids).size, ids.length, 'SDK messageIds are unique');
  assert.ok(ids.includes('seg-explicit-message-id-0001'), 'explicit messageId kept by the SDK');

  const events = await daemon.waitForEvents((evs) => {
    const have = new Set(evs.map((e) => e.messageId));
    return ids.every((id) => have.has(id));
  });
  const stored = byMessageId(events);

  for (const [i, [method, params]] of calls.entries()) {
    const sent = sentEvents[i];
    const copies = stored.get(sent.messageId);
    assert.equal(copies?.length, 1, `${method} ${sent.messageId}: expected exactly one stored copy`);
    const ev = copies[0];
    const id = `${method} ${sent.messageId}`;

    assert.equal(ev.type, method, `${id}: type`);
    assert.equal(ev.userId, params.userId, `${id}: userId`);
    assert.equal(ev.anonymousId, params.anonymousId, `${id}: anonymousId`);
    assert.equal(ev.context?.library?.name, LIBRARY, `${id}: context.library.name`);
    assert.equal(ev.context?.library?.version, sent.context.library.version, `${id}: library version`);
    for (const [k, v] of Object.entries(params.context ?? {})) {
      assert.deepEqual(ev.context[k], v, `${id}: context.${k}`);
    }
    assert.deepEqual(ev._metadata, sent._metadata, `${id}: _metadata passed through`);

    switch (method) {
      case 'track':
        assert.equal(ev.event, params.event, `${id}: event`);
        assert.deepEqual(ev.properties, params.properties, `${id}: properties`);
        break;
      case 'identify':
        assert.deepEqual(ev.traits, params.traits, `${id}: traits`);
        break;
      case 'page':
        assert.equal(ev.name, params.name, `${id}: name`);
        assert.equal(ev.category, params.category, `${id}: category`);
        // The SDK copies the category into the properties as well.
        assert.deepEqual(ev.properties, { ...params.properties, category: params.category }, `${id}: properties`);
        break;
      case 'screen':
        assert.equal(ev.name, params.name, `${id}: name`);
        assert.deepEqual(ev.properties, params.properties, `${id}: properties`);
        break;
      case 'group':
        assert.equal(ev.groupId, params.groupId, `${id}: groupId`);
        assert.deepEqual(ev.traits, params.traits, `${id}: traits`);
        break;
      case 'alias':
        assert.equal(ev.previousId, params.previousId, `${id}: previousId`);
        break;
    }
    checkServerFields(ev, {
      originalTimestamp: params.timestamp.toISOString(),
      window: [start, end],
      writeKey: WRITE_KEY,
    });
    // originalTimestamp is the device time, so the corrected timestamp is near it, not "now".
    assert.ok(Math.abs(Date.parse(ev.timestamp) - params.timestamp.getTime()) < 30000,
      `${id}: timestamp ${ev.timestamp} not derived from the sent timestamp`);
  }
});

test('several small batches from one client all arrive', async () => {
  const { analytics, responses, errors } = client({ flushAt: 2 });
  const n = 25;
  const sent = await Promise.all(Array.from({ length: n }, (_, i) => send(analytics, 'track', {
    userId: `user-multi-${i % 3}`, event: 'Multi Batch', properties: { i, label: `#${i} ✓` },
  })));
  await analytics.closeAndFlush({ timeout: 10000 });
  assert.deepEqual(errors, []);
  assert.ok(responses.length >= Math.ceil(n / 2), `expected ≥ ${Math.ceil(n / 2)} requests, saw ${responses.length}`);
  for (const r of responses) assert.equal(r.status, 200, `HTTP ${r.status}: ${r.body}`);

  const ids = new Set(sent.map((e) => e.messageId));
  const events = await daemon.waitForEvents((evs) => evs.filter((e) => ids.has(e.messageId)).length >= n);
  const mine = events.filter((e) => ids.has(e.messageId));
  assert.equal(mine.length, n, 'each event stored exactly once');
  assert.deepEqual(mine.map((e) => e.properties.i).sort((a, b) => a - b), [...Array(n).keys()]);
  const sentById = new Map(sent.map((s) => [s.messageId, s]));
  for (const e of mine) {
    // No explicit timestamp: the SDK stamps the call time, kept as originalTimestamp.
    assert.equal(e.originalTimestamp, new Date(sentById.get(e.messageId).timestamp).toISOString());
    assert.equal(e.userId, sentById.get(e.messageId).userId);
  }
});

test('an unknown write key is refused and nothing is stored', async () => {
  const { analytics, responses } = client({ writeKey: 'not-a-configured-key', maxRetries: 0 });
  const before = daemon.readEvents().length;
  const result = await new Promise((ok) => {
    analytics.track({ userId: 'intruder', event: 'Should Not Land' }, (err, ctx) => ok({ err, ctx }));
  });
  await analytics.closeAndFlush({ timeout: 10000 });
  assert.ok(result.err, 'the SDK reports a delivery failure');
  assert.ok(responses.length >= 1, 'no HTTP response seen');
  assert.equal(responses[0].status, 401, `status for an unknown key: ${responses[0].status} ${responses[0].body}`);
  await new Promise((r) => setTimeout(r, 300));
  const events = daemon.readEvents();
  assert.equal(events.length, before);
  assert.ok(!events.some((e) => e.event === 'Should Not Land'));
});

test('events sent before the daemon is up are retried and land exactly once', async () => {
  // The SDK starts against a port nobody listens on yet (connection refused → retry with backoff),
  // and a second daemon comes up on that port a moment later.
  const port = await freePort();
  const late = new Daemon({ port });
  const analytics = new Analytics({
    writeKey: WRITE_KEY, host: `http://127.0.0.1:${port}`, path: '/v1/batch',
    flushAt: 3, flushInterval: 100, maxRetries: 6, httpRequestTimeout: 5000,
  });
  const requests = [];
  analytics.on('http_request', (r) => requests.push(r));
  try {
    const delivered = Array.from({ length: 3 }, (_, i) => send(analytics, 'track', {
      userId: 'user-retry', event: 'Sent Early', properties: { i },
    }));
    await new Promise((r) => setTimeout(r, 300));
    await late.start();
    const sent = await Promise.all(delivered);
    await analytics.closeAndFlush({ timeout: 30000 });
    assert.ok(requests.length >= 2, `expected a retry, saw ${requests.length} request(s)`);
    const retried = requests.filter((r) => r.headers['X-Retry-Count'] !== undefined);
    assert.ok(retried.length >= 1, 'retries carry X-Retry-Count');
    const ids = sent.map((e) => e.messageId);
    const events = await late.waitForEvents((evs) => ids.every((id) => evs.some((e) => e.messageId === id)));
    for (const id of ids) {
      assert.equal(events.filter((e) => e.messageId === id).length, 1, `${id} stored once`);
    }
  } finally {
    await late.cleanup();
  }
});

test('an event just under the SDK\'s 32 KB limit is stored whole', async () => {
  // The SDK allows 32 KB per event (its size check is also loose: see README). The collector's
  // own fields (receivedAt, timestamp, context.ip, ...) must not push such an event over.
  const { analytics, errors } = client({ flushAt: 1 });
  const base = { userId: 'user-big', event: 'Big Event', timestamp: new Date('2024-03-09T00:00:00.000Z') };
  const probe = await send(analytics, 'track', { ...base, properties: { blob: '' } });
  const overhead = Buffer.byteLength(JSON.stringify(probe));
  const target = 32 * 1024 - 40;
  const sent = await send(analytics, 'track', { ...base, properties: { blob: 'x'.repeat(target - overhead) } });
  await analytics.closeAndFlush({ timeout: 10000 });
  assert.deepEqual(errors, []);
  const size = Buffer.byteLength(JSON.stringify(sent));
  assert.ok(size <= 32 * 1024 && size > 32 * 1024 - 200, `event as sent is ${size} bytes`);
  const events = await daemon.waitForEvents((evs) => evs.some((e) => e.messageId === sent.messageId));
  const ev = events.find((e) => e.messageId === sent.messageId);
  assert.equal(ev.properties.blob.length, target - overhead);
  assert.equal(daemon.readEvents('quarantine').filter((e) => JSON.stringify(e).includes(sent.messageId)).length, 0);
});
