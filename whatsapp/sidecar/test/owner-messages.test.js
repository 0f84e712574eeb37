// The owner answering from the phone: fromMe messages this sidecar did not send go to
// Django's owner webhook (spooled like inbound); the echoes of our own sends never do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, startFakeWebhook, tmpDataDir, waitFor, sleep, SECRET } from './helpers.js';
import { OwnSends, OwnerMessages, ownerPayloads } from '../src/owner-messages.js';

const webhookEnv = (base) => ({ SIDECAR_WEBHOOK_BASE: base, SIDECAR_WEBHOOK_SECRET: SECRET });
const ownerPosts = (hook) => hook.received.filter((r) => r.url === '/webhooks/baileys/acme/owner/');
const now = () => Math.floor(Date.now() / 1000);

/** Counts the fromMe upserts the socket emits (the echoes WhatsApp gives of our own sends). */
function countEchoes(sc, tenant) {
  const echoes = [];
  sc.app.world.liveSocket(tenant).on('messages.upsert', (u) => {
    for (const m of u.messages) if (m.key.fromMe) echoes.push({ type: u.type, id: m.key.id });
  });
  return echoes;
}

test('the owner typing on the phone is forwarded to the owner webhook; our own sends, echoed as fromMe, never are', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    const echoes = countEchoes(sc, 'acme');
    const sends = await Promise.all([1, 2, 3].map((i) => sc.api('POST', '/sessions/acme/messages', { to: '15557654321', text: `bot answer ${i}`, idempotencyKey: `k${i}` })));
    assert.deepEqual(sends.map((r) => r.status), [200, 200, 200]);
    const owner = await sc.api('POST', '/sandbox/acme/owner-message', { to: '+15557654321', text: 'I will call you, Dana' });
    assert.equal(owner.status, 200);

    await waitFor(() => ownerPosts(hook).length === 1, { what: 'the owner message posted' });
    await sleep(300);
    // WhatsApp echoed every send back as a fromMe 'append' upsert, with the id we chose.
    assert.deepEqual(echoes.filter((e) => e.type === 'append').map((e) => e.id).sort(), sends.map((r) => r.body.messageId).sort());
    assert.equal(ownerPosts(hook).length, 1, 'only the owner message, none of our three sends');
    assert.equal(hook.received.length, 1, 'nothing went to the inbound webhook either');
    const body = ownerPosts(hook)[0].body;
    assert.ok(Math.abs(body.timestamp - now()) < 60);
    assert.deepEqual(body, {
      id: owner.body.id, tenant: 'acme', from: '15557654321', fromJid: '15557654321@s.whatsapp.net',
      // Baileys fills these from the sender (the owner): never passed on as the customer's.
      fromAltJid: null, pushName: null,
      timestamp: body.timestamp, type: 'text', text: 'I will call you, Dana',
    });
    assert.ok(hook.attempts.every((a) => a.signatureOk));
    const line = sc.logs.find((l) => l.msg === 'owner_message_received');
    assert.equal(line.to, '***4321');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('owner messages survive Django being down and a sidecar restart (the same spool as inbound)', async () => {
  const dataDir = await tmpDataDir();
  let sc = await startSidecar({ dataDir, env: webhookEnv('http://127.0.0.1:9') });
  await sc.api('POST', '/sessions/acme/start');
  await sc.api('POST', '/sandbox/acme/owner-message', { to: '15550001111', text: 'typed while Django was down', id: '3AOWNER1' });
  const pending = async () => (await fs.readdir(path.join(dataDir, 'spool', 'pending')).catch(() => [])).filter((f) => f.includes('-owner-acme'));
  await waitFor(async () => (await pending()).length === 1, { what: 'spooled' });
  await sc.close();

  const hook = await startFakeWebhook();
  sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  try {
    await waitFor(() => ownerPosts(hook).length === 1, { what: 're-delivery after restart' });
    assert.equal(ownerPosts(hook)[0].body.id, '3AOWNER1');
    await waitFor(async () => (await pending()).length === 0, { what: 'spool drained' });
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('an owner message written while the socket was down arrives as append after the reconnect and is forwarded', async () => {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sessions/acme/stop');
    await sc.api('POST', '/sandbox/acme/owner-message', { to: '15550002222', text: 'sent from the phone meanwhile', id: '3AOFFLINE' });
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.heldOffline, 1);
    await sc.api('POST', '/sessions/acme/start');
    await waitFor(() => ownerPosts(hook).length === 1, { what: 'the held owner message' });
    assert.equal(ownerPosts(hook)[0].body.id, '3AOFFLINE');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('an id this sidecar sent before a restart is still ours (its idempotency index on disk)', async () => {
  const dataDir = await tmpDataDir();
  const hook = await startFakeWebhook();
  let sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  await sc.api('POST', '/sessions/acme/start');
  const sent = await sc.api('POST', '/sessions/acme/messages', { to: '15557654321', text: 'before the restart', idempotencyKey: 'k-old' });
  assert.equal(sent.status, 200);
  await sc.close();
  sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    // WhatsApp replays that message to the new socket as a fromMe upsert (a history resync).
    sc.app.world.liveSocket('acme').emit('messages.upsert', { type: 'notify', messages: [{ key: { id: sent.body.messageId, remoteJid: '15557654321@s.whatsapp.net', fromMe: true }, message: { conversation: 'before the restart' }, messageTimestamp: now() }] });
    await sc.api('POST', '/sandbox/acme/owner-message', { to: '15557654321', text: 'the owner', id: '3AREAL' });
    await waitFor(() => ownerPosts(hook).length >= 1, { what: 'the real owner message' });
    await sleep(200);
    assert.deepEqual(ownerPosts(hook).map((r) => r.body.id), ['3AREAL']);
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('a LID chat is named by its LID only; the owner\'s own chat, groups and reactions are not forwarded', () => {
  const selfJids = ['15559990000:3@s.whatsapp.net', '15559990000:3@s.whatsapp.net', '777000111@lid'];
  const msg = (id, remoteJid, message, extra = {}) => ({ key: { id, remoteJid, fromMe: true, ...extra }, message, messageTimestamp: now() });
  const out = ownerPayloads('acme', {
    type: 'notify',
    messages: [
      msg('L1', '4455667788@lid', { conversation: 'to a LID chat' }, { remoteJidAlt: '15559990000@s.whatsapp.net' }),
      msg('SELF1', '15559990000@s.whatsapp.net', { conversation: 'note to self' }),
      msg('SELF2', '777000111@lid', { conversation: 'note to self' }),
      msg('G1', '120363000000@g.us', { conversation: 'group' }),
      msg('R1', '15551112222@s.whatsapp.net', { reactionMessage: { text: '👍' } }),
      { key: { id: 'IN1', remoteJid: '15551112222@s.whatsapp.net', fromMe: false }, message: { conversation: 'a customer' }, messageTimestamp: now() },
    ],
  }, { selfJids });
  assert.deepEqual(out.map((p) => [p.id, p.from, p.fromJid, p.fromAltJid]), [['L1', null, '4455667788@lid', null]]);
  // An old 'append' (history) is not new; one after the last connect is.
  const old = { type: 'append', messages: [msg('OLD', '15551112222@s.whatsapp.net', { conversation: 'x' }, {})] };
  old.messages[0].messageTimestamp = now() - 3600;
  assert.equal(ownerPayloads('acme', old, { appendSince: now() - 60 }).length, 0);
  assert.equal(ownerPayloads('acme', old, { appendSince: null }).length, 0);
});

test('the id is remembered before the send starts: an echo emitted inside sendText is not taken for the owner', async () => {
  const spooled = [];
  const om = new OwnerMessages({
    spool: { enqueue: async (tenant, kind, payload) => { spooled.push({ kind, id: payload.id }); } },
    idempotency: { keyForMessageId: async () => null },
    logger: { info() {}, error() {} },
  });
  // A transport that upserts its echo synchronously, before sendText even returns.
  const transport = {
    newMessageId: () => '3EB0SYNC',
    sendText(jid, text, { messageId }) {
      om.onUpsert('acme', { type: 'append', messages: [{ key: { id: messageId, remoteJid: jid, fromMe: true }, message: { conversation: text }, messageTimestamp: now() }] }, { appendSince: now() - 10, selfJids: [] });
      return { messageId };
    },
  };
  transport.sendText('15557654321@s.whatsapp.net', 'hi', { messageId: om.idForSend('acme', transport) });
  om.onUpsert('acme', { type: 'notify', messages: [{ key: { id: '3AOTHER', remoteJid: '15557654321@s.whatsapp.net', fromMe: true }, message: { conversation: 'owner' }, messageTimestamp: now() }] }, { selfJids: [] });
  await sleep(20);
  assert.deepEqual(spooled, [{ kind: 'owner', id: '3AOTHER' }]);
});

test('OwnSends is bounded and expires', () => {
  const own = new OwnSends({ keepMax: 3, keepMs: 50 });
  for (const id of ['a', 'b', 'c', 'd']) own.remember('acme', id);
  assert.deepEqual(['a', 'b', 'c', 'd'].map((id) => own.has('acme', id)), [false, true, true, true]);
  assert.equal(own.has('other', 'b'), false, 'per tenant');
});

test('an owner message Django refuses for good is listed as kind "owner" (not as a customer message)', async () => {
  const hook = await startFakeWebhook({ status: () => 400 });
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/owner-message', { to: '15550003333', text: 'refused' });
    const items = await waitFor(async () => {
      const r = await sc.api('GET', '/inbound/rejected');
      return r.body.items.length === 1 && r.body.items;
    }, { what: 'rejected item' });
    assert.equal(items[0].kind, 'owner');
    assert.equal(items[0].payload.text, 'refused');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('the sandbox refuses a bad owner message', async () => {
  const sc = await startSidecar();
  try {
    assert.equal((await sc.api('POST', '/sandbox/acme/owner-message', { to: 'nobody', text: 'x' })).status, 400);
    assert.equal((await sc.api('POST', '/sandbox/acme/owner-message', { to: '15550003333' })).status, 400);
  } finally {
    await sc.close();
  }
});

test('the real transport sends with the id chosen beforehand, in Baileys\' own id shape', async () => {
  const { baileysTransportFactory } = await import('../src/transports/baileys.js');
  const { createLogger } = await import('../src/log.js');
  const t = baileysTransportFactory({ tenant: 'acme', authDir: await tmpDataDir(), logger: createLogger({ level: 'silent', destination: { write() {} } }), config: { waVersion: [2, 3000, 1], authLockTimeoutMs: 1000 } });
  const calls = [];
  // Baileys' sendMessage(jid, content, options): options.messageId overrides the generated id.
  t.sock = { user: { id: '15559990000:3@s.whatsapp.net' }, sendMessage: async (jid, content, options) => { calls.push([jid, content, options]); return { key: { id: options.messageId } }; } };
  const id = t.newMessageId();
  assert.match(id, /^3EB0[0-9A-F]{18}$/);
  assert.notEqual(t.newMessageId(), id);
  assert.deepEqual(await t.sendText('15557654321@s.whatsapp.net', 'hi', { messageId: id }), { messageId: id });
  assert.deepEqual(calls, [['15557654321@s.whatsapp.net', { text: 'hi' }, { messageId: id }]]);
});
