// Baileys auth state with serialized, atomic persistence (replaces useMultiFileAuthState,
// which Baileys itself says is not for production). Every write - creds and signal keys -
// goes through ONE per-tenant mutex, so concurrent key writes can never interleave and
// corrupt the state (the cause of the "logged out every 60 s" loop in seed 003).
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic, readJsonOrNull, fsyncDir, mutexFor } from './fsutil.js';

const CREDS_FILE = 'creds.json';
const KEYS_DIR = 'keys';

// Reversible and unambiguous: every char outside [A-Za-z0-9.@-] (including "_") is escaped.
export function keyFileName(type, id) {
  const esc = (s) => String(s).replace(/[^A-Za-z0-9.@-]/g, (c) => `_${c.codePointAt(0).toString(16)}_`);
  return `${esc(type)}--${esc(id)}.json`;
}

export function authDirFor(dataDir, tenant) {
  return path.join(dataDir, 'auth', tenant);
}

export function authLock(dir) {
  return mutexFor(`auth:${path.resolve(dir)}`);
}

/**
 * @param {string} dir          the tenant's auth directory
 * @param {object} deps         { BufferJSON, initAuthCreds, proto } from the baileys package
 * @param {object} [opts]       { lockTimeoutMs }
 * @returns {Promise<{state: {creds, keys}, saveCreds: () => Promise<void>, clear: () => Promise<void>}>}
 */
export async function useAtomicAuthState(dir, deps, { lockTimeoutMs = 30000 } = {}) {
  const { BufferJSON, initAuthCreds, proto } = deps;
  const lock = authLock(dir);
  const locked = (fn, name) => lock.run(fn, { timeoutMs: lockTimeoutMs, name: `auth ${name}` });
  const keysDir = path.join(dir, KEYS_DIR);
  await fs.mkdir(keysDir, { recursive: true });

  const creds = (await locked(() => readJsonOrNull(path.join(dir, CREDS_FILE), BufferJSON.reviver), 'read creds')) || initAuthCreds();

  const keys = {
    async get(type, ids) {
      // Reads take the same lock so a get that follows a set always sees it.
      return locked(async () => {
        const out = {};
        for (const id of ids) {
          let value = await readJsonOrNull(path.join(keysDir, keyFileName(type, id)), BufferJSON.reviver);
          if (value && type === 'app-state-sync-key' && proto?.Message?.AppStateSyncKeyData) {
            value = proto.Message.AppStateSyncKeyData.fromObject(value);
          }
          out[id] = value ?? undefined;
        }
        return out;
      }, 'keys.get');
    },
    async set(data) {
      await locked(async () => {
        for (const type of Object.keys(data)) {
          for (const id of Object.keys(data[type] || {})) {
            const value = data[type][id];
            const file = path.join(keysDir, keyFileName(type, id));
            if (value === null || value === undefined) {
              await fs.rm(file, { force: true });
            } else {
              await writeFileAtomic(file, JSON.stringify(value, BufferJSON.replacer), { syncDir: false });
            }
          }
        }
        await fsyncDir(keysDir);
      }, 'keys.set');
    },
    async clear() {
      await locked(async () => {
        await fs.rm(keysDir, { recursive: true, force: true });
        await fs.mkdir(keysDir, { recursive: true });
      }, 'keys.clear');
    },
  };

  return {
    state: { creds, keys },
    // Serialized at the moment the lock is held, so the newest in-memory creds win.
    saveCreds: () => locked(() => writeFileAtomic(path.join(dir, CREDS_FILE), JSON.stringify(creds, BufferJSON.replacer)), 'saveCreds'),
    clear: () => clearAuthDir(dir, { lockTimeoutMs }),
  };
}

/** Paired = a creds file with creds.me.id exists. Transport-agnostic (used by the manager). */
export async function readPairedId(dir) {
  try {
    const creds = await readJsonOrNull(path.join(dir, CREDS_FILE));
    return creds?.me?.id || null;
  } catch {
    return null;
  }
}

/** Delete a tenant's credentials, under the same lock as every auth write. */
export async function clearAuthDir(dir, { lockTimeoutMs = 30000 } = {}) {
  await authLock(dir).run(() => fs.rm(dir, { recursive: true, force: true }), { timeoutMs: lockTimeoutMs, name: 'auth clear' });
}

/** Sandbox helper: write a minimal paired creds file through the same locked atomic path. */
export async function writeSimpleCreds(dir, creds, { lockTimeoutMs = 30000 } = {}) {
  await authLock(dir).run(() => writeFileAtomic(path.join(dir, CREDS_FILE), JSON.stringify(creds)), { timeoutMs: lockTimeoutMs, name: 'auth write' });
}
