// The shared state store (SIDECAR_STATE_STORE=postgres): what the file store keeps under
// SIDECAR_DATA_DIR, as rows of whatsapp_sidecar_state (Django's model SidecarState, which
// owns the schema): one row per (tenant, kind, key), `value` JSON text. Every write is one
// transaction fenced by the shard's token (fence.js), so a sidecar whose shard was taken
// over can no longer change anything, and the new owner reads what the old one wrote.
//
// Kinds: auth-creds (key "creds"), auth-keys ("<type>/<id>"), idempotency (the idempotency
// key), idempotency-message (WhatsApp's message id -> {messageId, key}), spool and
// spool-rejected (the spool item's name), mark ("connected").
import pg from 'pg';
import { Mutex, withKeyLock } from '../fsutil.js';
import { OUTCOMES } from '../idempotency.js';
import { PgFence } from './fence.js';

const TABLE = 'whatsapp_sidecar_state';
const K = Object.freeze({
  creds: 'auth-creds',
  keys: 'auth-keys',
  idem: 'idempotency',
  idemMessage: 'idempotency-message',
  spool: 'spool',
  rejected: 'spool-rejected',
  mark: 'mark',
});

// Many rows of one tenant and kind in one statement. `pairs` must not repeat a key (an
// upsert cannot touch one row twice): callers pass object keys, which are unique.
const UPSERT = `INSERT INTO ${TABLE} (shard, tenant, kind, key, value, updated_at)
  SELECT $1, $2, $3, k, v, now() FROM unnest($4::text[], $5::text[]) AS t(k, v)
  ON CONFLICT (tenant, kind, key) DO UPDATE SET value = EXCLUDED.value, shard = EXCLUDED.shard, updated_at = now()`;
// The hot path (a send's records, creds, spool items): the fence check and the write in one
// statement, one round trip. The CTE takes the shard row FOR SHARE exactly as the
// transaction in fence.js does; the write happens only when the token is ours, and the
// token read is returned so the caller can tell a refusal.
const FENCE_CTE = `fence AS (SELECT fencing_token FROM whatsapp_shard WHERE name = $1 FOR SHARE)`;
const FENCED_UPSERT = `WITH ${FENCE_CTE}, w AS (
  INSERT INTO ${TABLE} (shard, tenant, kind, key, value, updated_at)
  SELECT $1, $3, kd, k, v, now() FROM unnest($4::text[], $5::text[], $6::text[]) AS t(kd, k, v)
  WHERE EXISTS (SELECT 1 FROM fence WHERE fencing_token = $2::bigint)
  ON CONFLICT (tenant, kind, key) DO UPDATE SET value = EXCLUDED.value, shard = EXCLUDED.shard, updated_at = now()
  RETURNING 1)
SELECT (SELECT fencing_token FROM fence) AS fencing_token, (SELECT count(*) FROM w)::int AS n`;
const FENCED_DELETE = `WITH ${FENCE_CTE}, w AS (
  DELETE FROM ${TABLE} WHERE tenant = $3 AND kind = $4 AND key = ANY($5::text[])
  AND EXISTS (SELECT 1 FROM fence WHERE fencing_token = $2::bigint)
  RETURNING 1)
SELECT (SELECT fencing_token FROM fence) AS fencing_token, (SELECT count(*) FROM w)::int AS n`;
const SELECT_ONE = `SELECT value FROM ${TABLE} WHERE tenant = $1 AND kind = $2 AND key = $3`;
const DELETE_KEYS = `DELETE FROM ${TABLE} WHERE tenant = $1 AND kind = $2 AND key = ANY($3::text[])`;

/** Shared by the parts: the pool, this sidecar's shard and its fence. */
class Db {
  constructor({ pool, shard, fence }) {
    this.pool = pool;
    this.shard = shard;
    this.fence = fence;
  }

  upsert(client, tenant, kind, pairs) {
    if (!pairs.length) return null;
    return client.query(UPSERT, [this.shard, tenant, kind, pairs.map((p) => p[0]), pairs.map((p) => p[1])]);
  }

  async one(tenant, kind, key) {
    const { rows } = await this.pool.query(SELECT_ONE, [tenant, kind, key]);
    return rows.length ? rows[0].value : null;
  }

  /** Fenced upsert of `rows` ([kind, key, value]; no (kind, key) twice) in one statement. */
  put(tenant, rows) {
    return this.fence.statement(FENCED_UPSERT, [tenant, rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])]);
  }

  /** Fenced delete of `keys` of one kind in one statement. */
  drop(tenant, kind, keys) {
    return this.fence.statement(FENCED_DELETE, [tenant, kind, keys]);
  }

  /** One fenced write transaction (for writes of more than one statement). */
  write(fn) {
    return this.fence.tx(fn);
  }
}

