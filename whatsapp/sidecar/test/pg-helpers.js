// A throwaway PostgreSQL database per test file, with the two tables Django's migrations
// create (whatsapp_shard from the shards work, whatsapp_sidecar_state from 0015), in plain
// DDL matching the models. PostgreSQL at SIDECAR_TEST_DATABASE_URL (default: the local
// server CI runs, postgres@127.0.0.1:5432, trust auth). When it cannot be reached, tests
// that need it are skipped with that reason; every other failure fails them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';

const ADMIN_URL = process.env.SIDECAR_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export const SCHEMA = fs.readFileSync(new URL('./state-schema.sql', import.meta.url), 'utf8');

/** Why PostgreSQL cannot be used, or null when it can. Only an unreachable server counts. */
export async function pgUnavailable() {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(err.code) || /timeout/i.test(err.message)) {
      return `PostgreSQL is unreachable at ${ADMIN_URL.replace(/\/\/[^@]*@/, '//')} (${err.code || err.message}): postgres state store tests skipped`;
    }
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A fresh database with the schema; returns { url, query(sql, params), setToken(shard, token), drop() }. */
export async function createTestDatabase() {
  const name = `sidecar_state_test_${crypto.randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 3 });
  await pool.query(SCHEMA);
  return {
    url: url.toString(),
    query: (sql, params) => pool.query(sql, params),
    /** What Django's lifecycle owner does when it takes the shard: a new token, in one UPDATE. */
    async setToken(shard, token) {
      await pool.query(
        `INSERT INTO whatsapp_shard (name, fencing_token) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET fencing_token = EXCLUDED.fencing_token`, [shard, token],
      );
    },
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Env for a sidecar on the postgres store as owner of `shard` with `token`. */
export function pgEnv(db, shard, token, extra = {}) {
  return {
    SIDECAR_STATE_STORE: 'postgres',
    SIDECAR_STATE_DATABASE_URL: db.url,
    SIDECAR_SHARD: shard,
    SIDECAR_FENCING_TOKEN: String(token),
    ...extra,
  };
}
