// Shared assertions and fixtures for the SDK compatibility tests.
import assert from 'node:assert/strict';

export const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

/** Properties that exercise JSON round-tripping: nesting, number forms, booleans, null, unicode. */
export function richProperties(tag) {
  return {
    tag,
    revenue: 42.5,
    quantity: 3,
    zero: 0,
    negative: -17,
    small: 0.1,
    tiny: 1e-7,
    huge: 1e21,
    max_safe: Number.MAX_SAFE_INTEGER,
    pi: 3.141592653589793,
    in_stock: true,
    gift: false,
    coupon: null,
    currency: 'EUR',
    unicode: 'Grüße, 東京, Ελληνικά, emoji 🛒🎉, combining e\u0301, zwj 👩\u200d💻',
    escapes: 'quote " backslash \\ slash / tab \t newline \n cr \r nul-ish \u0001 ls \u2028 ps \u2029',
    empty_string: '',
    empty_object: {},
    empty_array: [],
    products: [
      { sku: 'SKU-1', name: 'Kaffee ☕', price: 9.99, qty: 1, tags: ['hot', 'fresh'] },
      { sku: 'SKU-2', name: 'Tee 🍵', price: 4, qty: 2, tags: [] },
    ],
    shipping: { address: { city: 'München', zip: '80331', geo: { lat: 48.137154, lon: 11.576124 } }, express: true },
    matrix: [[1, 2], [3, [4, [5]]], []],
  };
}

/** Parsed ISO-8601 time in ms, asserting the format. */
export function isoMs(value, what) {
  assert.equal(typeof value, 'string', `${what} should be a string, got ${JSON.stringify(value)}`);
  assert.match(value, ISO_8601, `${what} is not ISO-8601: ${value}`);
  const ms = Date.parse(value);
  assert.ok(Number.isFinite(ms), `${what} does not parse: ${value}`);
  return ms;
}

/** Groups events by messageId. */
export function byMessageId(events) {
  const m = new Map();
  for (const e of events) {
    if (!m.has(e.messageId)) m.set(e.messageId, []);
    m.get(e.messageId).push(e);
  }
  return m;
}

/**
 * Checks the collector-added fields on one stored event.
 * `window`: [startMs, endMs] bounding when the request could have been received.
 */
export function checkServerFields(ev, { originalTimestamp, window, writeKey, ip = '127.0.0.1' }) {
  const id = `${ev.type} ${ev.messageId}`;
  assert.ok(!('writeKey' in ev), `${id}: writeKey must not be stored`);
  assert.ok(!JSON.stringify(ev).includes(writeKey), `${id}: the write key appears in the stored event`);
  assert.equal(ev.context?.ip, ip, `${id}: context.ip`);
  if (originalTimestamp !== undefined) {
    assert.equal(ev.originalTimestamp, originalTimestamp, `${id}: originalTimestamp`);
  }
  const orig = isoMs(ev.originalTimestamp, `${id}: originalTimestamp`);
  const ts = isoMs(ev.timestamp, `${id}: timestamp`);
  const recv = isoMs(ev.receivedAt, `${id}: receivedAt`);
  isoMs(ev.sentAt, `${id}: sentAt`);
  const [start, end] = window;
  assert.ok(recv >= start - 1000 && recv <= end + 1000,
    `${id}: receivedAt ${ev.receivedAt} outside the test window ${new Date(start).toISOString()}..${new Date(end).toISOString()}`);
  // Same clock on both sides, so the skew-corrected timestamp stays close to the device time.
  assert.ok(Math.abs(ts - orig) < 30000,
    `${id}: timestamp ${ev.timestamp} is far from originalTimestamp ${ev.originalTimestamp}`);
}