// ---- auth state (Baileys creds + signal keys) --------------------------------------------

const keyRow = (type, id) => `${type}/${id}`;

export class PgAuthStore {
  constructor(db, { lockTimeoutMs = 30000 } = {}) {
    this.db = db;
    this.lockTimeoutMs = lockTimeoutMs;
    this.locks = new Map(); // tenant -> Mutex: one writer order per tenant, as the file store
  }

  _locked(tenant, fn, name) {
    let m = this.locks.get(tenant);
    if (!m) {
      m = new Mutex();
      this.locks.set(tenant, m);
    }
    return m.run(fn, { timeoutMs: this.lockTimeoutMs, name: `auth ${name}` });
  }

  _saveCreds(tenant, json) {
    return this._locked(tenant, () => this.db.put(tenant, [[K.creds, 'creds', json]]), 'saveCreds');
  }

  forTenant(tenant) {
    return {
      open: (deps) => this.open(tenant, deps),
      pairedId: () => this.pairedId(tenant),
      writeSimpleCreds: (creds) => this._saveCreds(tenant, JSON.stringify(creds)),
      clear: () => this.clear(tenant),
    };
  }

  /** Baileys' { state: { creds, keys }, saveCreds } on rows, like useAtomicAuthState on files. */
  async open(tenant, { BufferJSON, initAuthCreds, proto }) {
    const db = this.db;
    const locked = (fn, name) => this._locked(tenant, fn, name);
    const stored = await locked(() => db.one(tenant, K.creds, 'creds'), 'read creds');
    const creds = stored ? JSON.parse(stored, BufferJSON.reviver) : initAuthCreds();
    const keys = {
      // Reads take the same lock so a get that follows a set always sees it.
      get: (type, ids) => locked(async () => {
        const { rows } = await db.pool.query(
          `SELECT key, value FROM ${TABLE} WHERE tenant = $1 AND kind = $2 AND key = ANY($3::text[])`,
          [tenant, K.keys, ids.map((id) => keyRow(type, id))],
        );
        const found = new Map(rows.map((r) => [r.key, r.value]));
        const out = {};
        for (const id of ids) {
          const raw = found.get(keyRow(type, id));
          let value = raw === undefined ? undefined : JSON.parse(raw, BufferJSON.reviver);
          if (value && type === 'app-state-sync-key' && proto?.Message?.AppStateSyncKeyData) {
            value = proto.Message.AppStateSyncKeyData.fromObject(value);
          }
          out[id] = value ?? undefined;
        }
        return out;
      }, 'keys.get'),
      // One transaction per key set: all of it lands, or none.
      set: (data) => locked(async () => {
        const put = [];
        const drop = [];
        for (const type of Object.keys(data)) {
          for (const id of Object.keys(data[type] || {})) {
            const value = data[type][id];
            if (value === null || value === undefined) drop.push(keyRow(type, id));
            else put.push([keyRow(type, id), JSON.stringify(value, BufferJSON.replacer)]);
          }
        }
        if (!drop.length) return put.length ? db.put(tenant, put.map(([k, v]) => [K.keys, k, v])) : null;
        if (!put.length) return db.drop(tenant, K.keys, drop);
        return db.write(async (c) => {
          await db.upsert(c, tenant, K.keys, put);
          await c.query(DELETE_KEYS, [tenant, K.keys, drop]);
        });
      }, 'keys.set'),
      clear: () => locked(() => db.write((c) => c.query(`DELETE FROM ${TABLE} WHERE tenant = $1 AND kind = $2`, [tenant, K.keys])), 'keys.clear'),
    };
    return {
      state: { creds, keys },
      // Serialized when the lock is held, so the newest in-memory creds win.
      saveCreds: () => locked(() => db.put(tenant, [[K.creds, 'creds', JSON.stringify(creds, BufferJSON.replacer)]]), 'saveCreds'),
      clear: () => this.clear(tenant),
    };
  }

  async pairedId(tenant) {
    try {
      const raw = await this.db.one(tenant, K.creds, 'creds');
      return raw ? JSON.parse(raw)?.me?.id || null : null;
    } catch {
      return null;
    }
  }

