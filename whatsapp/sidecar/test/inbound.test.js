import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, startFakeWebhook, tmpDataDir, waitFor, sleep, SECRET } from './helpers.js';

const webhookEnv = (base) => ({ SIDECAR_WEBHOOK_BASE: base, SIDECAR_WEBHOOK_SECRET: SECRET });
const spoolFiles = async (dataDir, sub = 'pending') => {
  try {
    return (await fs.readdir(path.join(dataDir, 'spool', sub))).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
  } catch {
    return [];
  }
};

test('inbound messages survive Django being down: spooled, retried with backoff, delivered once, signed', async () => {
  let up = false;
  const hook = await startFakeWebhook({ status: () => (up ? 200 : 503) });
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const a = await sc.api('POST', '/sandbox/acme/inbound', { from: '+15557654321', text: 'hi there', id: 'WAID1', pushName: 'Dana' });
    assert.equal(a.status, 200);
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', type: 'image', text: 'a caption', id: 'WAID2', lid: '998877665544' });
    await waitFor(() => hook.attempts.length >= 4, { what: 'retries while down' });
    assert.equal(hook.received.length, 0);
    assert.equal((await spoolFiles(sc.dataDir)).length, 2, 'kept on disk while Django is down');
    await sleep(150);
    up = true;
    await waitFor(() => hook.received.length === 2, { what: 'delivery after recovery' });
    await waitFor(async () => (await spoolFiles(sc.dataDir)).length === 0, { what: 'spool drained' });
    await sleep(300);
    assert.equal(hook.received.length, 2, 'each message arrives exactly once');
    assert.ok(hook.attempts.every((x) => x.signatureOk));

    const byId = Object.fromEntries(hook.received.map((r) => [r.body.id, r]));
    assert.equal(byId.WAID1.url, '/webhooks/baileys/acme/');
    const ts = byId.WAID1.body.timestamp;
    assert.ok(Number.isInteger(ts) && Math.abs(ts - Date.now() / 1000) < 60);
    assert.deepEqual(byId.WAID1.body, {
      id: 'WAID1', tenant: 'acme', from: '15557654321', fromJid: '15557654321@s.whatsapp.net', fromAltJid: null,
      pushName: 'Dana', timestamp: ts, type: 'text', text: 'hi there',
    });
    assert.equal(byId.WAID2.body.type, 'image');
    assert.equal(byId.WAID2.body.text, 'a caption');
    assert.equal(byId.WAID2.body.fromJid, '998877665544@lid');
    assert.equal(byId.WAID2.body.fromAltJid, '15557654321@s.whatsapp.net');
    assert.equal(byId.WAID2.body.from, '15557654321');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('the spool survives a sidecar restart and is re-delivered on startup', async () => {
  const dataDir = await tmpDataDir();
  // Django unreachable: nothing listens on this port.
  let sc = await startSidecar({ dataDir, env: webhookEnv('http://127.0.0.1:9') });
  await sc.api('POST', '/sessions/acme/start');
  await sc.api('POST', '/sandbox/acme/inbound', { from: '15550001111', text: 'while down', id: 'WAID-R' });
  await waitFor(async () => (await spoolFiles(dataDir)).length === 1, { what: 'spooled' });
  await sc.close();

  const hook = await startFakeWebhook();
  sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  try {
    await waitFor(() => hook.received.length === 1, { what: 're-delivery after restart' });
    assert.equal(hook.received[0].body.id, 'WAID-R');
    assert.equal(hook.received[0].body.text, 'while down');
    await waitFor(async () => (await spoolFiles(dataDir)).length === 0, { what: 'spool drained' });
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('a 4xx other than 408/429 is poison: moved to spool/rejected, not retried', async () => {
  const hook = await startFakeWebhook({ status: () => 400 });
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550002222', text: 'bad', id: 'WAID-P' });
    await waitFor(async () => (await spoolFiles(sc.dataDir, 'rejected')).length === 1, { what: 'rejected' });
    await sleep(200);
    assert.equal(hook.attempts.length, 1);
    assert.equal((await spoolFiles(sc.dataDir)).length, 0);
    assert.ok(sc.logs.some((l) => l.msg === 'webhook_rejected' && l.status === 400));
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('fromMe (the owner\'s: owner URL), non-notify and group messages are not forwarded as inbound; delivery receipts go to the status URL with the key', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const sock = sc.app.world.liveSocket('acme');
    sock.emit('messages.upsert', { type: 'append', messages: [{ key: { id: 'X1', remoteJid: '1555@s.whatsapp.net', fromMe: false }, message: { conversation: 'old' } }] });
    sock.emit('messages.upsert', { type: 'notify', messages: [{ key: { id: 'X2', remoteJid: '15550003333@s.whatsapp.net', fromMe: true }, message: { conversation: 'mine' } }] });
    sock.emit('messages.upsert', { type: 'notify', messages: [{ key: { id: 'X3', remoteJid: '1203630@g.us', fromMe: false }, message: { conversation: 'group' } }] });
    sock.emit('messages.upsert', { type: 'notify', messages: [{ key: { id: 'X4', remoteJid: '15550003333@s.whatsapp.net', fromMe: false }, message: { extendedTextMessage: { text: 'extended' } }, messageTimestamp: 1700000000 }] });

    const sent = await sc.api('POST', '/sessions/acme/messages', { to: '15550003333', text: 'reply', idempotencyKey: 'k-rcpt' });
    assert.equal((await sc.api('POST', '/sandbox/acme/receipt', { messageId: sent.body.messageId, status: 'delivered' })).status, 200);
    await sc.api('POST', '/sandbox/acme/receipt', { messageId: sent.body.messageId, status: 'read' });
    await waitFor(() => hook.received.length === 4, { what: 'deliveries' });
    await sleep(100);
    assert.equal(hook.received.length, 4);
    const inbound = hook.received.filter((r) => r.url === '/webhooks/baileys/acme/');
    assert.deepEqual(inbound.map((r) => [r.body.id, r.body.text, r.body.timestamp]), [['X4', 'extended', 1700000000]]);
    const owner = hook.received.filter((r) => r.url === '/webhooks/baileys/acme/owner/');
    assert.deepEqual(owner.map((r) => r.body.id), ['X2'], 'a fromMe message we did not send is the owner\'s');
    const statuses = hook.received.filter((r) => r.url === '/webhooks/baileys/acme/status/').map((r) => r.body);
    assert.deepEqual(statuses.map((s) => s.status).sort(), ['delivered', 'read']);
    for (const s of statuses) {
      assert.equal(s.messageId, sent.body.messageId);
      assert.equal(s.idempotencyKey, 'k-rcpt');
      assert.equal(s.tenant, 'acme');
      assert.ok(Number.isInteger(s.timestamp));
    }
  } finally {
    await sc.close();
    await hook.close();
  }
});
