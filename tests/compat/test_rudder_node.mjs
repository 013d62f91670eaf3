// @rudderstack/rudder-sdk-node → switchyard: every call type through the real SDK, gzipped (the
// default, labelled application/x-www-form-urlencoded) and plain, then the stored NDJSON is
// checked event by event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Analytics from '@rudderstack/rudder-sdk-node';
import { Daemon, WRITE_KEY, freePort } from './lib/daemon.mjs';
import { richProperties, byMessageId, checkServerFields } from './lib/checks.mjs';

const LIBRARY = 'analytics-node'; // what rudder-sdk-node puts in context.library.name
const SDK_VERSION = '3.0.13';
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
  const analytics = new Analytics(opts.writeKey ?? WRITE_KEY, {
    dataPlaneUrl: daemon.url,
    flushAt: 20,
    flushInterval: 200,
    retryCount: 1,
    logLevel: 'error',
    ...opts,
  });
  // Record the HTTP exchanges through the SDK's own axios instance.
  const requests = [];
  const responses = [];
  analytics.axiosInstance.interceptors.request.use((cfg) => {
    requests.push({ headers: { ...cfg.headers }, gzipped: Buffer.isBuffer(cfg.data) });
    return cfg;
  });
  analytics.axiosInstance.interceptors.response.use(
    (r) => { responses.push(r.status); return r; },
    (e) => { responses.push(e.response?.status ?? e.code); return Promise.reject(e); },
  );
  return { analytics, requests, responses };
}

/** Calls analytics[method](params); resolves when the SDK reports the batch delivered. */
function send(analytics, method, params) {
  return new Promise((ok, fail) => {
    analytics[method](params, (err) => (err ? fail(new Error(`${method} failed: ${err.message}`)) : ok()));
  });
}

async function flushAll(analytics) {
  // flush() sends at most flushAt events per call.
  do {
    await analytics.flush();
  } while (analytics.queue.length > 0);
}

for (const gzip of [true, false]) {
  test(`every call type arrives once, intact, with collector fields (gzip ${gzip})`, async () => {
    const start = Date.now();
    const { analytics, requests, responses } = client({ gzip });
    const run = randomUUID().slice(0, 8);
    const ts = (s) => new Date(`2024-04-0${s}T08:09:10.123Z`);
    const mid = (n) => `rudder-${run}-${n}`;
    // originalTimestamp is how this SDK carries an explicit event time (it stamps `new Date()`
    // there otherwise); see the test below for its `timestamp` parameter.
    const calls = [
      ['identify', {
        userId: 'user-rs-1', anonymousId: 'anon-rs-1', messageId: mid(1), originalTimestamp: ts(1),
        traits: { email: 'jane@example.com', name: 'Jane Dœ', plan: 'pro', logins: 12, verified: true,
          address: { city: 'Zürich', country: 'CH' }, tags: ['a', 'b'] },
      }],
      ['track', {
        userId: 'user-rs-1', event: 'Order Completed', messageId: mid(2), originalTimestamp: ts(2),
        properties: richProperties(`track-${run}`),
        context: { campaign: { name: 'spring', source: 'newsletter' } },
      }],
      ['track', {
        anonymousId: 'anon-rs-1', event: 'Anonymous Click ✓', messageId: mid(3), originalTimestamp: ts(3),
        properties: { button: 'cta', n: 1 },
      }],
      ['page', {
        userId: 'user-rs-1', category: 'Docs', name: 'Pricing', messageId: mid(4), originalTimestamp: ts(4),
        properties: { url: 'https://example.com/pricing?q=ü', title: 'Pricing – Plans', referrer: '', depth: 2 },
      }],
      ['screen', {
        anonymousId: 'anon-rs-1', name: 'Home Screen', messageId: mid(5), originalTimestamp: ts(5),
        properties: { variant: 'A', nested: { list: [1, 'two', { three: 3 }] } },
      }],
      ['group', {
        userId: 'user-rs-1', groupId: 'org-42', messageId: mid(6), originalTimestamp: ts(6),
        traits: { name: 'Acme Inc', employees: 100, industry: 'Rockets 🚀', plan: { tier: 'gold', seats: 25 } },
      }],
      ['alias', { userId: 'user-rs-1', previousId: 'anon-rs-1', messageId: mid(7), originalTimestamp: ts(7) }],
      // No messageId: the SDK generates one; found again by its unique property.
      ['track', { userId: 'user-rs-2', event: 'Generated Id', properties: { marker: `gen-${run}` } }],
    ];

    const delivered = Promise.all(calls.map(([m, p]) => send(analytics, m, p)));
    await flushAll(analytics);
    await delivered;
    const end = Date.now();

    assert.ok(requests.length >= 2, `the SDK sends the first event alone: ${requests.length} request(s)`);
    for (const r of requests) {
      assert.equal(r.gzipped, gzip, 'body compression');
      // With gzip the body is a Buffer, which axios's http adapter sends as
      // application/x-www-form-urlencoded (set after the interceptors run, so not checked here).
      if (gzip) assert.equal(r.headers['Content-Encoding'], 'gzip');
    }
    assert.deepEqual(responses, responses.map(() => 200), `HTTP statuses: ${responses}`);

    const explicit = calls.filter(([, p]) => p.messageId).map(([, p]) => p.messageId);
    const isGenerated = (e) => e.properties?.marker === `gen-${run}`;
    const events = await daemon.waitForEvents((evs) => {
      const have = new Set(evs.map((e) => e.messageId));
      return explicit.every((id) => have.has(id)) && evs.some(isGenerated);
    });
    const stored = byMessageId(events);

    for (const [method, params] of calls) {
      let copies;
      if (params.messageId) {
        copies = stored.get(params.messageId);
      } else {
        copies = events.filter(isGenerated);
        assert.match(copies[0]?.messageId ?? '', /^[0-9a-f-]{36}$/, 'SDK-generated messageId kept');
      }
      const ev = copies?.[0];
      const id = `${method} ${params.messageId ?? ev?.messageId}`;
      assert.equal(copies?.length, 1, `${id}: expected exactly one stored copy`);

      assert.equal(ev.type, method, `${id}: type`);
      assert.equal(ev.userId, params.userId, `${id}: userId`);
      assert.equal(ev.anonymousId, params.anonymousId, `${id}: anonymousId`);
      assert.equal(ev.context?.library?.name, LIBRARY, `${id}: context.library.name`);
      assert.equal(ev.context?.library?.version, SDK_VERSION, `${id}: context.library.version`);
      assert.equal(ev.channel, 'server', `${id}: channel`);
      for (const [k, v] of Object.entries(params.context ?? {})) {
        assert.deepEqual(ev.context[k], v, `${id}: context.${k}`);
      }

      switch (method) {
        case 'track':
          assert.equal(ev.event, params.event, `${id}: event`);
          assert.deepEqual(ev.properties, params.properties, `${id}: properties`);
          break;
        case 'identify':
          assert.deepEqual(ev.traits, params.traits, `${id}: traits`);
          // The SDK copies identify traits into context.traits.
          assert.deepEqual(ev.context.traits, params.traits, `${id}: context.traits`);
          break;
        case 'page':
          assert.equal(ev.name, params.name, `${id}: name`);
          assert.equal(ev.category, params.category, `${id}: category`);
          assert.deepEqual(ev.properties, params.properties, `${id}: properties`);
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
        originalTimestamp: params.originalTimestamp?.toISOString(),
        window: [start, end],
        writeKey: WRITE_KEY,
      });
      if (params.originalTimestamp) {
        assert.ok(Math.abs(Date.parse(ev.timestamp) - params.originalTimestamp.getTime()) < 30000,
          `${id}: timestamp ${ev.timestamp} not derived from originalTimestamp`);
      } else {
        const orig = Date.parse(ev.originalTimestamp);
        assert.ok(orig >= start - 1000 && orig <= end + 1000, `${id}: SDK-stamped originalTimestamp ${ev.originalTimestamp}`);
      }
    }
  });
}

