// The real WhatsApp transport (npm `baileys` 7.x). Loaded only when SIDECAR_TRANSPORT=baileys
// (this module imports baileys statically; app.js imports this module dynamically).
// It forwards Baileys' own events unchanged, so the session manager sees exactly the shapes
// the sandbox reproduces.
import { EventEmitter } from 'node:events';
import * as baileys from 'baileys';
import { fileAuthHandle } from '../state/file.js';

const {
  default: makeWASocket,
  Browsers,
  BufferJSON,
  downloadMediaMessage,
  fetchLatestWaWebVersion,
  generateMessageIDV2,
  initAuthCreds,
  makeCacheableSignalKeyStore,
  proto,
} = baileys;

export const FORWARDED_EVENTS = ['connection.update', 'messages.upsert', 'messages.update'];

let versionPromise = null;
/** The WA Web version: pinned by SIDECAR_WA_VERSION, else fetched once per process. */
export function resolveWaVersion(config, logger) {
  if (config.waVersion) return Promise.resolve(config.waVersion);
  if (!versionPromise) {
    versionPromise = fetchLatestWaWebVersion().then((r) => {
      if (r.error || !r.version) logger.warn({ err: String(r.error) }, 'wa_version_fetch_failed_using_baileys_default');
      return r.version;
    });
    versionPromise.catch(() => { versionPromise = null; });
  }
  return versionPromise;
}

export class BaileysTransport extends EventEmitter {
  constructor({ tenant, authDir, auth, logger, config }) {
    super();
    this.tenant = tenant;
    this.authDir = authDir;
    // The tenant's auth state in the sidecar's store (files or PostgreSQL).
    this.authStore = auth || fileAuthHandle(authDir, { lockTimeoutMs: config.authLockTimeoutMs });
    this.logger = logger;
    this.config = config;
    this.sock = null;
    this.auth = null;
    this.handlers = [];
    this.closed = false;
  }

  get userId() { return this.sock?.user?.id ?? null; }

  get meId() { return this.auth?.state.creds.me?.id ?? null; }

  /** The session's own LID (WhatsApp tells it at login), for recognising its own chat. */
  get meLid() { return this.auth?.state.creds.me?.lid ?? null; }

  /** A message id as sendMessage would make it; chosen before the send (see owner-messages.js). */
  newMessageId() { return generateMessageIDV2(this.sock?.user?.id); }

  /** Builds the makeWASocket config; separate so tests can check it without a network. */
  async socketConfig() {
    this.auth = await this.authStore.open({ BufferJSON, initAuthCreds, proto });
    const baileysLogger = this.logger.child({ lib: 'baileys' }, { level: 'warn' });
    return {
      auth: {
        creds: this.auth.state.creds,
        keys: makeCacheableSignalKeyStore(this.auth.state.keys, baileysLogger),
      },
      version: await resolveWaVersion(this.config, this.logger),
      browser: Browsers.ubuntu('Chrome'),
      logger: baileysLogger,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      // No message store here: returning undefined makes Baileys skip re-encrypting old messages.
      getMessage: async () => undefined,
    };
  }

  async start() {
    const cfg = await this.socketConfig();
    if (this.closed) return;
    this.sock = makeWASocket(cfg);
    const on = (event, handler) => {
      this.sock.ev.on(event, handler);
      this.handlers.push([event, handler]);
    };
    on('creds.update', () => {
      this.auth.saveCreds().catch((err) => this.logger.error({ err: err.message }, 'save_creds_failed'));
    });
    for (const event of FORWARDED_EVENTS) on(event, (data) => this.emit(event, data));
  }

  async sendPresenceUpdate(type, jid) {
    if (!this.sock) throw new Error('socket not started');
    await this.sock.sendPresenceUpdate(type, jid);
  }

  async readMessages(keys) {
    if (!this.sock) throw new Error('socket not started');
    await this.sock.readMessages(keys);
  }

  async sendText(jid, text, options = {}) {
    return this._send(jid, { text }, options);
  }

  /** A staff file (src/outgoing.js): Baileys uploads the bytes to WhatsApp's media servers. */
  async sendMedia(jid, { kind, data, mimetype, fileName, caption }, options = {}) {
    const content = kind === 'image' ? { image: data, mimetype, caption } : { document: data, mimetype, fileName, caption };
    return this._send(jid, content, options);
  }

  // `messageId`: our own id (sendMessage's options.messageId overrides the one it would
  // generate), so the echo upsert Baileys emits before this resolves is recognised as ours.
  async _send(jid, content, { messageId: chosenId } = {}) {
    if (!this.sock) throw new Error('socket not started');
    const msg = await this.sock.sendMessage(jid, content, chosenId ? { messageId: chosenId } : {});
    const messageId = msg?.key?.id;
    if (!messageId) throw new Error('sendMessage returned no message id');
    return { messageId };
  }

  /** Asks the phone to upload expired media again; resolves to the message with a fresh URL. */
  async reuploadMedia(msg) {
    if (!this.sock) throw new Error('socket not started');
    return this.sock.updateMediaMessage(msg);
  }

  async logout() {
    if (this.sock) await this.sock.logout();
  }

  // Remove every listener, end the socket and wait for it; only then may a new one be made.
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.removeAllListeners();
    const sock = this.sock;
    if (!sock) return;
    for (const [event, handler] of this.handlers) sock.ev.off(event, handler);
    this.handlers = [];
    try {
      await sock.end(undefined);
    } finally {
      // Persist the final creds through the same serialized writer.
      await this.auth?.saveCreds().catch((err) => this.logger.error({ err: err.message }, 'save_creds_failed'));
    }
  }
}

/**
 * The decrypted bytes of a media message, as a stream (src/media.js bounds size and time).
 * The context makes Baileys ask the phone to re-upload expired media; rc14 checks
 * `error.status`, which its own Boom errors lack (they carry output.statusCode), so
 * src/media.js also asks for the re-upload itself on a 404/410.
 */
export function downloadMediaStream(msg, { logger, reuploadRequest }) {
  return downloadMediaMessage(msg, 'stream', {}, { logger, reuploadRequest });
}

export const baileysTransportFactory = (opts) => new BaileysTransport(opts);
