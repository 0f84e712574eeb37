// Configuration comes only from the environment; bad values fail loudly at startup
// instead of being silently replaced by defaults.
import path from 'node:path';

export class ConfigError extends Error {}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function int(env, name, dflt, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}`);
  return n;
}

function bool(env, name) {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new ConfigError(`${name} must be 0/1/true/false, got ${JSON.stringify(env[name])}`);
}

export function loadConfig(env = process.env) {
  const host = env.SIDECAR_HOST || '127.0.0.1';
  const allowPublic = bool(env, 'SIDECAR_ALLOW_PUBLIC');
  if (!LOOPBACK.has(host) && !allowPublic) {
    throw new ConfigError(`refusing to listen on non-loopback host ${host} (set SIDECAR_ALLOW_PUBLIC=1 to override)`);
  }
  const token = env.SIDECAR_TOKEN || '';
  if (!token) throw new ConfigError('SIDECAR_TOKEN is required');

  const transport = env.SIDECAR_TRANSPORT || 'baileys';
  if (transport !== 'baileys' && transport !== 'sandbox') {
    throw new ConfigError(`SIDECAR_TRANSPORT must be "baileys" or "sandbox", got ${JSON.stringify(transport)}`);
  }

  const webhookBase = (env.SIDECAR_WEBHOOK_BASE || '').replace(/\/+$/, '');
  if (webhookBase && !/^https?:\/\//.test(webhookBase)) {
    throw new ConfigError('SIDECAR_WEBHOOK_BASE must start with http:// or https://');
  }
  const webhookSecret = env.SIDECAR_WEBHOOK_SECRET || '';
  if (webhookBase && !webhookSecret) throw new ConfigError('SIDECAR_WEBHOOK_SECRET is required when SIDECAR_WEBHOOK_BASE is set');

  // Demo mode (scripts/run.sh) shows the QR pairing flow; tests want sessions that connect at once.
  const sandboxPairing = env.SIDECAR_SANDBOX_PAIRING || 'instant';
  if (sandboxPairing !== 'instant' && sandboxPairing !== 'manual') {
    throw new ConfigError(`SIDECAR_SANDBOX_PAIRING must be "instant" or "manual", got ${JSON.stringify(sandboxPairing)}`);
  }

  let waVersion = null;
  if (env.SIDECAR_WA_VERSION) {
    const parts = env.SIDECAR_WA_VERSION.split(',').map((p) => p.trim());
    if (parts.length !== 3 || !parts.every((p) => /^\d+$/.test(p))) {
      throw new ConfigError('SIDECAR_WA_VERSION must look like "2,3000,1023223821"');
    }
    waVersion = parts.map(Number);
  }

  // Where the sessions' state lives (src/state/): files on this host, or PostgreSQL rows
  // fenced by the shard's token so that another host can take the shard over.
  const stateStore = env.SIDECAR_STATE_STORE || 'file';
  if (stateStore !== 'file' && stateStore !== 'postgres') {
    throw new ConfigError(`SIDECAR_STATE_STORE must be "file" or "postgres", got ${JSON.stringify(stateStore)}`);
  }
  let fencingToken = (env.SIDECAR_FENCING_TOKEN ?? '').trim() || null;
  if (fencingToken !== null && !/^\d{1,19}$/.test(fencingToken)) throw new ConfigError('SIDECAR_FENCING_TOKEN must be a non-negative integer');
  if (fencingToken !== null) fencingToken = BigInt(fencingToken).toString(); // "07" is 7, as PostgreSQL's bigint says
  const shard = (env.SIDECAR_SHARD ?? '').trim() || null;
  const stateDatabaseUrl = env.SIDECAR_STATE_DATABASE_URL || '';
  if (stateStore === 'postgres') {
    // A shared store without a fence would let a stale owner overwrite a newer one's keys.
    if (!stateDatabaseUrl) throw new ConfigError('SIDECAR_STATE_DATABASE_URL is required with SIDECAR_STATE_STORE=postgres');
    if (!shard) throw new ConfigError('SIDECAR_SHARD is required with SIDECAR_STATE_STORE=postgres');
    if (fencingToken === null) throw new ConfigError('SIDECAR_FENCING_TOKEN is required with SIDECAR_STATE_STORE=postgres');
  }

  return {
    host,
    port: int(env, 'SIDECAR_PORT', 3001, { max: 65535 }),
    token,
    transport,
    sandboxPairing,
    dataDir: path.resolve(env.SIDECAR_DATA_DIR || './data'),
    webhookBase,
    webhookSecret,
    sendTimeoutMs: int(env, 'SIDECAR_SEND_TIMEOUT_MS', 15000, { min: 1 }),
    startTimeoutMs: int(env, 'SIDECAR_START_TIMEOUT_MS', 60000, { min: 1 }),
    webhookTimeoutMs: int(env, 'SIDECAR_WEBHOOK_TIMEOUT_MS', 10000, { min: 1 }),
    retryBaseMs: int(env, 'SIDECAR_RETRY_BASE_MS', 1000, { min: 1 }),
    retryMaxMs: int(env, 'SIDECAR_RETRY_MAX_MS', 60000, { min: 1 }),
    // Baileys' sendMessage resolves when the frame is written; the server ack must follow
    // within this, well below Django's SIDECAR_READ_TIMEOUT (8 s), or the outcome is unknown.
    ackTimeoutMs: int(env, 'SIDECAR_ACK_TIMEOUT_MS', 5000, { min: 1 }),
    // `append` upserts newer than the last connect minus this are forwarded (clock skew
    // between WhatsApp's timestamps and ours).
    appendMarginSeconds: int(env, 'SIDECAR_APPEND_MARGIN_SECONDS', 300),
    // Webhook answers 401/403/404 can heal (clock skew, secret rotation, renamed tenant):
    // retried with backoff for this long after the event was spooled, then rejected.
    webhookAuthRetryMs: int(env, 'SIDECAR_WEBHOOK_AUTH_RETRY_MS', 15 * 60 * 1000),
    idempotencyRetentionDays: int(env, 'SIDECAR_IDEMPOTENCY_RETENTION_DAYS', 30, { min: 1 }),
    sweepIntervalMs: int(env, 'SIDECAR_SWEEP_INTERVAL_MS', 60 * 60 * 1000, { min: 1000 }),
    authLockTimeoutMs: int(env, 'SIDECAR_AUTH_LOCK_TIMEOUT_MS', 30000, { min: 1 }),
    // Inbound media (src/media.js): size and time bounds of one download, its attempts,
    // and how long a file nobody fetched is kept.
    mediaMaxBytes: int(env, 'SIDECAR_MEDIA_MAX_BYTES', 16 * 1024 * 1024, { min: 1 }),
    mediaTimeoutMs: int(env, 'SIDECAR_MEDIA_TIMEOUT_MS', 60000, { min: 1 }),
    mediaRetries: int(env, 'SIDECAR_MEDIA_RETRIES', 3, { min: 1, max: 20 }),
    mediaRetryBaseMs: int(env, 'SIDECAR_MEDIA_RETRY_BASE_MS', 2000),
    mediaRetentionHours: int(env, 'SIDECAR_MEDIA_RETENTION_HOURS', 7 * 24, { min: 1 }),
    mediaConcurrency: int(env, 'SIDECAR_MEDIA_CONCURRENCY', 4, { min: 1, max: 64 }),
    waVersion,
    stateStore,
    stateDatabaseUrl,
    stateDbPoolSize: int(env, 'SIDECAR_STATE_DATABASE_POOL', 10, { min: 1, max: 100 }),
    shard,
    fencingToken,
    fenceCheckMs: int(env, 'SIDECAR_FENCE_CHECK_MS', 2000, { min: 100 }),
    logLevel: env.SIDECAR_LOG_LEVEL || 'info',
  };
}
