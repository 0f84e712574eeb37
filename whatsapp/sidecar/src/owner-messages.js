// The business owner also answers customers from the phone itself. Baileys upserts those
// messages with `key.fromMe === true` (lib/Utils/decode-wa-message.js: a stanza from our
// own user with a `recipient` is fromMe, the chat is the recipient), and so it does the echo
// of every message this sidecar sends (lib/Socket/messages-send.js: with emitOwnEvents, the
// default, `upsertMessage(fullMsg, 'append')` on process.nextTick right after the relay,
// i.e. possibly before sendMessage's caller runs again). To tell the two apart, the sidecar
// picks each send's message id itself and remembers it before sendMessage is called, so the
// echo always finds it. A fromMe message whose id is not ours is the owner's: it goes to
// Django's owner webhook through the same durable spool as inbound messages, and Django
// pauses the bot for that customer.
import { classify, isNewUpsert, jidDigits, timestampSeconds } from './whatsapp.js';
import { maskPhone } from './log.js';

const KEEP_MS = 24 * 3600 * 1000;
const KEEP_MAX = 10_000; // per tenant; an echo follows its send within milliseconds

const PHONE_JID = /@s\.whatsapp\.net$/;
const userOf = (jid) => (jid ? String(jid).split('@')[0].split(':')[0] : null);

/** The ids of messages this sidecar sent, per tenant (in memory, bounded, expiring). */
export class OwnSends {
  constructor({ keepMs = KEEP_MS, keepMax = KEEP_MAX } = {}) {
    this.keepMs = keepMs;
    this.keepMax = keepMax;
    this.byTenant = new Map(); // tenant -> Map(id -> expiresAt), in insertion order
  }

  remember(tenant, id) {
    let ids = this.byTenant.get(tenant);
    if (!ids) this.byTenant.set(tenant, (ids = new Map()));
    ids.set(id, Date.now() + this.keepMs);
    for (const [old, expiresAt] of ids) {
      if (ids.size <= this.keepMax && expiresAt > Date.now()) break;
      ids.delete(old);
    }
  }

  has(tenant, id) {
    const expiresAt = this.byTenant.get(tenant)?.get(id);
    return expiresAt !== undefined && expiresAt > Date.now();
  }
}

/**
 * messages.upsert -> owner-message payloads (shaped like inbound ones; `from`/`fromJid` name
 * the customer's chat): fromMe, new (as inbound: 'notify', or an 'append' newer than the last
 * connect), 1:1 chats other than the owner's own "message yourself" chat, real messages only.
 * `remoteJidAlt` and `pushName` are left out on purpose: for a fromMe stanza Baileys fills
 * them from the sender, i.e. the owner (sender_lid / sender_pn, the owner's own name), and
 * Django would otherwise file the owner's number or name on the customer's contact.
 * `selfJids`: the session's own JIDs (phone and LID).
 */
export function ownerPayloads(tenant, upsert, { appendSince = null, selfJids = [] } = {}) {
  if (!upsert || !Array.isArray(upsert.messages)) return [];
  const selves = new Set(selfJids.filter(Boolean).map(userOf));
  const out = [];
  for (const msg of upsert.messages) {
    const key = msg?.key;
    if (!key || key.fromMe !== true || !key.id || !msg.message) continue;
    const ts = timestampSeconds(msg.messageTimestamp);
    if (!isNewUpsert(upsert.type, ts, appendSince)) continue;
    const jid = key.remoteJid || '';
    if (!(PHONE_JID.test(jid) || jid.endsWith('@lid'))) continue;
    if (selves.has(userOf(jid))) continue;
    const kind = classify(msg.message);
    if (!kind) continue;
    out.push({
      id: key.id,
      tenant,
      from: jidDigits(jid),
      fromJid: jid,
      fromAltJid: null,
      pushName: null,
      timestamp: ts ?? Math.floor(Date.now() / 1000),
      type: kind.type,
      text: kind.text,
    });
  }
  return out;
}

/** Recognises our own sends and spools the owner's messages for Django. */
export class OwnerMessages {
  constructor({ spool, idempotency, logger }) {
    this.spool = spool;
    this.idem = idempotency;
    this.logger = logger;
    this.own = new OwnSends();
  }

  /** A fresh id for the next send through `transport`, remembered before the send starts. */
  idForSend(tenant, transport) {
    const id = transport.newMessageId();
    this.own.remember(tenant, id);
    return id;
  }

  /** Whether `id` is a message this sidecar sent: in memory, else its idempotency index on disk. */
  async ours(tenant, id) {
    if (this.own.has(tenant, id)) return true;
    return Boolean(await this.idem.keyForMessageId(tenant, id).catch(() => null));
  }

  onUpsert(tenant, upsert, { appendSince, selfJids }) {
    for (const payload of ownerPayloads(tenant, upsert, { appendSince, selfJids })) {
      // Checked synchronously first: the echo of a send arrives before any await could.
      if (this.own.has(tenant, payload.id)) continue;
      (async () => {
        if (await this.ours(tenant, payload.id)) return;
        this.logger.info({ tenant, id: payload.id, to: maskPhone(payload.from || payload.fromJid), type: payload.type, upsert: upsert.type }, 'owner_message_received');
        await this.spool.enqueue(tenant, 'owner', payload);
      })().catch((err) => this.logger.error({ tenant, id: payload.id, err: err.message }, 'spool_write_failed'));
    }
  }
}
