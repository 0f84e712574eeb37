// Pure helpers shared by every transport: JIDs, disconnect reasons, and turning Baileys'
// messages.upsert / messages.update events into the webhook payloads Django receives.

// Baileys' DisconnectReason values (7.x). 408 is both connectionLost and timedOut.
const REASONS = new Map([
  [401, 'loggedOut'],
  [403, 'forbidden'],
  [405, 'outdatedVersion'], // not in the enum: WhatsApp rejected the WA Web version
  [408, 'connectionLost'],
  [411, 'multideviceMismatch'],
  [428, 'connectionClosed'],
  [440, 'connectionReplaced'],
  [500, 'badSession'],
  [503, 'unavailableService'],
  [515, 'restartRequired'],
]);

export function reasonName(code) {
  return REASONS.get(code) || 'unknown';
}

/** Status code of a Baileys close: lastDisconnect.error.output.statusCode (a Boom error). */
export function disconnectCode(lastDisconnect) {
  const code = lastDisconnect?.error?.output?.statusCode;
  return Number.isInteger(code) ? code : null;
}

const PHONE_JID = /@s\.whatsapp\.net$/;

/** `to` is E.164 digits with optional "+", or a full user JID. Returns the JID or null. */
export function toJid(to) {
  if (typeof to !== 'string') return null;
  const v = to.trim();
  if (/^\+?\d{6,15}$/.test(v)) return `${v.replace(/^\+/, '')}@s.whatsapp.net`;
  if (/^\d{6,15}(:\d+)?@s\.whatsapp\.net$/.test(v) || /^\d{1,20}(:\d+)?@lid$/.test(v)) return v;
  return null;
}

export function jidDigits(jid) {
  if (!jid || !PHONE_JID.test(jid)) return null;
  return jid.split('@')[0].split(':')[0].replace(/\D/g, '') || null;
}

/** The message inside ephemeral / view-once / document-with-caption / edited wrappers. */
export function unwrap(message) {
  let m = message;
  for (let i = 0; i < 5 && m; i++) {
    const inner = m.ephemeralMessage?.message || m.viewOnceMessage?.message || m.viewOnceMessageV2?.message
      || m.viewOnceMessageV2Extension?.message || m.documentWithCaptionMessage?.message || m.editedMessage?.message;
    if (!inner) break;
    m = inner;
  }
  return m;
}

const SKIP = ['protocolMessage', 'reactionMessage', 'senderKeyDistributionMessage', 'pollUpdateMessage', 'keepInChatMessage'];

/** { type, text } of a WhatsApp message, or null for events that are not customer messages. */
export function classify(message) {
  const m = unwrap(message);
  if (!m) return null;
  if (typeof m.conversation === 'string' && m.conversation) return { type: 'text', text: m.conversation };
  if (m.extendedTextMessage) return { type: 'text', text: m.extendedTextMessage.text ?? '' };
  if (m.imageMessage) return { type: 'image', text: m.imageMessage.caption ?? '' };
  if (m.videoMessage) return { type: 'video', text: m.videoMessage.caption ?? '' };
  if (m.audioMessage) return { type: 'audio', text: '' };
  if (m.stickerMessage) return { type: 'sticker', text: '' };
  if (m.documentMessage) return { type: 'document', text: m.documentMessage.caption ?? m.documentMessage.fileName ?? '' };
  if (m.locationMessage || m.liveLocationMessage) {
    const l = m.locationMessage || m.liveLocationMessage;
    const label = [l.name, l.address].filter(Boolean).join(', ');
    return { type: 'location', text: label || `${l.degreesLatitude},${l.degreesLongitude}` };
  }
  const keys = Object.keys(m).filter((k) => k !== 'messageContextInfo');
  if (keys.length === 0 || keys.every((k) => SKIP.includes(k))) return null;
  return { type: 'unsupported', text: '' };
}

export function timestampSeconds(ts) {
  const n = Number(ts?.toNumber ? ts.toNumber() : ts);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
}

/**
 * Whether an upsert's messages are new customer messages. 'notify' always is. 'append' is
 * also what Baileys 7 delivers after a reconnect for messages the server held while the
 * socket was down (messages-recv.js: `node.attrs.offline ? 'append' : 'notify'`); those are
 * already acknowledged to WhatsApp, so dropping them loses them. An append counts when it
 * is not older than `appendSince` (seconds: when the session last connected, minus a clock
 * margin); without that mark nothing proves it new (history, our own copies), so it is skipped.
 */
export function isNewUpsert(type, ts, appendSince) {
  if (type === 'notify') return true;
  if (type !== 'append' || appendSince === null || appendSince === undefined) return false;
  return ts !== null && ts >= appendSince;
}

/**
 * messages.upsert -> inbound payloads: 'notify', and 'append' newer than `appendSince`;
 * never fromMe, only 1:1 chats (groups, broadcasts, status and newsletters are ignored).
 */
export function inboundPayloads(tenant, upsert, { appendSince = null } = {}) {
  if (!upsert || !Array.isArray(upsert.messages)) return [];
  const out = [];
  for (const msg of upsert.messages) {
    const key = msg?.key;
    if (!key || key.fromMe || !key.id || !msg.message) continue;
    const ts = timestampSeconds(msg.messageTimestamp);
    if (!isNewUpsert(upsert.type, ts, appendSince)) continue;
    const jid = key.remoteJid || '';
    if (!(jid.endsWith('@s.whatsapp.net') || jid.endsWith('@lid'))) continue;
    const kind = classify(msg.message);
    if (!kind) continue;
    const alt = key.remoteJidAlt || null;
    const phoneJid = PHONE_JID.test(jid) ? jid : (alt && PHONE_JID.test(alt) ? alt : null);
    out.push({
      id: key.id,
      tenant,
      from: jidDigits(phoneJid),
      fromJid: jid,
      fromAltJid: alt,
      pushName: msg.pushName ?? null,
      timestamp: ts ?? Math.floor(Date.now() / 1000),
      type: kind.type,
      text: kind.text,
    });
  }
  return out;
}

// proto.WebMessageInfo.Status: 0 ERROR, 1 PENDING, 2 SERVER_ACK, 3 DELIVERY_ACK, 4 READ, 5 PLAYED
const RECEIPT_STATUS = new Map([[0, 'failed'], [3, 'delivered'], [4, 'read'], [5, 'read']]);

/** messages.update -> [{messageId, status}] for our own (fromMe) messages. */
export function receiptUpdates(updates) {
  if (!Array.isArray(updates)) return [];
  const out = [];
  for (const u of updates) {
    if (!u?.key?.fromMe || !u.key.id) continue;
    const raw = u.update?.status;
    const status = RECEIPT_STATUS.get(typeof raw === 'number' ? raw : Number(raw));
    if (status) out.push({ messageId: u.key.id, status });
  }
  return out;
}
