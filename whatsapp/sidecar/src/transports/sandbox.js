// A simulated WhatsApp behind the same transport interface as the Baileys one. It emits
// Baileys-shaped events (connection.update with a Boom-like lastDisconnect.error,
// messages.upsert, messages.update), so the session manager runs the very code path it
// runs in production. Nothing here touches the network.
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileAuthHandle } from '../state/file.js';
import { Readable } from 'node:stream';
import { mediaContent } from '../media.js';

const DEFAULT_BEHAVIOR = Object.freeze({
  sendDelayMs: 0,
  failSends: 0, // the next N sends throw
  hang: false, // sends never resolve (and never reach the phone)
  acceptThenHang: false, // the message reaches the phone, but the send never resolves
  failPresence: false, // the verification presence update fails
  pairing: 'instant', // unpaired start: 'instant' pairs silently | 'scan' shows a QR, then pairs and closes with 515 like WhatsApp | 'never' shows a QR forever | 'manual' shows a QR until POST /sandbox/{tenant}/scan
  scanDelayMs: 20,
  // The server ack (messages.update status 2) after a send is written: 'auto' acks at once,
  // 'withhold' keeps it until POST /sandbox/{t}/acks releases it, 'error' answers status 0.
  acks: 'auto',
});

// proto.WebMessageInfo.Status codes WhatsApp answers a sent message with.
const ACK_CODES = Object.freeze({ server: 2, error: 0 });

const MEDIA_TYPES = new Set(['text', 'image', 'audio', 'sticker', 'location', 'video', 'document']);
// What a phone sends when the test gives no bytes or type of its own.
const DEFAULT_MIMETYPES = {
  image: 'image/jpeg', audio: 'audio/ogg; codecs=opus', sticker: 'image/webp', video: 'video/mp4', document: 'application/pdf',
};
const DEFAULT_BYTES = {
  image: Buffer.from('ffd8ffe000104a46494600', 'hex'), audio: Buffer.from('OggS sandbox voice note'), sticker: Buffer.from('RIFF....WEBPVP8 '),
  video: Buffer.from('....ftypmp42'), document: Buffer.from('%PDF-1.4 sandbox'),
};
// How WhatsApp's media host treats the injected file: 'ok'; 'expired' answers 410 until the
// phone re-uploads it (a fresh URL); 'fail' answers 500 to every download.
const MEDIA_BEHAVIORS = ['ok', 'expired', 'fail'];

// The media WhatsApp's servers hold (sandbox/{tenant}/media/<name>.bin and .json), on disk
// like held messages: a message held while the socket is down keeps its media.
class MediaHost {
  constructor(dataDir, tenant) {
    this.dir = dataDir ? path.join(dataDir, 'sandbox', tenant, 'media') : null;
    this.memory = new Map();
  }

  put(bytes, state) {
    const name = crypto.randomBytes(12).toString('hex');
    if (!this.dir) {
      this.memory.set(name, { bytes, state });
      return name;
    }
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, `${name}.bin`), bytes);
    fs.writeFileSync(path.join(this.dir, `${name}.json`), JSON.stringify(state));
    return name;
  }

  get(name) {
    if (!/^[0-9a-f]{24}$/.test(name)) return null;
    if (!this.dir) return this.memory.get(name) ?? null;
    try {
      return { bytes: fs.readFileSync(path.join(this.dir, `${name}.bin`)), state: JSON.parse(fs.readFileSync(path.join(this.dir, `${name}.json`), 'utf8')) };
    } catch {
      return null;
    }
  }
}

function mediaStatusError(code, message) {
  // Baileys' getHttpStream: new Boom(`Failed to fetch stream from ${url}`, { statusCode }).
  const err = new Error(message);
  err.output = { statusCode: code, payload: { statusCode: code, message } };
  err.isBoom = true;
  return err;
}

function boom(code, message) {
  const err = new Error(message);
  err.output = { statusCode: code, payload: { statusCode: code, message } };
  err.isBoom = true;
  return err;
}

function fakePhone(tenant) {
  const n = parseInt(crypto.createHash('sha256').update(tenant).digest('hex').slice(0, 8), 16) % 1e7;
  return `1555${String(n).padStart(7, '0')}`;
}

