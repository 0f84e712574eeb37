// What a send request may carry beyond text, and how the session performs it:
// - `media`: a staff photo or document, its bytes in base64 (the session uploads them to
//   WhatsApp; Twilio instead fetches a URL, Django's business). Sent with Baileys'
//   sendMessage(jid, { image: Buffer, caption }) / ({ document: Buffer, mimetype, fileName, caption }).
// - `presence`: behave like a person before the reply: mark the customer's messages read
//   (sock.readMessages(keys)), show "typing..." (sendPresenceUpdate('composing', jid)) for
//   `typingMs`, then 'paused', then send. Django decides whether (a per-tenant switch) and
//   for how long; the sidecar caps it inside the send timeout.
// Presence is a courtesy: a presence step that fails or hangs is logged and skipped, never
// the reason a reply is not sent.
import crypto from 'node:crypto';

export const MAX_MEDIA_BYTES = 16 * 1024 * 1024; // WhatsApp's limit for a document
// A send request with media: the file in base64 (4/3 of it) plus the rest.
export const MAX_MEDIA_REQUEST_BYTES = Math.ceil((MAX_MEDIA_BYTES * 4) / 3) + 64 * 1024;
const MEDIA_KINDS = new Set(['image', 'document']);
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png']); // what WhatsApp shows as a photo
const MAX_READ_KEYS = 50;
const MAX_TYPING_MS = 10_000;
const PRESENCE_STEP_TIMEOUT_MS = 2_000;
const USER_JID = /^(\d{6,15}(:\d+)?@s\.whatsapp\.net|\d{1,20}(:\d+)?@lid)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The `media` of a request as { kind, mimetype, fileName, data: Buffer, sha256 }, or null. Throws TypeError. */
export function parseMedia(media) {
  if (media === undefined || media === null) return null;
  if (typeof media !== 'object' || Array.isArray(media)) throw new TypeError('"media" must be an object');
  const { kind, mimetype, fileName = 'file', data } = media;
  if (!MEDIA_KINDS.has(kind)) throw new TypeError('"media.kind" must be image or document');
  if (typeof mimetype !== 'string' || !/^[\w.+-]+\/[\w.+-]+$/.test(mimetype)) throw new TypeError('"media.mimetype" must be a MIME type');
  if (kind === 'image' && !IMAGE_TYPES.has(mimetype)) throw new TypeError('an image must be image/jpeg or image/png');
  if (typeof fileName !== 'string' || !fileName || fileName.length > 200 || /[/\\\0]/.test(fileName)) throw new TypeError('"media.fileName" must be a plain file name');
  if (typeof data !== 'string' || !data || data.length % 4 !== 0 || !BASE64.test(data)) throw new TypeError('"media.data" must be base64');
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length > MAX_MEDIA_BYTES) throw new TypeError(`"media.data" exceeds ${MAX_MEDIA_BYTES} bytes`);
  return { kind, mimetype, fileName, data: bytes, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
}

/** The `presence` of a request as { read: [{ id, remoteJid }], typingMs }, or null. Throws TypeError. */
export function parsePresence(presence) {
  if (presence === undefined || presence === null) return null;
  if (typeof presence !== 'object' || Array.isArray(presence)) throw new TypeError('"presence" must be an object');
  const { read = [], typingMs = 0 } = presence;
  if (!Array.isArray(read) || read.length > MAX_READ_KEYS) throw new TypeError(`"presence.read" must be a list of at most ${MAX_READ_KEYS} keys`);
  for (const k of read) {
    if (typeof k?.id !== 'string' || !k.id || k.id.length > 100) throw new TypeError('each read key needs an "id"');
    if (typeof k.remoteJid !== 'string' || !USER_JID.test(k.remoteJid)) throw new TypeError('each read key needs a user "remoteJid"');
  }
  if (!Number.isInteger(typingMs) || typingMs < 0) throw new TypeError('"presence.typingMs" must be a non-negative integer');
  return { read: read.map((k) => ({ id: k.id, remoteJid: k.remoteJid, fromMe: false })), typingMs };
}

/** What the idempotency fingerprint covers besides the recipient: the text, and the file by its hash. */
export function contentOf(text, media) {
  return media ? `${text}\n${media.kind}:${media.mimetype}:${media.sha256}` : text;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Presence (if asked), then the message. Resolves with { messageId } like transport.sendText.
 * `sendTimeoutMs`: the bound of the whole send; typing takes at most half of it.
 */
export async function deliver(t, { jid, text, media, presence, messageId }, { sendTimeoutMs, logger, tenant }) {
  if (presence) {
    const step = async (what, fn) => {
      try {
        await bounded(Promise.resolve().then(fn), PRESENCE_STEP_TIMEOUT_MS, what);
      } catch (err) {
        logger.warn({ tenant, step: what, err: err.message }, 'presence_step_failed');
      }
    };
    if (presence.read.length) await step('read', () => t.readMessages(presence.read));
    const typingMs = Math.min(presence.typingMs, MAX_TYPING_MS, Math.floor(sendTimeoutMs / 2));
    if (typingMs > 0) {
      await step('composing', () => t.sendPresenceUpdate('composing', jid));
      await sleep(typingMs);
      await step('paused', () => t.sendPresenceUpdate('paused', jid));
    }
  }
  // `messageId`: chosen before the send, so its echo is known as ours (owner-messages.js).
  if (media) return t.sendMedia(jid, { ...media, caption: text || undefined }, { messageId });
  return t.sendText(jid, text, { messageId });
}
