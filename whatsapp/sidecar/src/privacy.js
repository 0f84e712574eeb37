// Erasure of one contact from the sidecar's own state: its idempotency records and the
// pending and rejected webhook items that mention it (POST /privacy/erase).
import { contactHash } from './idempotency.js';
import { toJid, jidDigits } from './whatsapp.js';

const bare = (jid) => (jid ? String(jid).replace(/:\d+@/, '@') : null);

/** {phone?, jid?} -> the JIDs that name the contact, or null when neither is valid. */
export function contactJids({ phone, jid }) {
  const jids = [];
  if (phone !== undefined) {
    if (typeof phone !== 'string' || !/^\+?\d{6,15}$/.test(phone.trim())) return null;
    jids.push(toJid(phone));
  }
  if (jid !== undefined) {
    const full = typeof jid === 'string' && /@/.test(jid) ? toJid(jid) : null;
    if (!full) return null;
    jids.push(bare(full));
  }
  return jids.length ? jids : null;
}

export async function eraseContact({ idempotency, spool, media = null }, tenant, jids) {
  const hashes = jids.map(contactHash);
  const digits = jids.map(jidDigits).filter(Boolean);
  const mentions = async (item) => {
    let payload;
    try {
      payload = JSON.parse(item.body);
    } catch {
      return false;
    }
    if (item.kind === 'status') {
      // A receipt names only the message: it is the contact's if the send was to them.
      const rec = payload.idempotencyKey ? await idempotency.get(tenant, payload.idempotencyKey) : null;
      return Boolean(rec && hashes.includes(rec.toHash));
    }
    return digits.includes(payload.from) || [payload.fromJid, payload.fromAltJid].some((j) => j && jids.includes(bare(j)));
  };
  // Spool first: a receipt is matched through the idempotency record erased after it.
  const spoolItems = await spool.erase(tenant, mentions);
  const idempotencyRecords = await idempotency.erase(tenant, hashes);
  // Downloaded inbound files Django has not fetched yet (src/media.js).
  const mediaFiles = media ? await media.store.erase(tenant, hashes) : 0;
  return { idempotencyRecords, spoolItems, mediaFiles };
}
