// Durable outcome of every send, by idempotency key: one small JSON file per key, written
// atomically (tmp + fsync + rename), so a lookup reads one file and nothing is ever loaded
// whole into memory. "pending" is on disk BEFORE the send starts, the final outcome after
// it ends. A key found "pending" with no send in flight may have left (the process died
// mid-send): it reads as "unknown" and is never re-sent automatically.
//
// Layout: <dataDir>/idempotency/<tenant>/keys/<sha256(key)>.json and
//         <dataDir>/idempotency/<tenant>/messages/<sha256(messageId)>.json -> {messageId, key}
// A record names its recipient only as `toHash` (sha256 of the JID), enough to erase it.
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import readline from 'node:readline';
import path from 'node:path';
import crypto from 'node:crypto';
import { withKeyLock, writeFileAtomic, readJsonOrNull, fsyncDir } from './fsutil.js';

export const OUTCOMES = ['pending', 'sent', 'failed', 'unknown'];

const sha = (s) => crypto.createHash('sha256').update(String(s)).digest('hex');

/** The hash a record keeps of its recipient; device suffixes (":3") do not matter. */
export function contactHash(jid) {
  return sha(String(jid).replace(/:\d+@/, '@')).slice(0, 32);
}

export class IdempotencyStore {
  constructor(dataDir, logger) {
    this.dir = path.join(dataDir, 'idempotency');
    this.logger = logger;
    this.migrations = new Map(); // tenant -> Promise (legacy JSONL import, once per process)
  }

  keyFile(tenant, key) {
    return path.join(this.dir, tenant, 'keys', `${sha(key)}.json`);
  }

  messageFile(tenant, messageId) {
    return path.join(this.dir, tenant, 'messages', `${sha(messageId)}.json`);
  }

  async _read(file) {
    try {
      return await readJsonOrNull(file);
    } catch (err) {
      if (err instanceof SyntaxError) return null; // cannot happen with atomic writes; be safe
      throw err;
    }
  }

  async get(tenant, key) {
    await this._migrated(tenant);
    const rec = await this._read(this.keyFile(tenant, key));
    return rec && rec.key === key && OUTCOMES.includes(rec.outcome) ? rec : null;
  }

  async _write(tenant, rec, { sync = true, index = true } = {}) {
    await writeFileAtomic(this.keyFile(tenant, rec.key), JSON.stringify(rec), { syncDir: sync });
    if (rec.messageId && index) {
      await writeFileAtomic(this.messageFile(tenant, rec.messageId), JSON.stringify({ messageId: rec.messageId, key: rec.key }), { syncDir: sync });
    }
  }

  /**
   * Write the whole record for `rec.key` (stamped with `at`). `index: false` skips the
   * message-id entry when the caller already wrote it for this id. `durable: false` skips
   * the directory fsync: for updates after the first "pending", whose loss in a crash
   * leaves the key pending, which reads as unknown and is never re-sent (the safe side).
   */
  async record(tenant, rec, { index = true, durable = true } = {}) {
    await this._migrated(tenant);
    const full = { ...rec, at: rec.at || new Date().toISOString() };
    await withKeyLock(`idem:${this.keyFile(tenant, rec.key)}`, () => this._write(tenant, full, { index, sync: durable }));
    return full;
  }

  /**
   * Atomic read-check-write: if the key's outcome is one of `from`, merge `patch` into it.
   * Returns the new record, or null when the outcome was something else (or absent).
   */
  async transition(tenant, key, from, patch) {
    await this._migrated(tenant);
    return withKeyLock(`idem:${this.keyFile(tenant, key)}`, async () => {
      const rec = await this._read(this.keyFile(tenant, key));
      if (!rec || !from.includes(rec.outcome)) return null;
      const next = { ...rec, ...patch, at: new Date().toISOString() };
      await this._write(tenant, next, { index: next.messageId !== rec.messageId });
      return next;
    });
  }

  async keyForMessageId(tenant, messageId) {
    await this._migrated(tenant);
    const idx = await this._read(this.messageFile(tenant, messageId));
    return idx?.messageId === messageId ? idx.key : null;
  }

  /** Every record of `tenant` whose recipient hashes to one of `hashes`: removed. Returns the count. */
  async erase(tenant, hashes) {
    await this._migrated(tenant);
    let n = 0;
    await eachFile(path.join(this.dir, tenant, 'keys'), async (file) => {
      const rec = await this._read(file);
      if (!rec || !hashes.includes(rec.toHash)) return;
      await withKeyLock(`idem:${file}`, async () => {
        if (rec.messageId) await fs.rm(this.messageFile(tenant, rec.messageId), { force: true });
        await fs.rm(file, { force: true });
      });
      n++;
    });
    return n;
  }

  /** Remove records (and message-id entries) not written for `maxAgeMs`. Returns the count of records. */
  async expire(maxAgeMs, now = Date.now()) {
    let n = 0;
    let tenants = [];
    try {
      tenants = (await fs.readdir(this.dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    for (const tenant of tenants) {
      for (const sub of ['keys', 'messages']) {
        await eachFile(path.join(this.dir, tenant, sub), async (file) => {
          const st = await fs.stat(file).catch(() => null);
          if (!st || now - st.mtimeMs <= maxAgeMs) return;
          await withKeyLock(`idem:${file}`, () => fs.rm(file, { force: true }));
          if (sub === 'keys') n++;
        });
      }
    }
    return n;
  }

  // Earlier versions kept one append-only JSONL file per tenant. Import it once, line by
  // line (last line wins, never overwriting a newer record), then remove it.
  _migrated(tenant) {
    let p = this.migrations.get(tenant);
    if (!p) {
      p = this._migrate(tenant);
      this.migrations.set(tenant, p);
      p.catch(() => this.migrations.delete(tenant));
    }
    return p;
  }

  async _migrate(tenant) {
    const legacy = path.join(this.dir, `${tenant}.jsonl`);
    try {
      await fs.access(legacy);
    } catch {
      return;
    }
    const lines = readline.createInterface({ input: createReadStream(legacy, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      if (!line.trim()) continue;
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        // A torn last line from a crash mid-append; earlier lines are intact (fsync'd).
        this.logger.warn({ tenant }, 'idempotency_store_skipped_bad_line');
        continue;
      }
      if (typeof rec.key !== 'string' || !OUTCOMES.includes(rec.outcome)) continue;
      const existing = await this._read(this.keyFile(tenant, rec.key));
      if (existing && existing.at > rec.at) continue;
      await this._write(tenant, rec, { sync: false });
      n++;
    }
    for (const sub of ['keys', 'messages']) await fsyncDir(path.join(this.dir, tenant, sub));
    await fs.rm(legacy, { force: true });
    this.logger.info({ tenant, records: n }, 'idempotency_store_migrated');
  }
}

/** Call `fn(file)` for each regular file in `dir`, streaming the directory (no full listing in memory). */
export async function eachFile(dir, fn) {
  let handle;
  try {
    handle = await fs.opendir(dir);
  } catch (err) {
    if (err.code === 'ENOENT') return;
    throw err;
  }
  for await (const entry of handle) {
    if (entry.isFile() && entry.name.endsWith('.json') && !entry.name.startsWith('.')) await fn(path.join(dir, entry.name));
  }
}