// The owner's own LID: Baileys puts it (the stanza's sender_lid) in remoteJidAlt of the
// owner's phone messages, so the sandbox does too and proves nobody takes it for the customer's.
function fakeLid(tenant) {
  return `${parseInt(crypto.createHash('sha256').update(`lid:${tenant}`).digest('hex').slice(0, 12), 16)}@lid`;
}

const newSandboxMessageId = () => `3EB0${crypto.randomBytes(9).toString('hex').toUpperCase()}`;

const PAIRING_MODES = ['instant', 'scan', 'never', 'manual'];

// What the phones received, per tenant, as append-only JSON lines under the data dir:
// a real phone keeps its messages when the sidecar restarts, so the sandbox's record of
// them must outlive the process too (the soak and the rolling restart count from it).
// Lines: {"event":"sent",to,text,messageId,at} and {"event":"failed",messageId} (WhatsApp
// answered that message with ERROR: it never reached the phone). A sent file has
// `media: {kind, mimetype, fileName, size, sha256}`; its bytes are kept beside the log
// (media/<messageId>) so a test can compare what the phone got.
class SentLog {
  constructor(dataDir, tenant) {
    this.file = dataDir ? path.join(dataDir, 'sandbox', tenant, 'sent.jsonl') : null;
  }

  load() {
    if (!this.file) return [];
    let text;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if (err.code === 'ENOENT') return [];
      throw err;
    }
    const sent = [];
    const byId = new Map();
    for (const line of text.split('\n')) {
      let record;
      try {
        record = JSON.parse(line);
      } catch {
        continue; // blank, or a line torn by a crash mid-append
      }
      if (record.event === 'sent') {
        const { event, ...entry } = record;
        sent.push(entry);
        byId.set(entry.messageId, entry);
      } else if (record.event === 'failed' && byId.has(record.messageId)) {
        byId.get(record.messageId).failed = true;
      }
    }
    return sent;
  }

  append(record) {
    if (!this.file) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }
}

// Messages WhatsApp's server holds for a device whose socket is down, per tenant
// (sandbox/{tenant}/held.json, rewritten atomically): the server keeps them across a
// sidecar restart, so they must not vanish with the process.
class HeldMessages {
  constructor(dataDir, tenant) {
    this.file = dataDir ? path.join(dataDir, 'sandbox', tenant, 'held.json') : null;
  }

  load() {
    if (!this.file) return [];
    try {
      return JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') return [];
      throw err;
    }
  }

  save(messages) {
    if (!this.file) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(messages));
    fs.renameSync(tmp, this.file);
  }
}

export class SandboxWorld {
  /**
   * `pairing`: how a new tenant's unpaired session pairs (SIDECAR_SANDBOX_PAIRING).
   * `dataDir`: where each tenant's sent log is kept (none: in memory only).
   */
  constructor({ pairing = 'instant', dataDir = null } = {}) {
    if (!PAIRING_MODES.includes(pairing)) throw new TypeError(`pairing must be ${PAIRING_MODES.join('|')}`);
    this.tenants = new Map();
    this.dataDir = dataDir;
    this.defaultBehavior = Object.freeze({ ...DEFAULT_BEHAVIOR, pairing });
  }

  tenant(name) {
    let t = this.tenants.get(name);
    if (!t) {
      const sentLog = new SentLog(this.dataDir, name);
      const held = new HeldMessages(this.dataDir, name);
      t = {
        sent: sentLog.load(), sentLog, behavior: { ...this.defaultBehavior }, socketsCreated: 0, openSockets: 0, maxOpenSockets: 0, current: null, seq: 0,
        offline: held.load(), // messages WhatsApp holds for the device while its socket is down
        held,
        mediaHost: new MediaHost(this.dataDir, name),
        mediaDownloads: 0,
        mediaReuploads: 0,
        withheld: [], // message ids whose server ack is held back
        activity: [], // what the customer's phone saw, in order: read receipts, presence, messages
      };
      this.tenants.set(name, t);
    }
    return t;
  }

  /** The transport factory handed to the session manager. */
  factory = (opts) => new SandboxTransport({ ...opts, world: this });

