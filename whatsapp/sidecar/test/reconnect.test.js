import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar, startFakeWebhook, tmpDataDir, waitFor, sleep, SECRET } from './helpers.js';

const webhookEnv = (base) => ({ SIDECAR_WEBHOOK_BASE: base, SIDECAR_WEBHOOK_SECRET: SECRET });
const inboundIds = (hook) => hook.received.filter((r) => r.url === '/webhooks/baileys/acme/').map((r) => r.body.id);

test('a message that arrives while the socket is down is forwarded after the reconnect (Baileys upserts it as append)', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    assert.equal((await sc.api('POST', '/sandbox/acme/disconnect', { code: 408 })).status, 200);
    const held = await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', text: 'are you there?', id: 'WAID-GAP' });
    assert.equal(held.status, 200);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.heldOffline, 1);
    await sleep(100);
    assert.deepEqual(inboundIds(hook), [], 'nothing arrives while the socket is down');

    await sc.api('POST', '/sessions/acme/start');
    await waitFor(() => inboundIds(hook).includes('WAID-GAP'), { what: 'the held message after the reconnect' });
    assert.equal(hook.received.find((r) => r.body.id === 'WAID-GAP').body.text, 'are you there?');
    assert.ok(sc.logs.some((l) => l.msg === 'inbound_received' && l.id === 'WAID-GAP' && l.upsert === 'append'));
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('a sidecar restart keeps the last-connected mark, so messages held during the restart are forwarded', async () => {
  const dataDir = await tmpDataDir();
  const hook = await startFakeWebhook();
  let sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  await sc.api('POST', '/sessions/acme/start');
  await waitFor(() => sc.logs.some((l) => l.msg === 'connection_marked'), { what: 'the connect mark' });
  await sc.close();

  sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  try {
    // WhatsApp held this while no process was connected; the new process sees it as append.
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', text: 'during the deploy', id: 'WAID-DEPLOY' });
    await sc.api('POST', '/sessions/acme/start');
    await waitFor(() => inboundIds(hook).includes('WAID-DEPLOY'), { what: 'the message held during the restart' });
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('append upserts older than the last connect, without a timestamp, or fromMe are not forwarded', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/disconnect', { code: 428 });
    await sc.api('POST', '/sessions/acme/start');
    const sock = sc.app.world.liveSocket('acme');
    const now = Math.floor(Date.now() / 1000);
    const m = (id, extra) => ({ key: { id, remoteJid: '15550003333@s.whatsapp.net', fromMe: false }, message: { conversation: id }, ...extra });
    sock.emit('messages.upsert', { type: 'append', messages: [m('OLD', { messageTimestamp: now - 7 * 24 * 3600 })] });
    sock.emit('messages.upsert', { type: 'append', messages: [m('NO-TS')] });
    sock.emit('messages.upsert', { type: 'append', messages: [{ ...m('MINE', { messageTimestamp: now }), key: { id: 'MINE', remoteJid: '15550003333@s.whatsapp.net', fromMe: true } }] });
    sock.emit('messages.upsert', { type: 'append', messages: [m('NEW', { messageTimestamp: now })] });
    await waitFor(() => inboundIds(hook).includes('NEW'), { what: 'the new append' });
    await sleep(100);
    assert.deepEqual(inboundIds(hook), ['NEW']);
  } finally {
    await sc.close();
    await hook.close();
  }
});
