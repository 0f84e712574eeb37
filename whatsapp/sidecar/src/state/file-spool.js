// Where the webhook spool keeps its items on one host: one atomic file per item under
// <dataDir>/spool/pending/ and spool/rejected/ (the single-host default). The PostgreSQL
// store (postgres.js) offers the same methods; spool.js only talks to this interface.
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../fsutil.js';
import { eachFile } from '../idempotency.js';

const isItemName = (n) => n.endsWith('.json') && !n.startsWith('.');

export class FileSpoolStorage {
  constructor(dataDir) {
    this.pendingDir = path.join(dataDir, 'spool', 'pending');
    this.rejectedDir = path.join(dataDir, 'spool', 'rejected');
  }

  async init() {
    await fs.mkdir(this.pendingDir, { recursive: true });
    await fs.mkdir(this.rejectedDir, { recursive: true });
  }

  put(name, item) {
    return writeFileAtomic(path.join(this.pendingDir, name), JSON.stringify(item));
  }

  /** The pending item, or null when it is gone; throws when it cannot be read or parsed. */
  async read(name) {
    try {
      return JSON.parse(await fs.readFile(path.join(this.pendingDir, name), 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') return null;
      throw err;
    }
  }

  remove(name) {
    return fs.rm(path.join(this.pendingDir, name), { force: true });
  }

  /** Names of every pending item, oldest first. */
  async pendingNames() {
    try {
      return (await fs.readdir(this.pendingDir)).filter(isItemName).sort();
    } catch (err) {
      if (err.code === 'ENOENT') return [];
      throw err;
    }
  }

  // The rejected file (the item plus why Django refused it) is written atomically before
  // the pending one goes; an unreadable item (`item` null) is moved as it is.
  async reject(name, item, rejection) {
    const from = path.join(this.pendingDir, name);
    const to = path.join(this.rejectedDir, name);
    try {
      if (item) {
        await writeFileAtomic(to, JSON.stringify({ ...item, rejection }));
        await fs.rm(from, { force: true });
      } else {
        await fs.mkdir(this.rejectedDir, { recursive: true });
        await fs.rename(from, to);
      }
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }

  /** The oldest `limit` rejected items among `names` that `accept`s: [{name, item}] (item null: unreadable). */
  async listRejected(limit, accept) {
    let names = [];
    try {
      names = (await fs.readdir(this.rejectedDir)).filter(accept);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    names.sort();
    const out = [];
    for (const name of names.slice(0, limit)) {
      let item = null;
      try {
        item = JSON.parse(await fs.readFile(path.join(this.rejectedDir, name), 'utf8'));
      } catch (err) {
        if (err.code === 'ENOENT') continue; // collected meanwhile
      }
      out.push({ name, item });
    }
    return out;
  }

  deleteRejected(name) {
    return fs.rm(path.join(this.rejectedDir, name), { force: true });
  }

  /** Call `fn({name, item, rejected})` for every readable item of `tenant`, pending and rejected. */
  async eachOfTenant(tenant, fn) {
    for (const [dir, rejected] of [[this.pendingDir, false], [this.rejectedDir, true]]) {
      await eachFile(dir, async (file) => {
        const name = path.basename(file);
        if (!name.endsWith(`-${tenant}.json`)) return;
        let item;
        try {
          item = JSON.parse(await fs.readFile(file, 'utf8'));
        } catch {
          return;
        }
        if (item.tenant === tenant) await fn({ name, item, rejected });
      });
    }
  }

  removeItem(name, rejected) {
    return fs.rm(path.join(rejected ? this.rejectedDir : this.pendingDir, name), { force: true });
  }
}
