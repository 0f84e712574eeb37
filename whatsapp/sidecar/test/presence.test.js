import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar } from './helpers.js';

const JID = '15551234567@s.whatsapp.net';
const send = (sc, key, extra = {}) => sc.api('POST', '/sessions/acme/messages', { to: '+15551234567', text: 'We open at 8.', idempotencyKey: key, ...extra });
const activity = async (sc) => (await sc.api('GET', '/sandbox/acme/activity')).body.activity;

test('with presence the phone sees: read, typing..., paused, then the message; typing lasts as asked', async () => {
  const sc = await startSidecar({ env: { SIDECAR_SEND_TIMEOUT_MS: '3000', SIDECAR_ACK_TIMEOUT_MS: '1000' } });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const presence = { read: [{ id: 'SBXIN1', remoteJid: JID }, { id: 'SBXIN2', remoteJid: JID }], typingMs: 300 };
    const started = Date.now();
    const r = await send(sc, 'k-typing:0', { presence });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const events = await activity(sc);
    assert.deepEqual(events.map((e) => e.type ? `${e.event}:${e.type}` : e.event), ['read', 'presence:composing', 'presence:paused', 'message']);
    assert.deepEqual(events[0].keys, presence.read);
    assert.equal(events[1].to, JID);
    assert.ok(Date.parse(events[2].at) - Date.parse(events[1].at) >= 280, 'typing lasted the time asked');
    assert.ok(Date.now() - started >= 300);

    // A repeated request (Django's retry) sends nothing, so it shows nothing either.
    assert.equal((await send(sc, 'k-typing:0', { presence })).body.duplicate, true);
    assert.equal((await activity(sc)).length, 4);
  } finally {
    await sc.close();
  }
});

test('without presence the phone sees only the message; typing is capped within the send timeout', async () => {
  const sc = await startSidecar({ env: { SIDECAR_SEND_TIMEOUT_MS: '1000', SIDECAR_ACK_TIMEOUT_MS: '500' } });
  try {
    await sc.api('POST', '/sessions/acme/start');
    assert.equal((await send(sc, 'k-plain:0')).status, 200);
    assert.deepEqual((await activity(sc)).map((e) => e.event), ['message']);

    const started = Date.now();
    const r = await send(sc, 'k-long:0', { presence: { read: [], typingMs: 60000 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Date.now() - started < 1000, 'typing took at most half the send timeout');
  } finally {
    await sc.close();
  }
});

test('a presence step that fails never stops the reply', async () => {
  const sc = await startSidecar({ env: { SIDECAR_SEND_TIMEOUT_MS: '2000' } });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/behavior', { failPresence: true });
    const r = await send(sc, 'k-nopresence:0', { presence: { read: [], typingMs: 50 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 1);
    assert.ok(sc.logs.some((l) => l.msg === 'presence_step_failed'));

    const bad = await send(sc, 'k-badpresence:0', { presence: { read: [{ id: 'X', remoteJid: 'nobody' }], typingMs: 10 } });
    assert.equal(bad.status, 400);
  } finally {
    await sc.close();
  }
});
