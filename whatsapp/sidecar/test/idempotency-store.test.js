import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IdempotencyStore } from '../src/idempotency.js';
import { withKeyLock, keyLocksInUse } from '../src/fsutil.js';
import { createLogger } from '../src/log.js';

const newStore = async () => new IdempotencyStore(await fs.mkdtemp(path.join(os.tmpdir(), 'sidecar-idem-')), createLogger({ level: 'silent' }));

test('the store keeps no lock per message once its writes are done (memory does not grow with every send)', async () => {
  const store = await newStore();
  // Each send's life in the store: pending, then unknown with its message id, then settled
  // by the server ack. All sends at once, as a busy shard does.
  await Promise.all(Array.from({ length: 300 }, async (_, i) => {
    const base = { key: `k${i}`, fp: 'f', toHash: 'h' };
    await store.record('acme', { ...base, outcome: 'pending' });
    await store.record('acme', { ...base, outcome: 'unknown', messageId: `3EB0${i}` }, { durable: false });
    assert.ok(await store.transition('acme', `k${i}`, ['unknown'], { outcome: 'sent' }));
  }));
  assert.equal(keyLocksInUse(), 0);
  assert.equal((await store.get('acme', 'k299')).outcome, 'sent');
  assert.equal(await store.keyForMessageId('acme', '3EB0299'), 'k299');
});

test('a late ack racing itself settles an unknown send exactly once', async () => {
  const store = await newStore();
  await store.record('acme', { key: 'k', fp: 'f', toHash: 'h', outcome: 'unknown', messageId: '3EB0AA' });
  const results = await Promise.all(Array.from({ length: 25 }, () => store.transition('acme', 'k', ['unknown'], { outcome: 'sent' })));
  assert.equal(results.filter(Boolean).length, 1);
  assert.equal((await store.get('acme', 'k')).outcome, 'sent');
  assert.equal(keyLocksInUse(), 0);
});

test('a key lock stays exclusive while callers come and go, also after it was released and created anew', async () => {
  let inside = 0;
  let most = 0;
  const critical = async () => {
    inside++;
    most = Math.max(most, inside);
    await new Promise((r) => setTimeout(r, 2));
    inside--;
  };
  const first = Array.from({ length: 5 }, () => withKeyLock('x', critical));
  await first[0];
  // The lock is still held by the queued callers: a newcomer must wait behind them.
  const later = Array.from({ length: 5 }, () => withKeyLock('x', critical));
  await Promise.all([...first, ...later]);
  assert.equal(keyLocksInUse(), 0);
  await Promise.all([withKeyLock('x', critical), withKeyLock('x', critical)]);
  assert.equal(most, 1);
  await assert.rejects(withKeyLock('x', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(keyLocksInUse(), 0);
});
