import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar, tmpDataDir, waitFor } from './helpers.js';

const send = (sc, text, key) => sc.api('POST', '/sessions/acme/messages', { to: '+15551230001', text, idempotencyKey: key });

test('what the phone received survives a sidecar restart, failed copies marked', async () => {
  const dataDir = await tmpDataDir();
  let sc = await startSidecar({ dataDir });
  await sc.api('POST', '/sessions/acme/start');
  assert.equal((await send(sc, 'first answer', 'k1')).status, 200);
  await sc.api('POST', '/sandbox/acme/behavior', { acks: 'error' });
  assert.equal((await send(sc, 'refused answer', 'k2')).status, 502);
  await sc.close();

  sc = await startSidecar({ dataDir });
  try {
    const sent = (await sc.api('GET', '/sandbox/acme/sent')).body.sent;
    assert.deepEqual(sent.map((s) => [s.text, s.to, Boolean(s.failed)]),
      [['first answer', '15551230001@s.whatsapp.net', false], ['refused answer', '15551230001@s.whatsapp.net', true]]);
    await sc.api('POST', '/sessions/acme/start');
    assert.equal((await send(sc, 'after the restart', 'k3')).status, 200);
    assert.deepEqual((await sc.api('GET', '/sandbox/acme/sent')).body.sent.map((s) => s.text),
      ['first answer', 'refused answer', 'after the restart']);
  } finally {
    await sc.close();
  }
});

test('messages WhatsApp holds for an offline device survive a sidecar restart', async () => {
  const dataDir = await tmpDataDir();
  let sc = await startSidecar({ dataDir });
  assert.equal((await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', text: 'still there?', id: 'WAID-HELD' })).status, 200);
  await sc.close();

  sc = await startSidecar({ dataDir });
  try {
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.heldOffline, 1);
    await sc.api('POST', '/sessions/acme/start');
    await waitFor(async () => (await sc.api('GET', '/sandbox/acme/state')).body.heldOffline === 0, { what: 'the held message delivered' });
    await sc.close();
    sc = await startSidecar({ dataDir });
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.heldOffline, 0, 'a delivered message is not held again');
  } finally {
    await sc.close();
  }
});
