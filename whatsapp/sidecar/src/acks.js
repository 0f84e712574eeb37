// The server's acknowledgements of our own messages (messages.update `status` on fromMe
// keys), by message id. sendMessage resolving only means "written to the socket"; a send
// counts as sent when WhatsApp's server acks it (status >= 2, SERVER_ACK) and as failed on
// status 0 (ERROR). An ack can arrive before the send's promise continues, so recent
// statuses are remembered (bounded), not only awaited.
export const SERVER_ACK = 2;
export const ERROR = 0;

// What is remembered only bridges races of seconds (an ack that beats the send's promise, a
// receipt that beats the store write); anything older is read from the idempotency store.
// Bounded by count and by age: 5000 per session with no age limit held about 3.3 MB for each
// busy session, 1.6 GB for 500 of them (docs/PERFORMANCE.md, "Sidecar capacity").
export const REMEMBERED = 1000;
export const REMEMBER_MS = 10 * 60 * 1000;

/** A Map of recent entries: at most `max`, none older than `maxAgeMs` (oldest dropped first). */
export class RecentMap {
  constructor({ max = REMEMBERED, maxAgeMs = REMEMBER_MS, now = Date.now } = {}) {
    this.max = max;
    this.maxAgeMs = maxAgeMs;
    this.now = now;
    this.entries = new Map(); // key -> { value, at }, in order of the last set
  }

  get size() {
    this._prune();
    return this.entries.size;
  }

  get(key) {
    this._prune();
    return this.entries.get(key)?.value;
  }

  set(key, value) {
    this.entries.delete(key);
    this.entries.set(key, { value, at: this.now() });
    this._prune();
  }

  _prune() {
    const oldest = this.now() - this.maxAgeMs;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.max && entry.at >= oldest) break;
      this.entries.delete(key);
    }
  }
}

/** messages.update -> [{messageId, status}] (raw status numbers) for our own messages. */
export function ackUpdates(updates) {
  if (!Array.isArray(updates)) return [];
  const out = [];
  for (const u of updates) {
    if (!u?.key?.fromMe || !u.key.id) continue;
    const raw = u.update?.status;
    const status = typeof raw === 'number' ? raw : Number(raw);
    if (raw !== undefined && raw !== null && Number.isInteger(status)) out.push({ messageId: u.key.id, status });
  }
  return out;
}

/** Whether a status settles a send: true for acked, false for error, null for neither. */
export function settles(status) {
  if (status === ERROR) return false;
  if (status >= SERVER_ACK) return true;
  return null;
}

export class AckTracker {
  constructor(options) {
    this.seen = new RecentMap(options); // messageId -> highest status seen (ERROR sticks)
    this.waiters = new Map(); // messageId -> Set<resolve>
    this.keys = new RecentMap(options); // messageId -> idempotency key, known before the store has it
  }

  /** Remember which key a just-written message belongs to (receipts may beat the store write). */
  bind(messageId, key) {
    this.keys.set(messageId, key);
  }

  keyFor(messageId) {
    return this.keys.get(messageId) ?? null;
  }

  note(messageId, status) {
    const prev = this.seen.get(messageId);
    const next = prev === ERROR ? ERROR : (status === ERROR ? ERROR : Math.max(prev ?? -1, status));
    this.seen.set(messageId, next);
    const settled = settles(next);
    if (settled === null) return;
    for (const resolve of this.waiters.get(messageId) || []) resolve(settled);
    this.waiters.delete(messageId);
  }

  /** Resolves true (acked), false (error) or null (no answer within `ms`). */
  wait(messageId, ms) {
    const known = settles(this.seen.get(messageId));
    if (known !== null) return Promise.resolve(known);
    return new Promise((resolve) => {
      const set = this.waiters.get(messageId) || new Set();
      const done = (v) => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(messageId);
        resolve(v);
      };
      const timer = setTimeout(() => done(null), ms);
      set.add(done);
      this.waiters.set(messageId, set);
    });
  }

  /** The settled state already seen for `messageId`: true, false, or null. */
  settled(messageId) {
    return settles(this.seen.get(messageId));
  }
}
