import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { startSidecar } from './helpers.js';

// A JPEG's first bytes, then enough to make the body larger than a text request may be.
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), crypto.randomBytes(700 * 1024)]);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const image = (data = JPEG) => ({ kind: 'image', mimetype: 'image/jpeg', fileName: 'photo.jpg', data: data.toString('base64') });

test('a photo is sent as bytes with its caption; the phone gets exactly those bytes, once', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    const body = { to: '+15551234567', text: 'Your cake', idempotencyKey: 'k-photo:0', media: image() };
    const a = await sc.api('POST', '/sessions/acme/messages', body);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.duplicate, false);
    const again = await sc.api('POST', '/sessions/acme/messages', body);
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.messageId, a.body.messageId);

    const sent = (await sc.api('GET', '/sandbox/acme/sent')).body.sent;
    assert.equal(sent.length, 1);
    assert.equal(sent[0].text, 'Your cake');
    assert.deepEqual(sent[0].media, { kind: 'image', mimetype: 'image/jpeg', fileName: 'photo.jpg', size: JPEG.length, sha256: sha(JPEG) });
    const onPhone = await fs.readFile(sc.app.world.mediaFile('acme', a.body.messageId));
    assert.ok(onPhone.equals(JPEG));

    // The same key for other bytes is a caller bug, not a second send.
    const other = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.from('other')]);
    const clash = await sc.api('POST', '/sessions/acme/messages', { ...body, media: image(other) });
    assert.equal(clash.status, 409);
    assert.equal(clash.body.error, 'idempotency_key_conflict');
  } finally {
    await sc.close();
  }
});

test('a document keeps its name and type and may have no caption', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    const media = { kind: 'document', mimetype: 'application/pdf', fileName: 'menu.pdf', data: PDF.toString('base64') };
    const r = await sc.api('POST', '/sessions/acme/messages', { to: '15551234567', text: '', idempotencyKey: 'k-doc:0', media });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [sent] = (await sc.api('GET', '/sandbox/acme/sent')).body.sent;
    assert.equal(sent.text, '');
    assert.equal(sent.media.fileName, 'menu.pdf');
    assert.equal(sent.media.sha256, sha(PDF));
  } finally {
    await sc.close();
  }
});

test('bad media is refused before anything is recorded or sent', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    const cases = [
      { text: '', media: undefined }, // no text and no file
      { media: { ...image(), mimetype: 'image/gif' } }, // not a photo WhatsApp shows
      { media: { ...image(), data: 'not base64!' } },
      { media: { ...image(), fileName: '../../etc/passwd' } },
      { media: { ...image(), kind: 'sticker' } },
    ];
    for (const [i, c] of cases.entries()) {
      const r = await sc.api('POST', '/sessions/acme/messages', { to: '+15551234567', text: 'x', idempotencyKey: `bad-${i}`, ...c });
      assert.equal(r.status, 400, `case ${i}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error, 'invalid_request');
      assert.equal((await sc.api('GET', `/sessions/acme/messages/bad-${i}`)).body.outcome, 'absent');
    }
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).body.sent.length, 0);
  } finally {
    await sc.close();
  }
});
