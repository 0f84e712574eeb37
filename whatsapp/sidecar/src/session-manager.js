// One WhatsApp socket per tenant, ever. Every path that creates a socket goes through the
// per-tenant single-flight start; the old socket is fully closed (listeners removed, ended,
// awaited) before a new one exists. "connected" only after verification. No hidden
// reconnect: only 515 restartRequired restarts, by itself, through the same start.
import crypto from 'node:crypto';
import { authDirFor } from './auth-store.js';
import { FileAuthStore } from './state/file.js';
import { NoFence, isFenced } from './state/fence.js';
import { maskPhone } from './log.js';
import { disconnectCode, reasonName, inboundPayloads, receiptUpdates } from './whatsapp.js';
import { AckTracker, ackUpdates, settles } from './acks.js';
import { contactHash } from './idempotency.js';
import { contentOf, deliver } from './outgoing.js';
import { OwnerMessages } from './owner-messages.js';

class SendTimeoutError extends Error {}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new SendTimeoutError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const RESTART_WINDOW_MS = 60_000;
const MAX_AUTO_RESTARTS_PER_WINDOW = 3;

class Session {
  constructor(tenant) {
    this.tenant = tenant;
    this.transport = null;
    this.startPromise = null;
    this.stopPromise = null;
    this.stopping = false;
    this.connected = false;
    this.connectedSince = null;
    this.qr = null;
    this.lastDisconnect = null;
    this.closing = Promise.resolve();
    this.waiter = null;
    this.activeSends = 0;
    this.drainWaiters = [];
    this.inflight = new Map(); // idempotencyKey -> Promise<result>
    this.epoch = 0;
    this.socketsCreated = 0;
    this.autoRestarts = [];
    this.acks = new AckTracker(); // outlives sockets: a late ack may come on the next one
    this.appendSince = null; // seconds; `append` upserts from then on are new messages
    this.openedAt = null;
    this.marking = Promise.resolve();
  }

  waitingAck(messageId) {
    return this.acks.waiters.has(messageId);
  }

  get canSend() {
    return Boolean(this.connected && this.transport && !this.startPromise && !this.stopping);
  }
}

export class SessionManager {
  // `auth` and `fence` come from the state store (src/state/); without them: files, unfenced.
  constructor({ config, logger, transportFactory, idempotency, spool, marks, auth = null, fence = null, media = null }) {
    this.config = config;
    this.auth = auth || new FileAuthStore(config.dataDir, { lockTimeoutMs: config.authLockTimeoutMs });
    this.fence = fence || new NoFence();
    this.media = media; // InboundMedia: downloads a message's media before spooling it
    this.marks = marks;
    this.logger = logger;
    this.factory = transportFactory;
    this.idem = idempotency;
    this.spool = spool;
    this.sessions = new Map();
    this.owner = new OwnerMessages({ spool, idempotency, logger }); // the owner's phone messages
  }

  session(tenant) {
    let s = this.sessions.get(tenant);
    if (!s) {
      s = new Session(tenant);
      this.sessions.set(tenant, s);
    }
    return s;
  }

  authDir(tenant) {
    return authDirFor(this.config.dataDir, tenant);
  }

  async status(tenant) {
    const s = this.session(tenant);
    return {
      tenant,
      connected: s.connected,
      canSend: s.canSend,
      authPaired: Boolean(await this.auth.pairedId(tenant)),
      starting: Boolean(s.startPromise),
      stopping: s.stopping,
      qr: s.qr,
      lastDisconnect: s.lastDisconnect,
      connectedSince: s.connectedSince,
      activeSends: s.activeSends,
    };
  }

  sendingStatus(tenant) {
    const s = this.session(tenant);
    return { tenant, isSending: s.activeSends > 0, activeSends: s.activeSends };
  }

