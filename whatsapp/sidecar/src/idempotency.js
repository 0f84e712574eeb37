// Durable outcome of every send, by idempotency key. An append-only JSONL file per tenant,
// fsync'd on every record: "pending" is on disk BEFORE the send starts, the final outcome
// after it ends. A key found "pending" after a restart may have left (the process died
// mid-send), so it becomes "unknown" and is never re-sent automatically.
import fs from 'node:fs/promises';
import path from 'node:path';
import { mutexFor } from './fsutil.js';

export const OUTCOMES = ['pending', 'sent', 'failed', 'unknown'];

export class IdempotencyStore {
  constructor(dataDir, logger) {
    this.dir = path.join(dataDir, 'idempotency');
    this.logger = logger;
    this.tenants = new Map(); // tenant -> Promise<{byKey: Map, byMessageId: Map}>
  }

  fileFor(tenant) {
    return path.join(this.dir, `${tenant}.jsonl`);
  }

  load(tenant) {
    let p = this.tenants.get(tenant);
    if (!p) {
      p = this._load(tenant);
      this.tenants.set(tenant, p);
      p.catch(() => this.tenants.delete(tenant));
    }
    return p;
  }

  async _load(tenant) {
    const byKey = new Map();
    const byMessageId = new Map();
    let text = '';
    try {
      text = await fs.readFile(this.fileFor(tenant), 'utf8');
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      try {
        const rec = JSON.parse(line);
        if (typeof rec.key === 'string' && OUTCOMES.includes(rec.outcome)) {
          byKey.set(rec.key, rec);
          if (rec.messageId) byMessageId.set(rec.messageId, rec.key);
        }
      } catch {
        // A torn last line from a crash mid-append; earlier lines are intact (fsync'd).
        this.logger.warn({ tenant, line: i + 1 }, 'idempotency_store_skipped_bad_line');
      }
    });
    const state = { byKey, byMessageId };
    const stale = [...byKey.values()].filter((r) => r.outcome === 'pending');
    for (const rec of stale) {
      await this._append(tenant, state, { key: rec.key, outcome: 'unknown', error: 'sidecar restarted while the send was in flight', at: new Date().toISOString() });
      this.logger.warn({ tenant, idempotencyKey: rec.key }, 'idempotency_pending_became_unknown');
    }
    return state;
  }

  async _append(tenant, state, rec) {
    const file = this.fileFor(tenant);
    await mutexFor(`idem:${file}`).run(async () => {
      await fs.mkdir(this.dir, { recursive: true });
      const fh = await fs.open(file, 'a');
      try {
        await fh.appendFile(`${JSON.stringify(rec)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
    state.byKey.set(rec.key, rec);
    if (rec.messageId) state.byMessageId.set(rec.messageId, rec.key);
  }

  /** Synchronous lookup; only valid after `await load(tenant)`. */
  peek(state, key) {
    return state.byKey.get(key) || null;
  }

  async get(tenant, key) {
    const state = await this.load(tenant);
    return state.byKey.get(key) || null;
  }

  async record(tenant, rec) {
    const state = await this.load(tenant);
    const full = { ...rec, at: rec.at || new Date().toISOString() };
    await this._append(tenant, state, full);
    return full;
  }

  async keyForMessageId(tenant, messageId) {
    const state = await this.load(tenant);
    return state.byMessageId.get(messageId) || null;
  }
}
