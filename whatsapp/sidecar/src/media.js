// Inbound media: the bytes of a customer's photo, voice note, document, sticker or video.
// The message is acknowledged to WhatsApp already, so nothing here may lose it:
//   1. a journal entry (the raw message, with its media key) is written before the download,
//      so a crash mid-download resumes at the next start;
//   2. the download is bounded in size (SIDECAR_MEDIA_MAX_BYTES, the declared fileLength
//      first, then counted) and time (per attempt), retried, and an expired media URL
//      (HTTP 404/410 from WhatsApp's media host) gets one re-upload request to the phone;
//   3. the file is written atomically under media/files/{tenant}/ with a random id;
//   4. the webhook event is spooled with the media fields (or `mediaError` when the
//      download failed for good: the message is still forwarded), then the journal goes.
// Django fetches the file by id (GET /sessions/{tenant}/media/{id}) and deletes it; the
// sweep removes files nobody fetched after SIDECAR_MEDIA_RETENTION_HOURS.
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { writeFileAtomic, readJsonOrNull } from './fsutil.js';
import { unwrap } from './whatsapp.js';
import { eachFile, contactHash } from './idempotency.js';

// Ids are ours (random), never taken from a request: anything else is refused before a
// path is built from it.
export const MEDIA_ID_RE = /^m[0-9a-f]{32}$/;
const MEDIA_FIELDS = ['imageMessage', 'audioMessage', 'documentMessage', 'stickerMessage', 'videoMessage'];
// WhatsApp's media host answers these for a URL that expired; the phone can re-upload.
const EXPIRED_STATUS = [404, 410];

export class MediaTooLarge extends Error {
  code = 'too_large';
}

class MediaTimeout extends Error {}

/** The media part of a message ({field, content}) or null for a message without media. */
export function mediaContent(message) {
  const m = unwrap(message);
  if (!m) return null;
  for (const field of MEDIA_FIELDS) if (m[field] && typeof m[field] === 'object') return { field, content: m[field] };
  return null;
}

