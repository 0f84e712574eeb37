// The single-host state store (SIDECAR_STATE_STORE=file, the default): everything under
// SIDECAR_DATA_DIR, exactly as before the store was made interchangeable.
import { authDirFor, clearAuthDir, readPairedId, useAtomicAuthState, writeSimpleCreds } from '../auth-store.js';
import { IdempotencyStore } from '../idempotency.js';
import { ConnectionMarks } from '../connection-marks.js';
import { FileSpoolStorage } from './file-spool.js';
import { NoFence } from './fence.js';

/** One tenant's auth state in `dir`: what a transport needs (open, pairedId, writeSimpleCreds, clear). */
export function fileAuthHandle(dir, { lockTimeoutMs = 30000 } = {}) {
  return {
    open: (deps) => useAtomicAuthState(dir, deps, { lockTimeoutMs }),
    pairedId: () => readPairedId(dir),
    writeSimpleCreds: (creds) => writeSimpleCreds(dir, creds, { lockTimeoutMs }),
    clear: () => clearAuthDir(dir, { lockTimeoutMs }),
  };
}

export class FileAuthStore {
  constructor(dataDir, { lockTimeoutMs = 30000 } = {}) {
    this.dataDir = dataDir;
    this.lockTimeoutMs = lockTimeoutMs;
  }

  forTenant(tenant) {
    return fileAuthHandle(authDirFor(this.dataDir, tenant), { lockTimeoutMs: this.lockTimeoutMs });
  }

  pairedId(tenant) {
    return this.forTenant(tenant).pairedId();
  }

  clear(tenant) {
    return this.forTenant(tenant).clear();
  }
}

export function createFileState({ config, logger }) {
  return {
    kind: 'file',
    auth: new FileAuthStore(config.dataDir, { lockTimeoutMs: config.authLockTimeoutMs }),
    idempotency: new IdempotencyStore(config.dataDir, logger),
    spoolStorage: new FileSpoolStorage(config.dataDir),
    marks: new ConnectionMarks(config.dataDir, { marginSeconds: config.appendMarginSeconds }),
    fence: new NoFence(),
    close: async () => {},
  };
}
