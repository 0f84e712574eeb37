// Which state store the sidecar uses (SIDECAR_STATE_STORE): `file` keeps today's files on
// this host; `postgres` keeps the same state in whatsapp_sidecar_state, fenced by the
// shard's token, so that another host can take the shard over. Both offer the same parts:
// { kind, auth, idempotency, spoolStorage, marks, fence, close() }.
import { createFileState } from './file.js';

export async function createStateStore({ config, logger }) {
  if (config.stateStore === 'postgres') {
    // Loaded only here: a file-store sidecar never loads the driver.
    const { createPostgresState } = await import('./postgres.js');
    return createPostgresState({ config, logger });
  }
  return createFileState({ config, logger });
}