test('an unknown write key is refused and nothing is stored', async () => {
  // Without an errorHandler the SDK's own first (immediate) flush rejects unhandled.
  const failures = [];
  const { analytics, responses } = client({
    writeKey: 'not-a-configured-key', retryCount: 0, errorHandler: (e) => failures.push(e),
  });
  const before = daemon.readEvents().length;
  const result = new Promise((ok) => {
    analytics.track({ userId: 'intruder', event: 'Should Not Land' }, (err) => ok(err));
  });
  await analytics.flush().catch(() => {});
  const err = await result;
  assert.ok(err, 'the SDK reports a delivery failure');
  assert.deepEqual(responses, [401]);
  assert.equal(failures.length, 1);
  await new Promise((r) => setTimeout(r, 300));
  const events = daemon.readEvents();
  assert.equal(events.length, before);
  assert.ok(!events.some((e) => e.event === 'Should Not Land'));
});

test('events sent before the daemon is up are retried and land exactly once', async () => {
  const port = await freePort();
  const late = new Daemon({ port });
  const analytics = new Analytics(WRITE_KEY, {
    dataPlaneUrl: `http://127.0.0.1:${port}`, flushAt: 20, flushInterval: 100, logLevel: 'error',
    retryCount: 8, axiosRetryConfig: { retryDelay: () => 250 },
  });
  let attempts = 0;
  analytics.axiosInstance.interceptors.request.use((cfg) => { attempts += 1; return cfg; });
  try {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const delivered = Promise.all(ids.map((messageId, i) => send(analytics, 'track', {
      userId: 'user-retry', event: 'Sent Early', properties: { i }, messageId,
    })));
    await new Promise((r) => setTimeout(r, 300));
    await late.start();
    await flushAll(analytics);
    await delivered;
    assert.ok(attempts >= 2, `expected a retry, saw ${attempts} attempt(s)`);
    const events = await late.waitForEvents((evs) => ids.every((id) => evs.some((e) => e.messageId === id)));
    for (const id of ids) {
      assert.equal(events.filter((e) => e.messageId === id).length, 1, `${id} stored once`);
    }
  } finally {
    await late.cleanup();
  }
});

test('the explicit `timestamp` parameter is kept as the event time', async () => {
  // rudder-sdk-node documents `timestamp?: Date` on every call; the SDK also stamps
  // originalTimestamp = new Date(). RudderStack's server keeps a client `timestamp` as is and
  // only computes one when it is absent.
  const { analytics } = client();
  const messageId = `rudder-ts-${randomUUID()}`;
  const when = new Date('2023-05-06T07:08:09.010Z');
  const done = send(analytics, 'track', { userId: 'user-ts', event: 'Backfilled', timestamp: when, messageId });
  await flushAll(analytics);
  await done;
  const events = await daemon.waitForEvents((evs) => evs.some((e) => e.messageId === messageId));
  const ev = events.find((e) => e.messageId === messageId);
  assert.equal(ev.timestamp, when.toISOString(), 'timestamp');
});
