// The real Baileys download path (downloadMediaMessage: HTTP fetch + AES-256-CBC decryption
// with keys derived from the message's media key) through src/media.js, against a local
// media host serving a file encrypted by Baileys' own encryptedStream, as WhatsApp's
// media servers hold it. No network beyond loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs/promises';
import * as baileys from 'baileys';
import { downloadMediaStream } from '../src/transports/baileys.js';
import { InboundMedia } from '../src/media.js';
import { tmpDataDir } from './helpers.js';
import { createLogger } from '../src/log.js';

const { encryptedStream } = baileys;

async function mediaHost(encrypted) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    if (req.url === '/expired') {
      res.writeHead(410);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    res.end(encrypted);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, hits, close: () => new Promise((r) => server.close(r)) };
}

test('a voice note encrypted as WhatsApp stores it is downloaded and decrypted; an expired URL is re-uploaded first', async () => {
  const voice = Buffer.concat([Buffer.from('OggS'), Buffer.alloc(70_000, 3)]);
  const enc = await encryptedStream(voice, 'audio');
  const encrypted = await fs.readFile(enc.encFilePath);
  await fs.rm(enc.encFilePath, { force: true });
  const host = await mediaHost(encrypted);
  const spooled = [];
  const reuploads = [];
  const logs = [];
  const logger = createLogger({ level: 'debug', destination: { write: (l) => logs.push(JSON.parse(l)) } });
  const media = new InboundMedia({
    dataDir: await tmpDataDir(),
    logger,
    spool: { enqueue: async (tenant, kind, payload) => spooled.push(payload) },
    download: (tenant, msg) => downloadMediaStream(msg, { logger, reuploadRequest: (m) => media.reupload(tenant, m) }),
    // What sock.updateMediaMessage resolves to: the same message with a fresh URL.
    reupload: async (tenant, msg) => {
      reuploads.push(msg.key.id);
      return { ...msg, message: { audioMessage: { ...msg.message.audioMessage, url: `${host.base}/fresh` } } };
    },
    maxBytes: 1_000_000,
    timeoutMs: 5000,
    retries: 2,
    retryBaseMs: 10,
  });
  try {
    const msg = {
      key: { id: 'WAVOICE', remoteJid: '15551234567@s.whatsapp.net', fromMe: false },
      message: { audioMessage: { url: `${host.base}/expired`, mimetype: 'audio/ogg; codecs=opus', ptt: true, mediaKey: enc.mediaKey, fileLength: enc.fileLength } },
    };
    await media.forward('acme', { id: 'WAVOICE', type: 'audio', text: '' }, msg);
    const [event] = spooled;
    assert.equal(event.mediaError, undefined, JSON.stringify(event.mediaError));
    assert.deepEqual(reuploads, ['WAVOICE'], 'one re-upload request for the expired URL');
    assert.deepEqual(host.hits, ['/expired', '/fresh']);
    // rc14's own re-upload path checks error.status, which its Boom errors lack: ours asked.
    assert.ok(logs.some((l) => l.msg === 'media_reupload_requested' && l.status === 410));
    const stored = await media.store.get('acme', event.media.id);
    assert.ok((await fs.readFile(stored.file)).equals(voice), 'the plaintext the customer recorded');
    assert.equal(event.media.size, voice.length);
  } finally {
    await host.close();
  }
});
