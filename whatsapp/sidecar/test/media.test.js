import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { startSidecar, startFakeWebhook, tmpDataDir, waitFor, TOKEN, SECRET } from './helpers.js';
import { MediaStore, MediaTooLarge, readBounded } from '../src/media.js';

const webhookEnv = (base, extra = {}) => ({
  SIDECAR_WEBHOOK_BASE: base, SIDECAR_WEBHOOK_SECRET: SECRET, SIDECAR_MEDIA_RETRY_BASE_MS: '10', SIDECAR_MEDIA_TIMEOUT_MS: '1000', ...extra,
});
const b64 = (buf) => Buffer.from(buf).toString('base64');
const PHOTO = Buffer.concat([Buffer.from('ffd8ffe000104a464946', 'hex'), Buffer.alloc(200_000, 7)]); // several 64 KiB chunks
const VOICE = Buffer.from('OggS\u0000\u0002opus voice note bytes');

async function fetchMedia(sc, tenant, id, { method = 'GET', token = TOKEN } = {}) {
  const res = await fetch(`${sc.base}/sessions/${tenant}/media/${id}`, { method, headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: res.status, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

async function withSidecar(env, fn) {
  const hook = await startFakeWebhook();
  const sc = await startSidecar({ env: webhookEnv(hook.base, env) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await fn(sc, hook);
  } finally {
    await sc.close();
    await hook.close();
  }
}

const delivered = (hook, id) => waitFor(() => hook.received.find((r) => r.body.id === id)?.body, { what: `webhook ${id}` });

test('a photo with a caption is downloaded, stored, and named in the webhook; Django fetches it by id with the token, then deletes it', async () => {
  await withSidecar({}, async (sc, hook) => {
    const r = await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'PHOTO1', type: 'image', text: 'is this gluten-free?', media: { base64: b64(PHOTO), mimetype: 'image/jpeg' } });
    assert.equal(r.status, 200);
    const body = await delivered(hook, 'PHOTO1');
    assert.equal(body.type, 'image');
    assert.equal(body.text, 'is this gluten-free?');
    assert.match(body.media.id, /^m[0-9a-f]{32}$/);
    assert.deepEqual({ ...body.media, id: 'x' }, { id: 'x', mimetype: 'image/jpeg', size: PHOTO.length, fileName: null });
    assert.equal(body.mediaError, undefined);

    const got = await fetchMedia(sc, 'acme', body.media.id);
    assert.equal(got.status, 200);
    assert.equal(got.type, 'image/jpeg');
    assert.ok(got.bytes.equals(PHOTO), 'the bytes the customer sent');
    assert.equal((await fetchMedia(sc, 'acme', body.media.id, { token: 'wrong' })).status, 401);
    assert.equal((await fetchMedia(sc, 'acme', body.media.id, { token: null })).status, 401);
    assert.equal((await fetchMedia(sc, 'other', body.media.id)).status, 404, 'one tenant cannot read another tenant\'s file');

    assert.equal((await fetchMedia(sc, 'acme', body.media.id, { method: 'DELETE' })).status, 204);
    assert.equal((await fetchMedia(sc, 'acme', body.media.id)).status, 404);
    assert.equal((await fetchMedia(sc, 'acme', body.media.id, { method: 'DELETE' })).status, 204, 'idempotent');
    assert.deepEqual(await fs.readdir(path.join(sc.dataDir, 'media', 'files', 'acme')), []);
  });
});

test('media ids are only ours: anything else is refused before a path is built', async () => {
  await withSidecar({}, async (sc) => {
    for (const id of ['..%2F..%2Fauth%2Facme%2Fcreds', 'm..', 'mABCDEF', `m${'0'.repeat(31)}`, `m${'0'.repeat(32)}.json`]) {
      const r = await fetchMedia(sc, 'acme', id);
      assert.equal(r.status, 400, id);
    }
    assert.equal((await fetchMedia(sc, 'acme', `m${'0'.repeat(32)}`)).status, 404);
  });
});

test('a voice note (ptt, ogg/opus), a document with its file name and a sticker keep their types', async () => {
  await withSidecar({}, async (sc, hook) => {
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'VOICE1', type: 'audio', media: { base64: b64(VOICE) } });
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'DOC1', type: 'document', media: { base64: b64('%PDF-1.4 menu'), fileName: 'menu.pdf' } });
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'STICKER1', type: 'sticker' });
    const voice = await delivered(hook, 'VOICE1');
    assert.equal(voice.type, 'audio');
    assert.equal(voice.media.mimetype, 'audio/ogg; codecs=opus');
    assert.ok((await fetchMedia(sc, 'acme', voice.media.id)).bytes.equals(VOICE));
    const doc = await delivered(hook, 'DOC1');
    assert.deepEqual([doc.type, doc.text, doc.media.mimetype, doc.media.fileName], ['document', 'menu.pdf', 'application/pdf', 'menu.pdf']);
    const sticker = await delivered(hook, 'STICKER1');
    assert.deepEqual([sticker.type, sticker.media.mimetype], ['sticker', 'image/webp']);
    assert.ok(sticker.media.size > 0);
  });
});

