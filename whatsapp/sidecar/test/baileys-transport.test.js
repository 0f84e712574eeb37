// The real transport cannot connect here (no internet); this checks it is wired to the
// real package API and builds a valid socket config without touching the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as baileys from 'baileys';
import { BaileysTransport, baileysTransportFactory, FORWARDED_EVENTS } from '../src/transports/baileys.js';
import { createLogger } from '../src/log.js';
import { reasonName } from '../src/whatsapp.js';
import { tmpDataDir } from './helpers.js';

test('the baileys package exposes the API the transport uses', () => {
  assert.equal(typeof baileys.default, 'function', 'makeWASocket default export');
  assert.equal(baileys.default, baileys.makeWASocket);
  for (const name of ['fetchLatestWaWebVersion', 'makeCacheableSignalKeyStore', 'initAuthCreds']) assert.equal(typeof baileys[name], 'function', name);
  assert.equal(typeof baileys.BufferJSON.replacer, 'function');
  assert.equal(typeof baileys.BufferJSON.reviver, 'function');
  assert.equal(typeof baileys.Browsers.ubuntu, 'function');
  assert.equal(typeof baileys.proto.Message.AppStateSyncKeyData.fromObject, 'function');
  // Our reason names agree with Baileys' DisconnectReason.
  const DR = baileys.DisconnectReason;
  for (const name of ['loggedOut', 'connectionReplaced', 'restartRequired', 'badSession', 'connectionClosed', 'connectionLost', 'multideviceMismatch', 'forbidden', 'unavailableService']) {
    assert.equal(reasonName(DR[name]), name === 'timedOut' ? 'connectionLost' : name, name);
  }
  assert.equal(DR.timedOut, DR.connectionLost);
});

test('the transport builds its socket config from our auth store, a pinned version and a quiet logger', async () => {
  const dir = await tmpDataDir();
  const logger = createLogger({ level: 'silent', destination: { write() {} } });
  const t = baileysTransportFactory({ tenant: 'acme', authDir: dir, logger, config: { waVersion: [2, 3000, 1023223821], authLockTimeoutMs: 1000 } });
  assert.ok(t instanceof BaileysTransport);
  for (const m of ['start', 'close', 'sendText', 'sendPresenceUpdate', 'logout']) assert.equal(typeof t[m], 'function', m);
  const cfg = await t.socketConfig();
  assert.deepEqual(cfg.version, [2, 3000, 1023223821]);
  assert.equal(cfg.markOnlineOnConnect, false);
  assert.equal(cfg.logger.level, 'warn');
  assert.equal(cfg.printQRInTerminal, undefined);
  assert.ok(Array.isArray(cfg.browser) && cfg.browser.length === 3);
  assert.ok(cfg.auth.creds.noiseKey, 'fresh creds from initAuthCreds');
  assert.equal(typeof cfg.auth.keys.get, 'function');
  assert.equal(t.userId, null);
  assert.deepEqual(FORWARDED_EVENTS, ['connection.update', 'messages.upsert', 'messages.update']);
  await t.close();
});

test('phone numbers and JIDs in Baileys\' own log lines keep at most their last 4 digits', async () => {
  const lines = [];
  const logger = createLogger({ level: 'info', destination: { write: (l) => lines.push(l) } });
  const t = baileysTransportFactory({ tenant: 'acme', authDir: await tmpDataDir(), logger, config: { waVersion: [2, 3000, 1], authLockTimeoutMs: 1000 } });
  const cfg = await t.socketConfig();
  // Shapes Baileys 7 logs (lib/Socket/messages-recv.js, messages-send.js): JIDs in objects,
  // in binary-node attrs, in error messages and stacks, and in the message string.
  const child = cfg.logger.child({ class: 'messages-recv' });
  const err = new Error('failed to decrypt message from 15551234567@s.whatsapp.net');
  child.warn({ key: { remoteJid: '15551234567@s.whatsapp.net', participant: '15551234567:12@s.whatsapp.net' }, jid: '99887766554433@lid' }, 'sending retry receipt');
  child.error({ err, node: { tag: 'message', attrs: { from: '15551234567@s.whatsapp.net', recipient: '15551234567', t: '1732900000' } } }, 'error in handling message');
  cfg.logger.warn('got offline message for +15551234567 / 15551234567@c.us');
  const out = lines.join('');
  assert.equal(lines.length, 3);
  assert.ok(!out.includes('15551234567'), out);
  assert.ok(!out.includes('99887766554433'), out);
  assert.ok(!out.includes('5512345'), 'not even a long part of the number');
  assert.ok(out.includes('***4567@s.whatsapp.net') && out.includes('***4433@lid'));
  assert.ok(out.includes('1732900000'), 'timestamps and other numbers stay readable');
  await t.close();
});
