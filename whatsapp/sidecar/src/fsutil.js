import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';

// Write tmp file, fsync it, rename over the target, fsync the directory: a reader (or a
// crash) sees either the old content or the new one, never a torn file.
export async function writeFileAtomic(file, data, { syncDir = true } = {}) {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (syncDir) await fsyncDir(dir);
}

export async function fsyncDir(dir) {
  let fh;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

export async function readJsonOrNull(file, reviver) {
  let text;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text, reviver);
}

export class LockTimeoutError extends Error {}

// A FIFO async mutex. `timeoutMs` bounds how long a caller waits for the lock, so a
// stuck holder shows up as an error instead of a silent deadlock.
export class Mutex {
  constructor() {
    this._tail = Promise.resolve();
  }

  async run(fn, { timeoutMs = 0, name = 'mutex' } = {}) {
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const prev = this._tail;
    this._tail = prev.then(() => held);
    if (timeoutMs > 0) {
      let timer;
      const timedOut = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new LockTimeoutError(`${name}: lock not acquired within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([prev, timedOut]);
      } catch (err) {
        // Keep the queue consistent: our slot is released as soon as the previous holder is done.
        prev.then(() => release());
        throw err;
      } finally {
        clearTimeout(timer);
      }
    } else {
      await prev;
    }
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

// One mutex per key (e.g. per tenant auth directory), shared by every user in the process.
// Kept for the life of the process: callers may hold the mutex itself (auth-store does), so
// only use it for keys of which there are few (one per tenant).
const registry = new Map();
export function mutexFor(key) {
  let m = registry.get(key);
  if (!m) {
    m = new Mutex();
    registry.set(key, m);
  }
  return m;
}

// Run `fn` under the lock of `key`, for keys without end (one per idempotency key, i.e. per
// message): the lock exists only while someone holds or waits for it, so the process does
// not keep one mutex per message it ever sent (about 370 bytes each, forever). A caller
// after the last one has left gets a fresh mutex that nobody else is in: still exclusive.
const transient = new Map(); // key -> { mutex, users }
export async function withKeyLock(key, fn, opts) {
  let entry = transient.get(key);
  if (!entry) {
    entry = { mutex: new Mutex(), users: 0 };
    transient.set(key, entry);
  }
  entry.users++;
  try {
    return await entry.mutex.run(fn, opts);
  } finally {
    entry.users--;
    if (entry.users === 0 && transient.get(key) === entry) transient.delete(key);
  }
}

/** How many keys currently have a transient lock (held or awaited). */
export function keyLocksInUse() {
  return transient.size;
}