  clear(tenant) {
    return this._locked(tenant, () => this.db.write((c) => c.query(
      `DELETE FROM ${TABLE} WHERE tenant = $1 AND kind = ANY($2::text[])`, [tenant, [K.creds, K.keys]],
    )), 'clear');
  }
}

// ---- idempotency store (same API and record shapes as ../idempotency.js) -----------------

export class PgIdempotencyStore {
  constructor(db) {
    this.db = db;
  }

  _parse(raw, key) {
    if (raw === null) return null;
    let rec;
    try {
      rec = JSON.parse(raw);
    } catch {
      return null;
    }
    return rec && rec.key === key && OUTCOMES.includes(rec.outcome) ? rec : null;
  }

  async get(tenant, key) {
    return this._parse(await this.db.one(tenant, K.idem, key), key);
  }

  async _write(c, tenant, rec, index) {
    await this.db.upsert(c, tenant, K.idem, [[rec.key, JSON.stringify(rec)]]);
    if (rec.messageId && index) {
      await this.db.upsert(c, tenant, K.idemMessage, [[rec.messageId, JSON.stringify({ messageId: rec.messageId, key: rec.key })]]);
    }
  }

  /**
   * As IdempotencyStore.record: the record and its message-id row in one fenced statement.
   * Always a durable commit (`durable` is the file store's directory fsync; one round trip
   * costs less here than the transaction that `synchronous_commit = off` would need).
   */
  async record(tenant, rec, { index = true } = {}) {
    const full = { ...rec, at: rec.at || new Date().toISOString() };
    const rows = [[K.idem, full.key, JSON.stringify(full)]];
    if (full.messageId && index) rows.push([K.idemMessage, full.messageId, JSON.stringify({ messageId: full.messageId, key: full.key })]);
    await withKeyLock(`pgidem:${tenant}:${rec.key}`, () => this.db.put(tenant, rows));
    return full;
  }

  /** Atomic read-check-write (row lock across processes, key lock within this one). */
  transition(tenant, key, from, patch) {
    return withKeyLock(`pgidem:${tenant}:${key}`, () => this.db.write(async (c) => {
      const { rows } = await c.query(`${SELECT_ONE} FOR UPDATE`, [tenant, K.idem, key]);
      const rec = this._parse(rows[0]?.value ?? null, key);
      if (!rec || !from.includes(rec.outcome)) return null;
      const next = { ...rec, ...patch, at: new Date().toISOString() };
      await this._write(c, tenant, next, next.messageId !== rec.messageId);
      return next;
    }));
  }

  async keyForMessageId(tenant, messageId) {
    const raw = await this.db.one(tenant, K.idemMessage, messageId);
    if (!raw) return null;
    try {
      const idx = JSON.parse(raw);
      return idx?.messageId === messageId ? idx.key : null;
    } catch {
      return null;
    }
  }

  /** Every record of `tenant` whose recipient hashes to one of `hashes` (hex): removed with its message-id entry. */
  async erase(tenant, hashes) {
    const hex = hashes.filter((h) => /^[0-9a-f]+$/.test(h));
    if (!hex.length) return 0;
    return this.db.write(async (c) => {
      // The record is JSON.stringify'd text: `"toHash":"<hex>"` appears exactly so (hex needs no escaping).
      const { rows } = await c.query(
        `DELETE FROM ${TABLE} WHERE tenant = $1 AND kind = $2 AND value LIKE ANY($3::text[]) RETURNING value`,
        [tenant, K.idem, hex.map((h) => `%"toHash":"${h}"%`)],
      );
      const messageIds = rows.map((r) => { try { return JSON.parse(r.value).messageId; } catch { return null; } }).filter(Boolean);
      if (messageIds.length) await c.query(DELETE_KEYS, [tenant, K.idemMessage, messageIds]);
      return rows.length;
    });
  }

  /** Records of this shard not written for `maxAgeMs`: removed. Returns the count of records. */
  async expire(maxAgeMs, now = Date.now()) {
    const before = new Date(now - maxAgeMs);
    return this.db.write(async (c) => {
      const { rowCount } = await c.query(`DELETE FROM ${TABLE} WHERE shard = $1 AND kind = $2 AND updated_at < $3`, [this.db.shard, K.idem, before]);
      await c.query(`DELETE FROM ${TABLE} WHERE shard = $1 AND kind = $2 AND updated_at < $3`, [this.db.shard, K.idemMessage, before]);
      return rowCount;
    });
  }
}

// ---- webhook spool storage (same interface as file-spool.js) -----------------------------

const tenantOfItem = (name) => /-(?:inbound|status|owner)-([a-z0-9][a-z0-9_-]{0,62})\.json$/.exec(name)?.[1] ?? '';

