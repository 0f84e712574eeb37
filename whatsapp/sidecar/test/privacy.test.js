import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, startFakeWebhook, tmpDataDir, waitFor, SECRET } from './helpers.js';
import { IdempotencyStore } from '../src/idempotency.js';
import { createLogger } from '../src/log.js';

const NUMBER = '15551234567';

// The sidecar's own files; `sandbox/` is the simulated WhatsApp's side (what the phones
// received), which an erasure on our side does not reach, as with a real phone.
async function filesMentioning(dir, needle) {
  const hits = [];
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    if (path.relative(dir, file).startsWith(`sandbox${path.sep}`)) continue;
    if ((await fs.readFile(file, 'utf8')).includes(needle)) hits.push(file);
  }
  return hits;
}

test('erasing a contact removes its idempotency records and the pending and rejected items that mention it', async () => {
  let answer = 503;
  const hook = await startFakeWebhook({ status: (req) => (req.url.includes('status') ? 503 : answer) });
  const sc = await startSidecar({ env: { SIDECAR_WEBHOOK_BASE: hook.base, SIDECAR_WEBHOOK_SECRET: SECRET } });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const sent = await sc.api('POST', '/sessions/acme/messages', { to: `+${NUMBER}`, text: 'hi', idempotencyKey: 'k-erase' });
    await sc.api('POST', '/sessions/acme/messages', { to: '+15559990000', text: 'hi', idempotencyKey: 'k-other' });
    await sc.api('POST', '/sandbox/acme/receipt', { messageId: sent.body.messageId, status: 'delivered' }); // pending (503)
    await sc.api('POST', '/sandbox/acme/inbound', { from: NUMBER, text: 'pending one', id: 'WAID-P' });
    await waitFor(() => hook.attempts.length >= 2, { what: 'pending items' });
    answer = 400;
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15559990000', lid: '4455667788', text: 'someone else', id: 'WAID-O' });
    await waitFor(async () => (await sc.api('GET', '/inbound/rejected')).body.items.length >= 1, { what: 'a rejected item' });
    answer = 413;
    await sc.api('POST', '/sandbox/acme/inbound', { from: NUMBER, text: 'rejected one', id: 'WAID-R' });
    const rejectedIds = async () => (await sc.api('GET', '/inbound/rejected')).body.items.map((i) => i.payload.id);
    await waitFor(async () => (await rejectedIds()).includes('WAID-R'), { what: 'the contact\'s rejected item' });

    const r = await sc.api('POST', '/privacy/erase', { tenant: 'acme', phone: `+${NUMBER}` });
    assert.equal(r.status, 200);
    // The receipt for k-erase, WAID-P (pending, or rejected once Django answered 400), WAID-R;
    // one more if the server ack's own receipt for k-erase is still spooled (timing).
    assert.equal(r.body.idempotencyRecords, 1);
    assert.ok(r.body.spoolItems >= 3 && r.body.spoolItems <= 4, JSON.stringify(r.body));
    assert.deepEqual(await filesMentioning(sc.dataDir, NUMBER), []);
    assert.equal((await sc.api('GET', '/sessions/acme/messages/k-erase')).body.outcome, 'absent');
    assert.equal((await sc.api('GET', '/sessions/acme/messages/k-other')).body.outcome, 'sent', 'other contacts are kept');
    assert.deepEqual((await sc.api('GET', '/inbound/rejected')).body.items.map((i) => i.payload.id), ['WAID-O']);

    // By LID: the other contact's rejected item goes.
    const byLid = await sc.api('POST', '/privacy/erase', { tenant: 'acme', jid: '4455667788@lid' });
    assert.deepEqual(byLid.body, { idempotencyRecords: 0, spoolItems: 1, mediaFiles: 0 });
    assert.ok(!JSON.stringify(sc.logs).includes(NUMBER), 'the number is never logged');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('erase refuses bad input and needs the token', async () => {
  const sc = await startSidecar();
  try {
    assert.equal((await sc.api('POST', '/privacy/erase', { tenant: 'acme', phone: NUMBER }, { token: null })).status, 401);
    for (const body of [{ phone: NUMBER }, { tenant: 'Bad!', phone: NUMBER }, { tenant: 'acme' }, { tenant: 'acme', phone: 'abc' }, { tenant: 'acme', jid: 'nobody' }, { tenant: 'acme', jid: '123@g.us' }]) {
      assert.equal((await sc.api('POST', '/privacy/erase', body)).status, 400, JSON.stringify(body));
    }
    assert.deepEqual((await sc.api('POST', '/privacy/erase', { tenant: 'acme', phone: NUMBER })).body, { idempotencyRecords: 0, spoolItems: 0, mediaFiles: 0 });
  } finally {
    await sc.close();
  }
});

test('idempotency records expire after the retention period; recent ones stay', async () => {
  const dataDir = await tmpDataDir();
  const store = new IdempotencyStore(dataDir, createLogger({ destination: { write() {} } }));
  await store.record('acme', { key: 'old', outcome: 'sent', messageId: 'M-OLD' });
  await store.record('acme', { key: 'new', outcome: 'sent', messageId: 'M-NEW' });
  const longAgo = new Date(Date.now() - 31 * 24 * 3600 * 1000);
  await fs.utimes(store.keyFile('acme', 'old'), longAgo, longAgo);
  await fs.utimes(store.messageFile('acme', 'M-OLD'), longAgo, longAgo);
  assert.equal(await store.expire(30 * 24 * 3600 * 1000), 1);
  assert.equal(await store.get('acme', 'old'), null);
  assert.equal(await store.keyForMessageId('acme', 'M-OLD'), null);
  assert.equal((await store.get('acme', 'new')).messageId, 'M-NEW');
});

test('a legacy JSONL store is imported record by record, last line winning, then removed', async () => {
  const dataDir = await tmpDataDir();
  await fs.mkdir(path.join(dataDir, 'idempotency'), { recursive: true });
  const lines = [
    { key: 'a', outcome: 'pending', at: '2026-01-01T00:00:00.000Z' },
    { key: 'a', outcome: 'sent', messageId: 'M1', at: '2026-01-01T00:00:01.000Z' },
    { key: 'b', outcome: 'pending', at: '2026-01-01T00:00:02.000Z' },
  ].map((l) => JSON.stringify(l)).join('\n');
  await fs.writeFile(path.join(dataDir, 'idempotency', 'acme.jsonl'), `${lines}\n{"key":"torn`);
  const store = new IdempotencyStore(dataDir, createLogger({ destination: { write() {} } }));
  assert.equal((await store.get('acme', 'a')).outcome, 'sent');
  assert.equal(await store.keyForMessageId('acme', 'M1'), 'a');
  assert.equal((await store.get('acme', 'b')).outcome, 'pending');
  await assert.rejects(fs.access(path.join(dataDir, 'idempotency', 'acme.jsonl')));
});