  setBehavior(tenant, patch) {
    const t = this.tenant(tenant);
    const allowed = Object.keys(DEFAULT_BEHAVIOR);
    for (const [k, v] of Object.entries(patch || {})) {
      if (!allowed.includes(k)) throw new TypeError(`unknown behavior ${k}`);
      if (k === 'pairing' && !PAIRING_MODES.includes(v)) throw new TypeError(`pairing must be ${PAIRING_MODES.join('|')}`);
      if (['sendDelayMs', 'failSends', 'scanDelayMs'].includes(k) && !(Number.isInteger(v) && v >= 0)) throw new TypeError(`${k} must be a non-negative integer`);
      if (['hang', 'acceptThenHang', 'failPresence'].includes(k) && typeof v !== 'boolean') throw new TypeError(`${k} must be a boolean`);
      if (k === 'acks' && !['auto', 'withhold', 'error'].includes(v)) throw new TypeError('acks must be auto|withhold|error');
    }
    Object.assign(t.behavior, patch);
    return { ...t.behavior };
  }

  state(tenant) {
    const t = this.tenant(tenant);
    return {
      socketsCreated: t.socketsCreated, openSockets: t.openSockets, maxOpenSockets: t.maxOpenSockets, behavior: { ...t.behavior },
      heldOffline: t.offline.length, withheldAcks: t.withheld.length, mediaDownloads: t.mediaDownloads, mediaReuploads: t.mediaReuploads,
    };
  }

  sent(tenant) {
    return this.tenant(tenant).sent.map((s) => ({ ...s }));
  }

  /** In memory, this process: [{event: 'read'|'presence'|'message', ...}] in the order the phone saw them. */
  activity(tenant) {
    return this.tenant(tenant).activity.map((a) => ({ ...a }));
  }

  /** Where the bytes of a sent file are kept (null without a data dir). */
  mediaFile(tenant, messageId) {
    return this.dataDir ? path.join(this.dataDir, 'sandbox', tenant, 'media', messageId) : null;
  }

  liveSocket(tenant) {
    const cur = this.tenant(tenant).current;
    return cur && !cur.closed ? cur : null;
  }

  /**
   * A customer message. Media types carry bytes: `media: {base64, mimetype?, fileName?}`
   * (else a small default file), and `mediaBehavior` says how the media host serves them.
   */
  inbound(tenant, { from, lid, text = '', id, type = 'text', pushName = null, media, mediaBehavior = 'ok' }) {
    if (!MEDIA_TYPES.has(type)) throw new TypeError(`type must be one of ${[...MEDIA_TYPES].join(', ')}`);
    if (!MEDIA_BEHAVIORS.includes(mediaBehavior)) throw new TypeError(`mediaBehavior must be ${MEDIA_BEHAVIORS.join('|')}`);
    if (media !== undefined && (!media || typeof media !== 'object' || typeof media.base64 !== 'string')) throw new TypeError('media must be {base64, mimetype?, fileName?}');
    const digits = String(from ?? '').replace(/^\+/, '');
    if (!/^\d{6,15}$/.test(digits)) throw new TypeError('from must be E.164 digits');
    const phoneJid = `${digits}@s.whatsapp.net`;
    const key = {
      id: id || `SBX${crypto.randomBytes(8).toString('hex').toUpperCase()}`,
      remoteJid: lid ? `${lid}@lid` : phoneJid,
      remoteJidAlt: lid ? phoneJid : undefined,
      fromMe: false,
    };
    const message = {
      text: { conversation: text },
      image: { imageMessage: { mimetype: 'image/jpeg', caption: text || undefined } },
      video: { videoMessage: { mimetype: 'video/mp4', caption: text || undefined } },
      audio: { audioMessage: { mimetype: 'audio/ogg; codecs=opus', ptt: true } },
      sticker: { stickerMessage: { mimetype: 'image/webp' } },
      document: { documentMessage: { mimetype: 'application/pdf', fileName: 'file.pdf', caption: text || undefined } },
      location: { locationMessage: { degreesLatitude: 32.08, degreesLongitude: 34.78, name: text || undefined } },
    }[type];
    if (DEFAULT_MIMETYPES[type]) this._attachMedia(tenant, Object.values(message)[0], type, media, mediaBehavior);
    const msg = { key, message, pushName, messageTimestamp: Math.floor(Date.now() / 1000) };
    this._deliver(tenant, msg);
    return key.id;
  }