  liveSessionCount() {
    let n = 0;
    for (const s of this.sessions.values()) if (s.transport) n++;
    return n;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Idempotent, single-flight. Resolves with the status once connected, showing a QR, closed or timed out. */
  start(tenant) {
    const s = this.session(tenant);
    if (s.startPromise) return this._startResult(s);
    if (!s.stopPromise && s.transport) return this.status(tenant); // connected, or waiting for a QR scan
    const p = (async () => {
      if (s.stopPromise) await s.stopPromise.catch(() => {});
      if (!s.transport) await this._startLoop(s);
    })();
    const guarded = p.finally(() => {
      if (s.startPromise === guarded) s.startPromise = null;
    });
    s.startPromise = guarded;
    return this._startResult(s);
  }

  // Every caller of the shared start gets the status computed after the start has ended.
  _startResult(s) {
    return s.startPromise.then(() => this.status(s.tenant));
  }

  async _startLoop(s) {
    const epoch = s.epoch;
    let restarted = false;
    for (;;) {
      const outcome = await this._startOnce(s);
      // WhatsApp asks for a restart (e.g. right after pairing): once, inside this same start.
      if (outcome.kind === 'close' && outcome.code === 515 && !restarted && s.epoch === epoch && !s.stopping) {
        restarted = true;
        this.logger.info({ tenant: s.tenant }, 'restart_required_restarting');
        continue;
      }
      return outcome;
    }
  }

  async _startOnce(s) {
    await s.closing; // close old before new, always
    if (s.transport) await this._teardown(s);
    const tenant = s.tenant;
    // Read before the socket exists: its offline `append` upserts are judged by this mark.
    await s.marking;
    s.appendSince = await this.marks.appendSince(tenant).catch(() => null);
    s.openedAt = null;
    if (s.stopping) return { kind: 'stopped' }; // a stop came while we read: no new socket
    // A shard taken over by a newer owner: this sidecar must not open a socket for it.
    if (!(await this.fence.check())) {
      s.lastDisconnect = { code: null, reason: 'fenced', at: new Date().toISOString() };
      return { kind: 'fenced' };
    }
    const log = this.logger.child({ tenant });
    const t = this.factory({ tenant, authDir: this.authDir(tenant), auth: this.auth.forTenant(tenant), logger: log, config: this.config });
    s.socketsCreated++;
    this.logger.info({ tenant, socketsCreated: s.socketsCreated }, 'SOCK_CREATE');
    s.transport = t;
    s.connected = false;
    s.connectedSince = null;
    s.qr = null;
    let resolveOutcome;
    const outcome = new Promise((resolve) => { resolveOutcome = resolve; });
    s.waiter = { transport: t, resolve: resolveOutcome };

    t.on('connection.update', (u) => this._onConnectionUpdate(s, t, u));
    t.on('messages.upsert', (u) => this._onUpsert(s, t, u));
    t.on('messages.update', (u) => this._onReceipts(s, t, u));

    try {
      await t.start();
    } catch (err) {
      log.error({ err: err.message }, 'socket_start_failed');
      if (s.transport === t) {
        s.lastDisconnect = { code: null, reason: 'startFailed', at: new Date().toISOString(), detail: err.message };
        await this._teardown(s);
      }
      return { kind: 'error' };
    }

    let timer;
    const timedOut = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'timeout' }), this.config.startTimeoutMs);
    });
    const result = await Promise.race([outcome, timedOut]);
    clearTimeout(timer);
    if (result.kind === 'timeout' && s.transport === t) {
      log.warn({ startTimeoutMs: this.config.startTimeoutMs }, 'start_timeout');
      s.lastDisconnect = { code: null, reason: 'startTimeout', at: new Date().toISOString() };
      await this._teardown(s);
    }
    if (s.waiter?.transport === t) s.waiter = null;
    return result;
  }

  _settle(s, t, result) {
    if (s.waiter && s.waiter.transport === t) {
      s.waiter.resolve(result);
      s.waiter = null;
    }
  }

  _onConnectionUpdate(s, t, update) {
    if (s.transport !== t) return; // a stale socket's events are ignored
    if (update.qr) {
      s.qr = update.qr; // for the admin to render; never printed
      this.logger.info({ tenant: s.tenant }, 'qr_updated');
      this._settle(s, t, { kind: 'qr' });
    }
    if (update.connection === 'open') s.openedAt = new Date().toISOString();
    // Baileys: the server has delivered everything it held while we were away. From now on
    // this connection's start is the mark the next connect compares `append` upserts with.
    if (update.receivedPendingNotifications && s.openedAt) this._mark(s, s.openedAt, 'offline_delivered');
    if (update.connection === 'open') {
      this._verify(s, t).catch((err) => this.logger.error({ tenant: s.tenant, err: err.message }, 'verify_crashed'));
    } else if (update.connection === 'close') {
      this._onClose(s, t, update.lastDisconnect).catch((err) => this.logger.error({ tenant: s.tenant, err: err.message }, 'on_close_crashed'));
    }
  }

  async _verify(s, t) {
    const tenant = s.tenant;
    try {
      if (!t.userId) throw new Error('socket has no user id');
      if (!t.meId) throw new Error('creds.me.id is missing');
      await withTimeout(t.sendPresenceUpdate('available'), this.config.sendTimeoutMs, 'presence update timed out');
    } catch (err) {
      if (s.transport !== t) return;
      this.logger.error({ tenant, err: err.message }, 'verification_failed');
      s.lastDisconnect = { code: null, reason: 'verificationFailed', at: new Date().toISOString(), detail: err.message };
      await this._teardown(s);
      this._settle(s, t, { kind: 'verify_failed' });
      return;
    }
    if (s.transport !== t) return;
    s.connected = true;
    s.connectedSince = new Date().toISOString();
    s.qr = null;
    this.logger.info({ tenant, user: maskPhone(t.userId) }, 'session_connected');
    // A first connect has no mark yet: set one, so the next reconnect can tell new from old.
    if (s.appendSince === null) this._mark(s, s.openedAt || s.connectedSince, 'first_connect');
    this._settle(s, t, { kind: 'open' });
  }

  async _onClose(s, t, lastDisconnect) {
    if (s.transport !== t) return;
    const tenant = s.tenant;
    const code = disconnectCode(lastDisconnect);
    const reason = reasonName(code);
    s.lastDisconnect = { code, reason, at: new Date().toISOString() };
    this.logger.warn({ tenant, code, reason, err: lastDisconnect?.error?.message }, 'session_closed');
    await this._teardown(s);
    if (code === 401) {
      // Logged out by WhatsApp: these credentials are dead; a new QR scan is required.
      await this.auth.clear(tenant);
      this.logger.warn({ tenant }, 'credentials_cleared');
    }
    // Every other code, 500 badSession included, keeps the credentials.
    this._settle(s, t, { kind: 'close', code });
    if (code === 515 && !s.startPromise && !s.stopping) {
      const now = Date.now();
      s.autoRestarts = s.autoRestarts.filter((at) => now - at < RESTART_WINDOW_MS);
      if (s.autoRestarts.length >= MAX_AUTO_RESTARTS_PER_WINDOW) {
        this.logger.error({ tenant }, 'restart_required_storm_not_restarting');
        return;
      }
      s.autoRestarts.push(now);
      this.logger.info({ tenant }, 'restart_required_restarting');
      this.start(tenant).catch((err) => this.logger.error({ tenant, err: err.message }, 'restart_failed'));
    }
  }

  // Marks are written in order, and the next start reads the mark only after they land.
  _mark(s, connectedAt, why) {
    s.marking = s.marking.then(() => this.marks.record(s.tenant, connectedAt)).then(
      () => this.logger.info({ tenant: s.tenant, connectedAt, why }, 'connection_marked'),
      (err) => this.logger.error({ tenant: s.tenant, err: err.message }, 'connection_mark_failed'),
    );
  }

  /** Detach and close the current socket; resolves when it is fully closed. */
  _teardown(s, { logout = false } = {}) {
    const t = s.transport;
    if (!t) return s.closing;
    s.transport = null;
    s.connected = false;
    s.connectedSince = null;
    s.qr = null;
    t.removeAllListeners();
    this._settle(s, t, { kind: 'stopped' });
    const tenant = s.tenant;
    const previous = s.closing;
    s.closing = (async () => {
      await previous;
      if (logout) {
        await withTimeout(t.logout(), 10_000, 'logout timed out').catch((err) => this.logger.warn({ tenant, err: err.message }, 'logout_request_failed'));
      }
      await withTimeout(t.close(), 10_000, 'close timed out').catch((err) => this.logger.error({ tenant, err: err.message }, 'socket_close_failed'));
      this.logger.info({ tenant }, 'SOCK_CLOSED');
    })();
    return s.closing;
  }

  _drainSends(s) {
    if (s.activeSends === 0) return Promise.resolve();
    // Each send is itself bounded by the send and ack timeouts; the margin covers the fsyncs.
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.config.sendTimeoutMs + this.config.ackTimeoutMs + 1000);
      s.drainWaiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  /** Close the socket, keeping credentials (or deleting them with logout). Waits for in-flight sends. */
  stop(tenant, { logout = false } = {}) {
    const s = this.session(tenant);
    const previousStop = s.stopPromise;
    const pendingStart = s.startPromise;
    s.stopping = true;
    s.epoch++;
    const p = (async () => {
      if (previousStop) await previousStop.catch(() => {});
      s.stopping = true;
      if (s.activeSends > 0) this.logger.info({ tenant, activeSends: s.activeSends }, 'stop_waiting_for_sends');
      await this._drainSends(s);
      await this._teardown(s, { logout });
      await s.closing;
      if (pendingStart) await pendingStart.catch(() => {});
      if (logout) {
        await this.auth.clear(tenant);
        this.logger.warn({ tenant }, 'logged_out_credentials_deleted');
      }
      this.logger.info({ tenant, logout }, 'session_stopped');
    })();
    s.stopPromise = p.finally(() => {
      if (s.stopPromise === guarded) {
        s.stopPromise = null;
        s.stopping = false;
      }
    });
    const guarded = s.stopPromise;
    return guarded.then(() => this.status(tenant));
  }

  async closeAll() {
    await Promise.all([...this.sessions.keys()].map((t) => this.stop(t).catch(() => {})));
  }

  /** Fenced: close every socket now, without waiting for sends (they can no longer record anything). */
  async closeAllFenced() {
    await Promise.all([...this.sessions.values()].map((s) => {
      s.stopping = true;
      s.epoch++;
      if (s.transport) s.lastDisconnect = { code: null, reason: 'fenced', at: new Date().toISOString() };
      return this._teardown(s).catch(() => {});
    }));
  }

  // ---- sending ---------------------------------------------------------------------------

  /** Returns { httpStatus, body }. Never sends a key twice unless its last outcome is "failed". */
  async send(tenant, { jid, text, idempotencyKey: key, media = null, presence = null }) {
    const s = this.session(tenant);
    // From here to inflight.set there is no await: concurrent callers see each other.
    const inflight = s.inflight.get(key);
    if (inflight) {
      const r = await inflight;
      return { httpStatus: r.httpStatus, body: { ...r.body, duplicate: true } };
    }
    const p = this._sendOnce(s, { jid, text, key, media, presence });
    s.inflight.set(key, p);
    try {
      return await p;
    } finally {
      s.inflight.delete(key);
    }
  }

  async _sendOnce(s, { jid, text, key, media, presence }) {
    const fp = crypto.createHash('sha256').update(`${jid}\n${contentOf(text, media)}`).digest('hex').slice(0, 32);
    const prev = await this.idem.get(s.tenant, key);
    if (prev && prev.fp && prev.fp !== fp && prev.outcome !== 'failed') {
      return { httpStatus: 409, body: { error: 'idempotency_key_conflict', detail: 'this key was used for a different recipient or text', idempotencyKey: key } };
    }
    if (prev?.outcome === 'sent') {
      return { httpStatus: 200, body: { status: 'sent', messageId: prev.messageId, idempotencyKey: key, duplicate: true } };
    }
    if (prev && (prev.outcome === 'unknown' || prev.outcome === 'pending')) {
      return { httpStatus: 409, body: { error: 'outcome_unknown', detail: 'an earlier attempt with this key may have been sent; it will not be re-sent', idempotencyKey: key } };
    }
    if (!s.canSend) {
      return { httpStatus: 409, body: { error: 'not_ready', detail: 'the session cannot send', canSend: false, connected: s.connected, idempotencyKey: key } };
    }
    return this._doSend(s, { jid, text, key, fp, toHash: contactHash(jid), media, presence });
  }

  async _doSend(s, { jid, text, key, fp, toHash, media, presence }) {
    const tenant = s.tenant;
    const t = s.transport;
    s.activeSends++;
    const started = Date.now();
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      s.activeSends--;
      if (s.activeSends === 0) for (const w of s.drainWaiters.splice(0)) w();
    };
    const base = { key, fp, toHash };
    try {
      try {
        await this.idem.record(tenant, { ...base, outcome: 'pending' });
      } catch (err) {
        this.logger.error({ tenant, idempotencyKey: key, err: err.message }, 'idempotency_store_write_failed');
        if (isFenced(err)) return { httpStatus: 409, body: { error: 'fenced', detail: 'this sidecar no longer owns the shard; nothing was sent', idempotencyKey: key } };
        return { httpStatus: 500, body: { error: 'store_failed', detail: 'could not persist the idempotency record; nothing was sent', idempotencyKey: key } };
      }
      this.logger.info({ tenant, idempotencyKey: key, to: maskPhone(jid) }, 'send_start');
      let sendPromise;
      let messageId;
      try {
        if (s.transport !== t || !t) throw new Error('session closed before the send started');
        const how = { sendTimeoutMs: this.config.sendTimeoutMs, logger: this.logger, tenant };
        const ownId = this.owner.idForSend(tenant, t); // known as ours before its echo can come
        sendPromise = Promise.resolve().then(() => deliver(t, { jid, text, media, presence, messageId: ownId }, how));
        ({ messageId } = await withTimeout(sendPromise, this.config.sendTimeoutMs, 'send timed out'));
      } catch (err) {
        const durationMs = Date.now() - started;
        if (err instanceof SendTimeoutError) {
          await this.idem.record(tenant, { ...base, outcome: 'unknown', error: 'send timed out; the message may have been sent', durationMs });
          this.logger.error({ tenant, idempotencyKey: key, durationMs, timeoutMs: this.config.sendTimeoutMs }, 'send_timeout');
          // If the socket answers after all, the message id is kept; its server ack then
          // decides the outcome (never re-sent either way).
          sendPromise.then(async (late) => {
            s.acks.bind(late.messageId, key);
            await this.idem.transition(tenant, key, ['unknown'], { messageId: late.messageId, late: true });
            this.logger.warn({ tenant, idempotencyKey: key, messageId: late.messageId, durationMs: Date.now() - started }, 'send_late_written');
            await this._applyAck(s, late.messageId, key);
          }, () => {}).catch(() => {});
          return { httpStatus: 504, body: { error: 'send_timeout', detail: `no answer within ${this.config.sendTimeoutMs} ms; outcome unknown`, idempotencyKey: key } };
        }
        await this.idem.record(tenant, { ...base, outcome: 'failed', error: String(err.message || err).slice(0, 500), durationMs }).catch((e) => {
          this.logger.error({ tenant, idempotencyKey: key, err: e.message }, 'idempotency_store_write_failed');
        });
        this.logger.error({ tenant, idempotencyKey: key, durationMs, err: err.message }, 'send_failed');
        return { httpStatus: 502, body: { error: 'send_failed', detail: String(err.message || err).slice(0, 500), idempotencyKey: key } };
      }
      return await this._awaitServerAck(s, { ...base, messageId, started });
    } finally {
      finish();
    }
  }

  // Written to the socket is not sent: wait for WhatsApp's server ack of this message id.
  async _awaitServerAck(s, { key, fp, toHash, messageId, started }) {
    const tenant = s.tenant;
    const base = { key, fp, toHash, messageId };
    s.acks.bind(messageId, key);
    // The id is on disk before the wait, so a late ack or error can still settle the key.
    await this.idem.record(tenant, { ...base, outcome: 'pending', written: true }, { durable: false });
    const acked = await s.acks.wait(messageId, this.config.ackTimeoutMs);
    const durationMs = Date.now() - started;
    if (acked === true) {
      await this.idem.record(tenant, { ...base, outcome: 'sent', durationMs }, { index: false, durable: false });
      this.logger.info({ tenant, idempotencyKey: key, messageId, durationMs }, 'send_done');
      return { httpStatus: 200, body: { status: 'sent', messageId, idempotencyKey: key, duplicate: false } };
    }
    if (acked === false) {
      const error = 'WhatsApp answered the message with an error status';
      await this.idem.record(tenant, { ...base, outcome: 'failed', error, durationMs }, { index: false, durable: false });
      this.logger.error({ tenant, idempotencyKey: key, messageId, durationMs }, 'send_server_error');
      return { httpStatus: 502, body: { error: 'send_failed', detail: error, idempotencyKey: key } };
    }
    await this.idem.record(tenant, { ...base, outcome: 'unknown', error: `written, but no server ack within ${this.config.ackTimeoutMs} ms`, durationMs }, { index: false, durable: false });
    this.logger.error({ tenant, idempotencyKey: key, messageId, durationMs, ackTimeoutMs: this.config.ackTimeoutMs }, 'send_ack_timeout');
    await this._applyAck(s, messageId, key); // an ack that raced the record above
    return { httpStatus: 504, body: { error: 'ack_timeout', detail: `written to WhatsApp, but no server ack within ${this.config.ackTimeoutMs} ms; outcome unknown`, idempotencyKey: key, messageId } };
  }

  /** An ack (or error) seen for `messageId` settles its key if the key is still unknown. */
  async _applyAck(s, messageId, key) {
    const settledAs = s.acks.settled(messageId);
    if (settledAs === null) return;
    const k = key ?? s.acks.keyFor(messageId) ?? await this.idem.keyForMessageId(s.tenant, messageId);
    if (!k) return;
    const patch = settledAs ? { outcome: 'sent', error: undefined, ackedLate: true } : { outcome: 'failed', error: 'WhatsApp answered the message with an error status' };
    const rec = await this.idem.transition(s.tenant, k, ['unknown'], patch);
    if (rec) this.logger.warn({ tenant: s.tenant, idempotencyKey: k, messageId, outcome: rec.outcome }, 'send_outcome_settled_late');
  }

  async outcome(tenant, key) {
    const rec = await this.idem.get(tenant, key);
    if (!rec) return { idempotencyKey: key, outcome: 'absent', at: null };
    const s = this.session(tenant);
    const outcome = rec.outcome === 'pending' && !s.inflight.has(key) ? 'unknown' : rec.outcome;
    const out = { idempotencyKey: key, outcome, at: rec.at };
    if (rec.messageId) out.messageId = rec.messageId;
    if (rec.error && outcome !== 'sent') out.error = rec.error;
    return out;
  }

  // ---- inbound ---------------------------------------------------------------------------

  _onUpsert(s, t, upsert) {
    if (s.transport !== t) return;
    for (const payload of inboundPayloads(s.tenant, upsert, { appendSince: s.appendSince })) {
      this.logger.info({ tenant: s.tenant, id: payload.id, from: maskPhone(payload.from || payload.fromJid), type: payload.type, upsert: upsert.type }, 'inbound_received');
      const spooled = this.media
        ? this.media.forward(s.tenant, payload, upsert.messages.find((m) => m?.key?.id === payload.id))
        : this.spool.enqueue(s.tenant, 'inbound', payload);
      spooled.catch((err) => this.logger.error({ tenant: s.tenant, id: payload.id, err: err.message }, 'spool_write_failed'));
    }
    this.owner.onUpsert(s.tenant, upsert, { appendSince: s.appendSince, selfJids: [t.userId, t.meId, t.meLid] });
  }

  _onReceipts(s, t, updates) {
    if (s.transport !== t) return;
    for (const a of ackUpdates(updates)) {
      s.acks.note(a.messageId, a.status);
      if (settles(a.status) !== null && !s.waitingAck(a.messageId)) {
        this._applyAck(s, a.messageId).catch((err) => this.logger.error({ tenant: s.tenant, messageId: a.messageId, err: err.message }, 'ack_record_failed'));
      }
    }
    for (const r of receiptUpdates(updates)) {
      (async () => {
        const idempotencyKey = s.acks.keyFor(r.messageId) ?? await this.idem.keyForMessageId(s.tenant, r.messageId);
        await this.spool.enqueue(s.tenant, 'status', {
          tenant: s.tenant, messageId: r.messageId, idempotencyKey, status: r.status, timestamp: Math.floor(Date.now() / 1000),
        });
      })().catch((err) => this.logger.error({ tenant: s.tenant, messageId: r.messageId, err: err.message }, 'spool_write_failed'));
    }
  }
}
