import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, tmpDataDir, sleep } from './helpers.js';

const msg = (key, extra = {}) => ({ to: '+15551234567', text: 'hello', idempotencyKey: key, ...extra });

test('the same idempotency key sends once, sequentially and concurrently', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    const a = await sc.api('POST', '/sessions/acme/messages', msg('k-seq'));
    assert.equal(a.status, 200);
    assert.equal(a.body.status, 'sent');
    assert.equal(a.body.duplicate, false);
    assert.match(a.body.messageId, /^3EB0/);
    const b = await sc.api('POST', '/sessions/acme/messages', msg('k-seq'));
    assert.equal(b.status, 200);
    assert.deepEqual(b.body, { ...a.body, duplicate: true });

    await sc.api('POST', '/sandbox/acme/behavior', { sendDelayMs: 100 });
    const many = await Promise.all(Array.from({ length: 8 }, () => sc.api('POST', '/sessions/acme/messages', msg('k-conc', { text: 'once' }))));
    const ids = new Set(many.map((r) => r.body.messageId));
    assert.equal(ids.size, 1);
    assert.ok(many.every((r) => r.status === 200));
    assert.equal(many.filter((r) => r.body.duplicate === false).length, 1);

    const sent = (await sc.api('GET', '/sandbox/acme/sent')).body.sent;
    assert.equal(sent.filter((s) => s.text === 'hello').length, 1);
    assert.equal(sent.filter((s) => s.text === 'once').length, 1);
    assert.equal(sent[0].to, '15551234567@s.whatsapp.net');

    const outcome = await sc.api('GET', '/sessions/acme/messages/k-conc');
    assert.equal(outcome.body.outcome, 'sent');
    assert.equal(outcome.body.messageId, [...ids][0]);
    assert.equal((await sc.api('GET', '/sessions/acme/messages/nope')).body.outcome, 'absent');

    // Reusing a key for a different message is a caller bug, not a send.
    const clash = await sc.api('POST', '/sessions/acme/messages', msg('k-seq', { text: 'other' }));
    assert.equal(clash.status, 409);
    assert.equal(clash.body.error, 'idempotency_key_conflict');
  } finally {
    await sc.close();
  }
});

test('outcomes survive a sidecar restart; a key pending at crash time becomes unknown and is never re-sent', async () => {
  const dataDir = await tmpDataDir();
  let sc = await startSidecar({ dataDir });
  const first = await (async () => {
    await sc.api('POST', '/sessions/acme/start');
    return sc.api('POST', '/sessions/acme/messages', msg('k-persist'));
  })();
  await sc.close();
  // Simulate a crash in the middle of a send: "pending" on disk, no final record.
  await fs.appendFile(path.join(dataDir, 'idempotency', 'acme.jsonl'), `${JSON.stringify({ key: 'k-crash', outcome: 'pending', at: new Date().toISOString() })}\n{"key":"torn`);

  sc = await startSidecar({ dataDir });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const again = await sc.api('POST', '/sessions/acme/messages', msg('k-persist'));
    assert.equal(again.status, 200);
    assert.equal(again.body.messageId, first.body.messageId);
    assert.equal(again.body.duplicate, true);
    assert.equal((await sc.api('GET', '/sessions/acme/messages/k-crash')).body.outcome, 'unknown');
    const retry = await sc.api('POST', '/sessions/acme/messages', msg('k-crash'));
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error, 'outcome_unknown');
    // The phone keeps what the first process sent; the new process sent nothing.
    assert.deepEqual((await sc.api('GET', '/sandbox/acme/sent')).body.sent.map((s) => s.messageId), [first.body.messageId],
      'nothing sent by the new process');
  } finally {
    await sc.close();
  }
});