  // Like WhatsApp's server: a message for a device that is offline is held and delivered
  // after the next connect, as an 'append' upsert (see SandboxTransport._deliverOffline).
  _deliver(tenant, msg) {
    const sock = this.liveSocket(tenant);
    if (!sock) {
      const t = this.tenant(tenant);
      t.offline.push(msg);
      t.held.save(t.offline);
    }
    else sock.emit('messages.upsert', { type: 'notify', messages: [msg] });
  }

  /**
   * The owner types a message to customer `to` on the phone itself (not through this
   * sidecar). The linked device receives it as Baileys does (decode-wa-message.js): fromMe,
   * the chat as remoteJid, the owner's own LID as remoteJidAlt, the owner's name as pushName.
   */
  ownerMessage(tenant, { to, lid, text, id }) {
    const digits = String(to ?? '').replace(/^\+/, '');
    if (!/^\d{6,15}$/.test(digits)) throw new TypeError('to must be E.164 digits');
    if (typeof text !== 'string' || !text) throw new TypeError('text is required');
    if (lid !== undefined && !/^\d{1,20}$/.test(String(lid))) throw new TypeError('lid must be digits');
    const key = {
      id: id || `3A${crypto.randomBytes(9).toString('hex').toUpperCase()}`, // the phone app's own id shape
      remoteJid: lid ? `${lid}@lid` : `${digits}@s.whatsapp.net`,
      remoteJidAlt: lid ? `${fakePhone(tenant)}@s.whatsapp.net` : fakeLid(tenant),
      fromMe: true,
    };
    this._deliver(tenant, { key, message: { conversation: text }, pushName: 'Owner', messageTimestamp: Math.floor(Date.now() / 1000) });
    return key.id;
  }

  // The fields Baileys' downloadMediaMessage reads (url, directPath, mediaKey, fileLength).
  _attachMedia(tenant, content, type, media, behavior) {
    const bytes = media ? Buffer.from(media.base64, 'base64') : DEFAULT_BYTES[type];
    const name = this.tenant(tenant).mediaHost.put(bytes, { expired: behavior === 'expired', fail: behavior === 'fail' });
    if (media?.mimetype) content.mimetype = String(media.mimetype);
    if (media?.fileName && type === 'document') content.fileName = String(media.fileName);
    Object.assign(content, {
      url: `https://mmg.sandbox.invalid/sbx/${name}`, directPath: `/sbx/${name}`, mediaKey: crypto.randomBytes(32).toString('base64'), fileLength: bytes.length,
    });
  }

