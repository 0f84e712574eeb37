// When each tenant's session last connected, kept on disk so a sidecar restart or deploy
// still knows which `append` upserts are messages it has not seen (whatsapp.js isNewUpsert).
import path from 'node:path';
import { writeFileAtomic, readJsonOrNull } from './fsutil.js';

export class ConnectionMarks {
  constructor(dataDir, { marginSeconds }) {
    this.dir = path.join(dataDir, 'connections');
    this.marginSeconds = marginSeconds;
  }

  file(tenant) {
    return path.join(this.dir, `${tenant}.json`);
  }

  /** Epoch seconds of the last recorded connect, or null. */
  async lastConnected(tenant) {
    const mark = await readJsonOrNull(this.file(tenant)).catch(() => null);
    const at = Date.parse(mark?.connectedAt ?? '');
    return Number.isFinite(at) ? Math.floor(at / 1000) : null;
  }

  /** The oldest `append` timestamp to forward: the last connect minus the clock margin. */
  async appendSince(tenant) {
    const last = await this.lastConnected(tenant);
    return last === null ? null : last - this.marginSeconds;
  }

  async record(tenant, connectedAt) {
    await writeFileAtomic(this.file(tenant), JSON.stringify({ connectedAt }));
  }
}