test('expired media: the phone is asked to re-upload once, and the fresh copy is downloaded', async () => {
  await withSidecar({}, async (sc, hook) => {
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'OLD1', type: 'image', media: { base64: b64(PHOTO) }, mediaBehavior: 'expired' });
    const body = await delivered(hook, 'OLD1');
    assert.equal(body.mediaError, undefined);
    assert.ok((await fetchMedia(sc, 'acme', body.media.id)).bytes.equals(PHOTO));
    const state = (await sc.api('GET', '/sandbox/acme/state')).body;
    assert.deepEqual([state.mediaDownloads, state.mediaReuploads], [2, 1], '410, re-upload, then the fresh URL');
    assert.ok(sc.logs.some((l) => l.msg === 'media_reupload_requested' && l.status === 410));
  });
});

test('a download that keeps failing is retried, then the message is forwarded anyway with mediaError', async () => {
  await withSidecar({ SIDECAR_MEDIA_RETRIES: '3' }, async (sc, hook) => {
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'BROKEN1', type: 'audio', mediaBehavior: 'fail' });
    const body = await delivered(hook, 'BROKEN1');
    assert.equal(body.type, 'audio');
    assert.equal(body.mediaError.code, 'download_failed');
    assert.match(body.mediaError.detail, /after 3 attempts/);
    assert.deepEqual([body.media.id, body.media.mimetype], [null, 'audio/ogg; codecs=opus'], 'staff still see what was sent');
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.mediaDownloads, 3);
  });
});

test('a file over SIDECAR_MEDIA_MAX_BYTES is not downloaded (declared size) and is forwarded with mediaError too_large', async () => {
  await withSidecar({ SIDECAR_MEDIA_MAX_BYTES: '1000' }, async (sc, hook) => {
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'BIG1', type: 'video', text: 'look', media: { base64: b64(Buffer.alloc(5000)) } });
    const body = await delivered(hook, 'BIG1');
    assert.deepEqual([body.text, body.mediaError.code, body.media.size, body.media.id], ['look', 'too_large', 5000, null]);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.mediaDownloads, 0);
  });
});

test('a stream longer than its declared size is cut at the limit; a stalled one at the time bound', async () => {
  await assert.rejects(readBounded(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), { maxBytes: 1000, timeoutMs: 1000 }), MediaTooLarge);
  const stalled = new Readable({ read() {} });
  await assert.rejects(readBounded(stalled, { maxBytes: 1000, timeoutMs: 50 }), /longer than 50 ms/);
  assert.ok(stalled.destroyed, 'the stalled download is torn down');
  assert.equal((await readBounded(Readable.from([Buffer.from('ab'), Buffer.from('c')]), { maxBytes: 3, timeoutMs: 1000 })).toString(), 'abc');
});