  /** What downloadMediaMessage does against WhatsApp's media host: a stream of the bytes. */
  downloadMedia(tenant, msg) {
    const t = this.tenant(tenant);
    const content = mediaContent(msg?.message)?.content;
    if (!content) throw mediaStatusError(400, 'not a media message');
    t.mediaDownloads++;
    const blob = t.mediaHost.get(String(content.directPath || '').replace(/^\/sbx\//, ''));
    if (!blob || blob.state.expired) throw mediaStatusError(blob ? 410 : 404, `Failed to fetch stream from ${content.url}`);
    if (blob.state.fail) throw mediaStatusError(500, `Failed to fetch stream from ${content.url}`);
    const chunks = [];
    for (let i = 0; i < blob.bytes.length; i += 64 * 1024) chunks.push(blob.bytes.subarray(i, i + 64 * 1024));
    return Readable.from(chunks);
  }

  /** The phone uploads expired media again (sock.updateMediaMessage): a fresh URL. */
  reuploadMedia(tenant, msg) {
    const t = this.tenant(tenant);
    const found = mediaContent(msg?.message);
    const blob = found && t.mediaHost.get(String(found.content.directPath || '').replace(/^\/sbx\//, ''));
    t.mediaReuploads++;
    if (!blob) throw mediaStatusError(404, 'Media re-upload failed by device (NOT_FOUND)');
    const name = t.mediaHost.put(blob.bytes, { ...blob.state, expired: false });
    const copy = structuredClone(msg);
    Object.assign(mediaContent(copy.message).content, { directPath: `/sbx/${name}`, url: `https://mmg.sandbox.invalid/sbx/${name}` });
    return copy;
  }

  /** Release withheld server acks (all, or one message id) as `server` (2) or `error` (0). Returns the ids. */
  releaseAcks(tenant, { status = 'server', messageId } = {}) {
    if (!Object.hasOwn(ACK_CODES, status)) throw new TypeError('status must be server or error');
    if (messageId !== undefined && typeof messageId !== 'string') throw new TypeError('messageId must be a string');
    const sock = this.liveSocket(tenant);
    if (!sock) return null;
    const t = this.tenant(tenant);
    const released = t.withheld.filter((id) => messageId === undefined || id === messageId);
    t.withheld = t.withheld.filter((id) => !released.includes(id));
    for (const id of released) sock._ack(id, ACK_CODES[status]);
    return released;
  }

  receipt(tenant, { messageId, status }) {
    const code = { delivered: 3, read: 4 }[status];
    if (!code) throw new TypeError('status must be delivered or read');
    const sock = this.liveSocket(tenant);
    if (!sock) return false;
    const sent = this.tenant(tenant).sent.find((s) => s.messageId === messageId);
    sock.emit('messages.update', [{ key: { id: messageId, remoteJid: sent?.to, fromMe: true }, update: { status: code } }]);
    return true;
  }

  /** The phone scans the QR of a session in 'manual' pairing: it pairs (then 515, like WhatsApp). */
  scan(tenant) {
    const sock = this.liveSocket(tenant);
    if (!sock?.awaitingScan) return false;
    sock._pair();
    return true;
  }

  disconnect(tenant, code) {
    const sock = this.liveSocket(tenant);
    if (!sock) return false;
    sock._end(boom(code, `sandbox disconnect ${code}`));
    return true;
  }
}

export class SandboxTransport extends EventEmitter {
  constructor({ tenant, authDir, auth, logger, world, config }) {
    super();
    this.tenant = tenant;
    this.authDir = authDir;
    this.logger = logger;
    this.world = world;
    this.lockTimeoutMs = config?.authLockTimeoutMs ?? 30000;
    // The tenant's auth state in the sidecar's store (files or PostgreSQL).
    this.authStore = auth || fileAuthHandle(authDir, { lockTimeoutMs: this.lockTimeoutMs });
    this.t = world.tenant(tenant);
    this.closed = false;
    this.user = null;
    this.me = null;
    this.timers = new Set();
    this.t.socketsCreated++;
    this.t.openSockets++;
    this.t.maxOpenSockets = Math.max(this.t.maxOpenSockets, this.t.openSockets);
    this.t.current = this;
  }

  get userId() { return this.user?.id ?? null; }

  get meId() { return this.me; }

  get meLid() { return this.me ? fakeLid(this.tenant) : null; }

  newMessageId() { return newSandboxMessageId(); }

  _later(fn, ms = 0) {
    const timer = setTimeout(() => { this.timers.delete(timer); if (!this.closed) fn(); }, ms);
    this.timers.add(timer);
  }

  async start() {
    this.me = await this.authStore.pairedId();
    this._later(() => this._connect());
  }

  async _connect() {
    this.emit('connection.update', { connection: 'connecting' });
    if (!this.me) {
      const b = this.t.behavior;
      const id = `${fakePhone(this.tenant)}:1@s.whatsapp.net`;
      if (b.pairing === 'instant') {
        await this._saveCreds(id);
        this.me = id;
      } else {
        this.emit('connection.update', { qr: `sandbox-qr:${this.tenant}:${crypto.randomBytes(6).toString('hex')}` });
        this.awaitingScan = b.pairing === 'manual';
        if (b.pairing === 'scan') this._later(() => this._pair(), b.scanDelayMs);
        return;
      }
    }
    if (this.closed) return;
    this.user = { id: this.me, name: 'Sandbox' };
    this.emit('connection.update', { connection: 'open' });
    this._later(() => this._deliverOffline());
  }

  // Baileys 7 (lib/Socket/messages-recv.js): a message the server stored while the device
  // was offline carries attrs.offline and is upserted as type 'append', not 'notify'.
  _deliverOffline() {
    const held = this.t.offline.splice(0);
    this.t.held.save(this.t.offline);
    for (const msg of held) this.emit('messages.upsert', { type: 'append', messages: [msg] });
    this.emit('connection.update', { receivedPendingNotifications: true });
  }

  // The server's answer to a written message: messages.update with the status code.
  _ack(messageId, code) {
    const sent = this.t.sent.find((s) => s.messageId === messageId);
    if (sent && code === ACK_CODES.error && !sent.failed) {
      sent.failed = true;
      this.t.sentLog.append({ event: 'failed', messageId });
    }
    this.emit('messages.update', [{ key: { id: messageId, remoteJid: sent?.to, fromMe: true }, update: { status: code } }]);
  }

  _saveCreds(id) {
    return this.authStore.writeSimpleCreds({ me: { id, name: 'Sandbox' }, registered: true, sandbox: true });
  }

  async _pair() {
    this.awaitingScan = false;
    await this._saveCreds(`${fakePhone(this.tenant)}:1@s.whatsapp.net`);
    // What WhatsApp does after a successful pairing: it asks for a restart.
    this._end(boom(515, 'Stream Errored (restart required)'));
  }

  async sendPresenceUpdate(type, jid) {
    if (this.closed) throw boom(428, 'Connection Closed');
    if (this.t.behavior.failPresence) throw new Error(`sandbox: presence ${type} failed`);
    // Presence to a chat ("typing..."): the customer's phone shows it. The verification's
    // 'available' (no jid) is not about any chat.
    if (jid) this.t.activity.push({ event: 'presence', type, to: jid, at: new Date().toISOString() });
  }

  async readMessages(keys) {
    if (this.closed) throw boom(428, 'Connection Closed');
    this.t.activity.push({ event: 'read', keys: keys.map((k) => ({ id: k.id, remoteJid: k.remoteJid })), at: new Date().toISOString() });
  }

  async sendText(jid, text, options = {}) {
    return this._send(jid, text, null, null, options);
  }

  async sendMedia(jid, { kind, data, mimetype, fileName, caption }, options = {}) {
    const media = { kind, mimetype, fileName, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') };
    return this._send(jid, caption ?? '', media, data, options);
  }

  async _send(jid, text, media, bytes, { messageId: chosenId } = {}) {
    if (this.closed) throw boom(428, 'Connection Closed');
    const b = this.t.behavior;
    if (b.hang) return new Promise(() => {});
    if (b.failSends > 0) {
      b.failSends--;
      throw new Error('sandbox: injected send failure');
    }
    if (b.sendDelayMs) await new Promise((r) => setTimeout(r, b.sendDelayMs));
    if (this.closed) throw boom(428, 'Connection Closed');
    const messageId = chosenId || newSandboxMessageId();
    const entry = { to: jid, text, messageId, at: new Date().toISOString() };
    if (media) {
      entry.media = media;
      const file = this.world.mediaFile(this.tenant, messageId);
      if (file) {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, bytes);
      }
    }
    this.t.sentLog.append({ event: 'sent', ...entry });
    this.t.sent.push(entry);
    this.t.activity.push({ event: 'message', to: jid, messageId, media: media?.kind ?? null, at: entry.at });
    // Like Baileys (emitOwnEvents): the sent message is upserted back, fromMe, as 'append',
    // on the next tick after the relay, so before the caller of sendText runs again.
    const content = !media ? { conversation: text }
      : media.kind === 'image' ? { imageMessage: { mimetype: media.mimetype, caption: text || undefined } }
        : { documentMessage: { mimetype: media.mimetype, fileName: media.fileName, caption: text || undefined } };
    const echo = { key: { id: messageId, remoteJid: jid, fromMe: true }, message: content, messageTimestamp: Math.floor(Date.now() / 1000) };
    process.nextTick(() => { if (!this.closed) this.emit('messages.upsert', { type: 'append', messages: [echo] }); });
    // sendMessage resolves when the frame is written; the server's ack comes after, apart.
    if (b.acks === 'withhold') this.t.withheld.push(messageId);
    else this._later(() => this._ack(messageId, ACK_CODES[b.acks === 'error' ? 'error' : 'server']));
    if (b.acceptThenHang) return new Promise(() => {});
    return { messageId };
  }

  async reuploadMedia(msg) {
    if (this.closed) throw boom(428, 'Connection Closed');
    return this.world.reuploadMedia(this.tenant, msg);
  }

  async logout() {
    this._end(boom(401, 'Intentional Logout'));
  }

  // Like Baileys' end(): emit the close, then the socket is dead.
  _end(error) {
    if (this.closed) return;
    this.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
    this._markClosed();
  }

  _markClosed() {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.t.openSockets--;
    if (this.t.current === this) this.t.current = null;
  }

  async close() {
    this.removeAllListeners();
    this._markClosed();
  }
}