function numberOf(v) {
  if (v === null || v === undefined) return null;
  if (typeof v.toNumber === 'function') return v.toNumber();
  if (typeof v === 'object' && 'low' in v) return (v.high >>> 0) * 2 ** 32 + (v.low >>> 0); // a Long as JSON
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** HTTP status of a download error: Baileys throws Boom errors (output.statusCode). */
export function httpStatusOf(err) {
  const s = err?.status ?? err?.output?.statusCode ?? err?.statusCode;
  return Number.isInteger(s) ? s : null;
}

// The raw message in the journal: Buffers and Uint8Arrays (media key, hashes) kept as
// base64, in the same {type: 'Buffer', data} shape as Baileys' BufferJSON.
function replacer(key, value) {
  const original = this[key];
  if (original instanceof Uint8Array) return { type: 'Buffer', data: Buffer.from(original).toString('base64') };
  return value;
}

function reviver(key, value) {
  if (value && value.type === 'Buffer' && typeof value.data === 'string') return Buffer.from(value.data, 'base64');
  return value;
}

/** Reads a stream into one Buffer, refusing more than maxBytes and giving up after timeoutMs. */
export async function readBounded(stream, { maxBytes, timeoutMs }) {
  let timer;
  const chunks = [];
  let size = 0;
  const reading = (async () => {
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > maxBytes) throw new MediaTooLarge(`more than ${maxBytes} bytes (SIDECAR_MEDIA_MAX_BYTES)`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  })();
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new MediaTimeout(`the download took longer than ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([reading, timeout]);
  } finally {
    clearTimeout(timer);
    reading.catch(() => {});
    stream.destroy?.();
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new MediaTimeout(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Files on disk: media/files/{tenant}/{id}.bin and {id}.json (type, size, when). */
export class MediaStore {
  constructor(dataDir) {
    this.root = path.join(dataDir, 'media', 'files');
  }

  _paths(tenant, id) {
    if (!MEDIA_ID_RE.test(id)) throw new TypeError('bad media id');
    const dir = path.join(this.root, tenant);
    return { bin: path.join(dir, `${id}.bin`), meta: path.join(dir, `${id}.json`) };
  }

  /** `contacts`: hashes of the sender's JIDs (contactHash), so erasure finds the file. */
  async save(tenant, bytes, { mimetype, fileName, contacts = [] }) {
    const id = `m${crypto.randomBytes(16).toString('hex')}`;
    const p = this._paths(tenant, id);
    await writeFileAtomic(p.bin, bytes, { syncDir: false });
    // The meta file last: a file is served only once both exist.
    await writeFileAtomic(p.meta, JSON.stringify({ mimetype, size: bytes.length, fileName, contacts, createdAt: new Date().toISOString() }));
    return id;
  }

  /** Deletes the tenant's files sent by a contact (by JID hash). Returns how many. */
  async erase(tenant, hashes) {
    let n = 0;
    await eachFile(path.join(this.root, tenant), async (file) => {
      const meta = await readJsonOrNull(file).catch(() => null);
      if (!meta?.contacts?.some((h) => hashes.includes(h))) return;
      await this.delete(tenant, path.basename(file, '.json'));
      n++;
    });
    return n;
  }

  /** {file, mimetype, size} or null when there is no such file. */
  async get(tenant, id) {
    const p = this._paths(tenant, id);
    const meta = await readJsonOrNull(p.meta).catch(() => null);
    if (!meta) return null;
    try {
      await fs.access(p.bin);
    } catch {
      return null;
    }
    return { file: p.bin, mimetype: meta.mimetype, size: meta.size };
  }

  async delete(tenant, id) {
    const p = this._paths(tenant, id);
    await fs.rm(p.meta, { force: true });
    await fs.rm(p.bin, { force: true });
  }

  /** Deletes files older than maxAgeMs (nobody fetched them). Returns how many. */
  async expire(maxAgeMs) {
    const before = Date.now() - maxAgeMs;
    let tenants;
    try {
      tenants = await fs.readdir(this.root);
    } catch (err) {
      if (err.code === 'ENOENT') return 0;
      throw err;
    }
    let n = 0;
    for (const tenant of tenants) {
      const dir = path.join(this.root, tenant);
      for (const name of await fs.readdir(dir).catch(() => [])) {
        const file = path.join(dir, name);
        const st = await fs.stat(file).catch(() => null);
        if (!st || st.mtimeMs >= before) continue;
        await fs.rm(file, { force: true });
        if (name.endsWith('.bin')) n++;
      }
    }
    return n;
  }

  createReadStream(file) {
    return createReadStream(file);
  }
}

/**
 * Downloads the media of inbound messages and hands the enriched webhook event to the spool.
 * `download(tenant, msg)` -> a readable stream of the decrypted bytes (throws with an HTTP
 * status for an expired URL); `reupload(tenant, msg)` -> the message with a fresh URL (asks
 * the phone through the live socket).
 */
export class InboundMedia {
  constructor({ dataDir, logger, spool, download, reupload, maxBytes, timeoutMs, retries, retryBaseMs, concurrency = 4 }) {
    this.store = new MediaStore(dataDir);
    this.journalDir = path.join(dataDir, 'media', 'journal');
    Object.assign(this, { logger, spool, download, reupload, maxBytes, timeoutMs, retries, retryBaseMs });
    // A file is held in memory while it downloads (up to maxBytes): after a reconnect
    // WhatsApp can hand over dozens of held media messages at once, so only a few download
    // at a time; the rest wait in the journal's order.
    this.slots = concurrency;
    this.queue = [];
    this.downloading = 0;
    this.running = new Map(); // journal file -> promise
    this.closed = false;
  }

  /** Stops spooling; unfinished downloads are resumed from the journal by the next process. */
  close() {
    this.closed = true;
  }

  /**
   * Forwards one inbound event: at once for a message without media, after the download
   * for one with media. Resolves when the event is spooled.
   */
  forward(tenant, payload, rawMessage) {
    const media = rawMessage?.message ? mediaContent(rawMessage.message) : null;
    if (!media) return this.spool.enqueue(tenant, 'inbound', payload);
    return this._journaled(tenant, payload, rawMessage);
  }

  async _journaled(tenant, payload, rawMessage) {
    const name = `${tenant}--${crypto.createHash('sha256').update(payload.id).digest('hex').slice(0, 32)}.json`;
    const file = path.join(this.journalDir, name);
    await writeFileAtomic(file, JSON.stringify({ tenant, payload, message: rawMessage }, replacer));
    return this._run(file, tenant, payload, rawMessage);
  }

  _run(file, tenant, payload, rawMessage) {
    if (this.running.has(file)) return this.running.get(file);
    const p = (async () => {
      const fields = await this._inSlot(() => this.fetch(tenant, rawMessage, payload.id));
      // Shutting down: the journal entry stays, and the next start downloads again.
      if (this.closed) return;
      await this.spool.enqueue(tenant, 'inbound', { ...payload, ...fields });
      await fs.rm(file, { force: true });
    })().finally(() => this.running.delete(file));
    this.running.set(file, p);
    return p;
  }

  async _inSlot(fn) {
    if (this.downloading >= this.slots) await new Promise((resolve) => this.queue.push(resolve));
    this.downloading++;
    try {
      return await fn();
    } finally {
      this.downloading--;
      this.queue.shift()?.();
    }
  }

  /** Downloads left unfinished by a previous process (crash, deploy). */
  async resume() {
    const found = [];
    await eachFile(this.journalDir, async (file) => {
      const entry = await readJsonOrNull(file, reviver).catch(() => null);
      if (!entry?.payload || !entry.message) {
        this.logger.error({ journal: path.basename(file) }, 'media_journal_unreadable');
        return;
      }
      // A proto message was written through its toJSON (bytes as base64 strings); the
      // re-upload request needs the media key as bytes again.
      const media = mediaContent(entry.message.message);
      if (typeof media?.content.mediaKey === 'string') media.content.mediaKey = Buffer.from(media.content.mediaKey, 'base64');
      found.push(this._run(file, entry.tenant, entry.payload, entry.message).catch((err) => {
        this.logger.error({ tenant: entry.tenant, id: entry.payload.id, err: err.message }, 'media_resume_failed');
      }));
    });
    if (found.length) this.logger.info({ count: found.length }, 'media_resume');
    return found.length;
  }

  /** The webhook's media fields: {media: {id, mimetype, size, fileName}} or {media: {...}, mediaError}. */
  async fetch(tenant, rawMessage, messageId) {
    const { content } = mediaContent(rawMessage.message);
    const mimetype = typeof content.mimetype === 'string' ? content.mimetype.slice(0, 100) : 'application/octet-stream';
    const fileName = typeof content.fileName === 'string' ? content.fileName.slice(0, 200) : null;
    const described = { mimetype, fileName, size: numberOf(content.fileLength) };
    const started = Date.now();
    try {
      const bytes = await this._download(tenant, rawMessage, described.size);
      const contacts = [rawMessage.key?.remoteJid, rawMessage.key?.remoteJidAlt].filter(Boolean).map(contactHash);
      const id = await this.store.save(tenant, bytes, { mimetype, fileName, contacts });
      this.logger.info({ tenant, id: messageId, mediaId: id, bytes: bytes.length, mimetype, durationMs: Date.now() - started }, 'media_stored');
      return { media: { id, mimetype, size: bytes.length, fileName } };
    } catch (err) {
      const code = err instanceof MediaTooLarge ? 'too_large' : 'download_failed';
      const detail = String(err.message || err).slice(0, 300);
      this.logger.warn({ tenant, id: messageId, mimetype, code, err: detail, durationMs: Date.now() - started }, 'media_failed');
      return { media: { id: null, ...described }, mediaError: { code, detail } };
    }
  }

  async _download(tenant, rawMessage, declaredSize) {
    if (declaredSize !== null && declaredSize > this.maxBytes) {
      throw new MediaTooLarge(`${declaredSize} bytes declared; SIDECAR_MEDIA_MAX_BYTES is ${this.maxBytes}`);
    }
    let message = rawMessage;
    let reuploaded = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const stream = await withTimeout(Promise.resolve().then(() => this.download(tenant, message)), this.timeoutMs, 'the download');
        return await readBounded(stream, { maxBytes: this.maxBytes, timeoutMs: this.timeoutMs });
      } catch (err) {
        if (err instanceof MediaTooLarge) throw err;
        if (EXPIRED_STATUS.includes(httpStatusOf(err)) && !reuploaded) {
          // The media URL expired (WhatsApp keeps media on its servers for a limited time):
          // ask the phone to upload it again, then download from the fresh URL.
          reuploaded = true;
          this.logger.info({ tenant, id: rawMessage.key?.id, status: httpStatusOf(err) }, 'media_reupload_requested');
          try {
            message = await withTimeout(Promise.resolve().then(() => this.reupload(tenant, message)), this.timeoutMs, 'the re-upload request');
            attempt--; // the re-upload is not a failed attempt
            continue;
          } catch (reErr) {
            err = new Error(`media expired and the re-upload failed: ${reErr.message}`); // eslint-disable-line no-param-reassign
          }
        }
        if (attempt >= this.retries) throw new Error(`${err.message} (after ${attempt} attempts)`);
        await new Promise((r) => setTimeout(r, this.retryBaseMs * 2 ** (attempt - 1)));
      }
    }
  }
}