export class PgSpoolStorage {
  constructor(db) {
    this.db = db;
  }

  async init() {}

  put(name, item) {
    return this.db.put(item.tenant, [[K.spool, name, JSON.stringify(item)]]);
  }

  async read(name) {
    const raw = await this.db.one(tenantOfItem(name), K.spool, name);
    return raw === null ? null : JSON.parse(raw);
  }

  remove(name) {
    return this.db.drop(tenantOfItem(name), K.spool, [name]);
  }

  /** This shard's pending items, oldest first: a new owner resumes what the old one left. */
  async pendingNames() {
    const { rows } = await this.db.pool.query(`SELECT key FROM ${TABLE} WHERE shard = $1 AND kind = $2 ORDER BY key`, [this.db.shard, K.spool]);
    return rows.map((r) => r.key);
  }

  reject(name, item, rejection) {
    const tenant = tenantOfItem(name);
    return this.db.write(async (c) => {
      const { rows } = await c.query(`DELETE FROM ${TABLE} WHERE tenant = $1 AND kind = $2 AND key = $3 RETURNING value`, [tenant, K.spool, name]);
      if (!rows.length) return;
      const value = item ? JSON.stringify({ ...item, rejection }) : rows[0].value;
      await this.db.upsert(c, tenant, K.rejected, [[name, value]]);
    });
  }

  async listRejected(limit, accept) {
    const { rows } = await this.db.pool.query(
      `SELECT key, value FROM ${TABLE} WHERE shard = $1 AND kind = $2 ORDER BY key LIMIT $3`, [this.db.shard, K.rejected, limit],
    );
    return rows.filter((r) => accept(r.key)).map((r) => {
      let item = null;
      try {
        item = JSON.parse(r.value);
      } catch {
        // unreadable: listed so staff see that something was lost
      }
      return { name: r.key, item };
    });
  }

  deleteRejected(name) {
    return this.db.drop(tenantOfItem(name), K.rejected, [name]);
  }

  async eachOfTenant(tenant, fn) {
    const { rows } = await this.db.pool.query(
      `SELECT key, kind, value FROM ${TABLE} WHERE tenant = $1 AND kind = ANY($2::text[]) ORDER BY key`, [tenant, [K.spool, K.rejected]],
    );
    for (const r of rows) {
      let item;
      try {
        item = JSON.parse(r.value);
      } catch {
        continue;
      }
      if (item.tenant === tenant) await fn({ name: r.key, item, rejected: r.kind === K.rejected });
    }
  }

  removeItem(name, rejected) {
    return this.db.drop(tenantOfItem(name), rejected ? K.rejected : K.spool, [name]);
  }
}

// ---- connection marks (same API as ../connection-marks.js) -------------------------------

export class PgConnectionMarks {
  constructor(db, { marginSeconds }) {
    this.db = db;
    this.marginSeconds = marginSeconds;
  }

  async lastConnected(tenant) {
    let mark = null;
    try {
      mark = JSON.parse(await this.db.one(tenant, K.mark, 'connected'));
    } catch {
      return null;
    }
    const at = Date.parse(mark?.connectedAt ?? '');
    return Number.isFinite(at) ? Math.floor(at / 1000) : null;
  }

  async appendSince(tenant) {
    const last = await this.lastConnected(tenant);
    return last === null ? null : last - this.marginSeconds;
  }

  record(tenant, connectedAt) {
    return this.db.put(tenant, [[K.mark, 'connected', JSON.stringify({ connectedAt })]]);
  }
}

export function createPostgresState({ config, logger }) {
  const pool = new pg.Pool({ connectionString: config.stateDatabaseUrl, max: config.stateDbPoolSize, application_name: `sidecar:${config.shard}` });
  // An idle client that loses its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => logger.error({ err: err.message }, 'state_db_error'));
  const fence = new PgFence({ pool, shard: config.shard, token: config.fencingToken, logger, intervalMs: config.fenceCheckMs });
  const db = new Db({ pool, shard: config.shard, fence });
  return {
    kind: 'postgres',
    auth: new PgAuthStore(db, { lockTimeoutMs: config.authLockTimeoutMs }),
    idempotency: new PgIdempotencyStore(db),
    spoolStorage: new PgSpoolStorage(db),
    marks: new PgConnectionMarks(db, { marginSeconds: config.appendMarginSeconds }),
    fence,
    async close() {
      fence.stop();
      await pool.end();
    },
  };
}
