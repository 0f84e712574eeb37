import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckTracker } from '../src/acks.js';

test('a busy session remembers at most 1000 recent acks and keys, so its memory stays bounded', () => {
  const acks = new AckTracker();
  for (let i = 0; i < 6000; i++) {
    acks.bind(`3EB0${i}`, `key-${i}`);
    acks.note(`3EB0${i}`, 2);
  }
  assert.ok(acks.seen.size <= 1000, `remembers ${acks.seen.size} acks`);
  assert.ok(acks.keys.size <= 1000, `remembers ${acks.keys.size} keys`);
  // The recent ones, which the races are about, are still known.
  assert.equal(acks.settled('3EB05999'), true);
  assert.equal(acks.keyFor('3EB05999'), 'key-5999');
});

test('acks older than ten minutes are forgotten (the idempotency store answers for them); newer ones are kept', () => {
  let now = 0;
  const acks = new AckTracker({ now: () => now });
  acks.bind('3EB0OLD', 'k-old');
  acks.note('3EB0OLD', 0);
  now += 9 * 60 * 1000;
  acks.bind('3EB0NEW', 'k-new');
  acks.note('3EB0NEW', 2);
  assert.equal(acks.settled('3EB0OLD'), false);
  now += 2 * 60 * 1000;
  assert.equal(acks.settled('3EB0OLD'), null);
  assert.equal(acks.keyFor('3EB0OLD'), null);
  assert.equal(acks.settled('3EB0NEW'), true);
  assert.equal(acks.keyFor('3EB0NEW'), 'k-new');
});

test('an ack that arrives before the send waits for it still settles the send', async () => {
  const acks = new AckTracker();
  acks.note('3EB0FAST', 2);
  assert.equal(await acks.wait('3EB0FAST', 50), true);
  assert.equal(await acks.wait('3EB0NONE', 20), null);
});