test('media survives Django being down (spooled with the event) and a crash mid-download (journal, resumed at start)', async () => {
  const dataDir = await tmpDataDir();
  // Django unreachable, and the first process dies before its download ends.
  let sc = await startSidecar({ dataDir, env: webhookEnv('http://127.0.0.1:9') });
  await sc.api('POST', '/sessions/acme/start');
  sc.app.media.download = () => new Promise(() => {});
  await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'CRASH1', type: 'image', text: 'caption', media: { base64: b64(PHOTO) } });
  await waitFor(async () => (await fs.readdir(path.join(dataDir, 'media', 'journal')).catch(() => [])).length === 1, { what: 'journal entry' });
  await sc.close();

  const hook = await startFakeWebhook();
  sc = await startSidecar({ dataDir, env: webhookEnv(hook.base) });
  try {
    const body = await delivered(hook, 'CRASH1');
    assert.equal(body.text, 'caption');
    assert.ok((await fetchMedia(sc, 'acme', body.media.id)).bytes.equals(PHOTO));
    await waitFor(async () => (await fs.readdir(path.join(dataDir, 'media', 'journal'))).length === 0, { what: 'journal cleared' });
    assert.equal(hook.received.filter((r) => r.body.id === 'CRASH1').length, 1);
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('files nobody fetched expire with the sweep; fresh ones stay', async () => {
  const dataDir = await tmpDataDir();
  const store = new MediaStore(dataDir);
  const old = await store.save('acme', Buffer.from('old'), { mimetype: 'image/jpeg', fileName: null });
  const fresh = await store.save('acme', Buffer.from('fresh'), { mimetype: 'image/jpeg', fileName: null });
  const past = new Date(Date.now() - 3 * 3600 * 1000);
  for (const ext of ['bin', 'json']) await fs.utimes(path.join(dataDir, 'media', 'files', 'acme', `${old}.${ext}`), past, past);
  assert.equal(await store.expire(2 * 3600 * 1000), 1);
  assert.equal(await store.get('acme', old), null);
  assert.equal((await store.get('acme', fresh)).size, 5);
});

test('erasing a contact deletes the files they sent that Django has not fetched yet; other contacts keep theirs', async () => {
  await withSidecar({}, async (sc, hook) => {
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: 'ERASE1', type: 'image' });
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550001111', lid: '4455667788', id: 'ERASE2', type: 'image' });
    const mine = await delivered(hook, 'ERASE1');
    const theirs = await delivered(hook, 'ERASE2');
    assert.deepEqual((await sc.api('POST', '/privacy/erase', { tenant: 'acme', phone: '+15557654321' })).body.mediaFiles, 1);
    assert.equal((await fetchMedia(sc, 'acme', mine.media.id)).status, 404);
    assert.equal((await fetchMedia(sc, 'acme', theirs.media.id)).status, 200);
    assert.deepEqual((await sc.api('POST', '/privacy/erase', { tenant: 'acme', jid: '4455667788@lid' })).body.mediaFiles, 1);
    assert.equal((await fetchMedia(sc, 'acme', theirs.media.id)).status, 404);
  });
});

test('only SIDECAR_MEDIA_CONCURRENCY downloads run at once; the others wait their turn and all arrive', async () => {
  await withSidecar({ SIDECAR_MEDIA_CONCURRENCY: '2' }, async (sc, hook) => {
    const original = sc.app.media.download;
    let running = 0;
    let most = 0;
    sc.app.media.download = async (tenant, msg) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 40));
      running--;
      return original(tenant, msg);
    };
    for (let i = 0; i < 6; i++) await sc.api('POST', '/sandbox/acme/inbound', { from: '15557654321', id: `BURST${i}`, type: 'image' });
    await waitFor(() => hook.received.length === 6, { what: 'all six' });
    assert.equal(most, 2);
    assert.ok(hook.received.every((r) => r.body.media.id), 'every file downloaded');
  });
});