test('a hanging send ends at the timeout with 504, the key is unknown, and a retry does not send', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { acceptThenHang: true });
    const t0 = Date.now();
    const r = await sc.api('POST', '/sessions/acme/messages', msg('k-hang'));
    const elapsed = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(r.body.error, 'send_timeout');
    assert.ok(elapsed >= 380 && elapsed < 2000, `took ${elapsed} ms`);
    assert.equal((await sc.api('GET', '/sessions/acme/messages/k-hang')).body.outcome, 'unknown');
    assert.equal((await sc.api('GET', '/sessions/acme/sending-status')).body.activeSends, 0);

    await sc.api('POST', '/sandbox/acme/behavior', { acceptThenHang: false });
    const retry = await sc.api('POST', '/sessions/acme/messages', msg('k-hang'));
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error, 'outcome_unknown');
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 1, 'the phone got it exactly once');
    const logged = sc.logs.filter((l) => l.idempotencyKey === 'k-hang').map((l) => l.msg);
    assert.deepEqual(logged.slice(0, 2), ['send_start', 'send_timeout']);
  } finally {
    await sc.close();
  }
});

test('a failed send is 502 and recorded failed; the same key may retry a failed send', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { failSends: 1 });
    const r = await sc.api('POST', '/sessions/acme/messages', msg('k-fail'));
    assert.equal(r.status, 502);
    assert.equal(r.body.error, 'send_failed');
    assert.match(r.body.detail, /injected/);
    const o = (await sc.api('GET', '/sessions/acme/messages/k-fail')).body;
    assert.equal(o.outcome, 'failed');
    assert.match(o.error, /injected/);
    const ok = await sc.api('POST', '/sessions/acme/messages', msg('k-fail'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.duplicate, false);
    const done = sc.logs.find((l) => l.msg === 'send_done' && l.idempotencyKey === 'k-fail');
    assert.equal(typeof done.durationMs, 'number');
    assert.equal(done.tenant, 'acme');
    assert.ok(!JSON.stringify(sc.logs).includes('15551234567'), 'phone numbers are masked in logs');
    assert.ok(!JSON.stringify(sc.logs).includes('test-token-123'), 'the token is never logged');
  } finally {
    await sc.close();
  }
});

test('a session that cannot send answers 409 not_ready and records nothing', async () => {
  const sc = await startSidecar();
  try {
    const r = await sc.api('POST', '/sessions/acme/messages', msg('k-nr'));
    assert.equal(r.status, 409);
    assert.equal(r.body.error, 'not_ready');
    assert.equal(r.body.canSend, false);
    assert.equal((await sc.api('GET', '/sessions/acme/messages/k-nr')).body.outcome, 'absent');
  } finally {
    await sc.close();
  }
});

test('stop and restart during a send wait for the send to finish', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { sendDelayMs: 250 });
    const sending = sc.api('POST', '/sessions/acme/messages', msg('k-stop'));
    await sleep(40);
    const ss = (await sc.api('GET', '/sessions/acme/sending-status')).body;
    assert.deepEqual({ isSending: ss.isSending, activeSends: ss.activeSends }, { isSending: true, activeSends: 1 });
    const stopping = sc.api('POST', '/sessions/acme/stop');
    await sleep(20);
    // While stopping, new sends are refused rather than started on a closing socket.
    assert.equal((await sc.api('POST', '/sessions/acme/messages', msg('k-during'))).body.error, 'not_ready');
    const [sent, stopped] = await Promise.all([sending, stopping]);
    assert.equal(sent.status, 200, 'the in-flight send completed');
    assert.equal(stopped.body.connected, false);
    const order = sc.logs.filter((l) => ['send_done', 'SOCK_CLOSED'].includes(l.msg)).map((l) => l.msg);
    assert.deepEqual(order, ['send_done', 'SOCK_CLOSED']);

    // Restart = stop + start while a send is in flight.
    await sc.api('POST', '/sessions/acme/start');
    const sending2 = sc.api('POST', '/sessions/acme/messages', msg('k-restart'));
    await sleep(40);
    const restarted = await Promise.all([sc.api('POST', '/sessions/acme/stop'), sc.api('POST', '/sessions/acme/start')]);
    assert.equal((await sending2).status, 200);
    assert.equal(restarted[1].body.connected, true);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.maxOpenSockets, 1);
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 2);
  } finally {
    await sc.close();
  }
});
