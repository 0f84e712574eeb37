import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar, startFakeWebhook, waitFor, SECRET } from './helpers.js';

const msg = (key) => ({ to: '+15551234567', text: 'hello', idempotencyKey: key });
const outcome = async (sc, key) => (await sc.api('GET', `/sessions/acme/messages/${key}`)).body;

test('a send written to the socket but never acked by the server is 504 ack_timeout, unknown, and never sent again', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { acks: 'withhold' });
    const t0 = Date.now();
    const r = await sc.api('POST', '/sessions/acme/messages', msg('k-noack'));
    assert.equal(r.status, 504);
    assert.equal(r.body.error, 'ack_timeout');
    assert.ok(Date.now() - t0 >= 280, 'waited for the ack');
    assert.equal((await outcome(sc, 'k-noack')).outcome, 'unknown');

    const again = await sc.api('POST', '/sessions/acme/messages', msg('k-noack'));
    assert.equal(again.status, 409);
    assert.equal(again.body.error, 'outcome_unknown');
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 1, 'one copy on the phone');

    // The ack comes late: the key becomes sent, with the message id.
    const released = await sc.api('POST', '/sandbox/acme/acks', { status: 'server' });
    assert.deepEqual(released.body.released, [r.body.messageId]);
    await waitFor(async () => (await outcome(sc, 'k-noack')).outcome === 'sent', { what: 'the late ack recorded' });
    assert.equal((await outcome(sc, 'k-noack')).messageId, r.body.messageId);
    const dup = await sc.api('POST', '/sessions/acme/messages', msg('k-noack'));
    assert.equal(dup.status, 200);
    assert.equal(dup.body.duplicate, true);
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 1);
  } finally {
    await sc.close();
  }
});

test('an acked send answers 200 only after the server ack', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { acks: 'withhold' });
    const pending = sc.api('POST', '/sessions/acme/messages', msg('k-ack'));
    await waitFor(async () => (await sc.api('GET', '/sandbox/acme/state')).body.withheldAcks === 1, { what: 'the write' });
    assert.equal((await outcome(sc, 'k-ack')).outcome, 'pending');
    await sc.api('POST', '/sandbox/acme/acks', {});
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal((await outcome(sc, 'k-ack')).outcome, 'sent');
  } finally {
    await sc.close();
  }
});

test('an ERROR status fails the send (or a late unknown one) and posts a failed receipt with the key', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: { SIDECAR_WEBHOOK_BASE: hook.base, SIDECAR_WEBHOOK_SECRET: SECRET } });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { acks: 'error' });
    const r = await sc.api('POST', '/sessions/acme/messages', msg('k-err'));
    assert.equal(r.status, 502);
    assert.equal(r.body.error, 'send_failed');
    assert.equal((await outcome(sc, 'k-err')).outcome, 'failed');

    await sc.api('POST', '/sandbox/acme/behavior', { acks: 'withhold' });
    const u = await sc.api('POST', '/sessions/acme/messages', msg('k-late-err'));
    assert.equal(u.status, 504);
    await sc.api('POST', '/sandbox/acme/acks', { status: 'error' });
    await waitFor(async () => (await outcome(sc, 'k-late-err')).outcome === 'failed', { what: 'the late error recorded' });
    await waitFor(() => hook.received.filter((x) => x.url === '/webhooks/baileys/acme/status/').length === 2, { what: 'failed receipts' });
    const receipts = hook.received.map((x) => x.body);
    assert.deepEqual(receipts.map((x) => [x.idempotencyKey, x.status]).sort(), [['k-err', 'failed'], ['k-late-err', 'failed']]);
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('sandbox ack controls reject bad input', async () => {
  const sc = await startSidecar();
  try {
    assert.equal((await sc.api('POST', '/sandbox/acme/behavior', { acks: 'sometimes' })).status, 400);
    assert.equal((await sc.api('POST', '/sandbox/acme/acks', { status: 'toString' })).status, 400);
    assert.equal((await sc.api('POST', '/sandbox/acme/acks', {})).status, 409, 'no socket');
  } finally {
    await sc.close();
  }
});
