import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as baileys from 'baileys';
import { useAtomicAuthState, keyFileName, readPairedId } from '../src/auth-store.js';
import { Mutex, LockTimeoutError } from '../src/fsutil.js';

const deps = { BufferJSON: baileys.BufferJSON, initAuthCreds: baileys.initAuthCreds, proto: baileys.proto };
const tmpDir = () => fs.mkdtemp(path.join(os.tmpdir(), 'sidecar-auth-'));

test('concurrent creds and key writes are serialized, atomic and reload intact', async () => {
  const dir = await tmpDir();
  const a = await useAtomicAuthState(dir, deps);
  assert.ok(a.state.creds.noiseKey.private instanceof Uint8Array || Buffer.isBuffer(a.state.creds.noiseKey.private));

  const writes = [];
  for (let i = 0; i < 60; i++) {
    writes.push(a.state.keys.set({ session: { [`1555000${i}.0`]: Buffer.from(`session-${i}`) } }));
    // The same id written many times concurrently: the last queued write must win.
    writes.push(a.state.keys.set({ 'sender-key': { 'group@g.us::x:1': Buffer.from(`v${i}`) } }));
    a.state.creds.me = { id: `15550001234:${i}@s.whatsapp.net`, name: 'T' };
    writes.push(a.saveCreds());
  }
  writes.push(a.state.keys.set({ 'pre-key': { 1: { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } } }));
  writes.push(a.state.keys.set({ 'app-state-sync-key': { AAAA: { keyData: Buffer.from('k'), timestamp: 5 } } }));
  await Promise.all(writes);

  const leftovers = (await fs.readdir(path.join(dir, 'keys'))).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  for (const f of await fs.readdir(path.join(dir, 'keys'))) JSON.parse(await fs.readFile(path.join(dir, 'keys', f), 'utf8'));

  const b = await useAtomicAuthState(dir, deps);
  assert.equal(b.state.creds.me.id, '15550001234:59@s.whatsapp.net');
  assert.deepEqual(Buffer.from(b.state.creds.noiseKey.private), Buffer.from(a.state.creds.noiseKey.private));
  const ids = Array.from({ length: 60 }, (_, i) => `1555000${i}.0`);
  const sessions = await b.state.keys.get('session', ids);
  for (let i = 0; i < 60; i++) assert.equal(Buffer.from(sessions[ids[i]]).toString(), `session-${i}`);
  const sk = await b.state.keys.get('sender-key', ['group@g.us::x:1']);
  assert.equal(Buffer.from(sk['group@g.us::x:1']).toString(), 'v59');
  const pk = await b.state.keys.get('pre-key', ['1']);
  assert.deepEqual(Buffer.from(pk['1'].private), Buffer.alloc(32, 2));
  const app = await b.state.keys.get('app-state-sync-key', ['AAAA']);
  assert.equal(Number(app.AAAA.timestamp), 5);
  assert.equal(Buffer.from(app.AAAA.keyData).toString(), 'k');
  assert.equal(await readPairedId(dir), '15550001234:59@s.whatsapp.net');

  // null deletes; the cacheable wrapper from baileys works on top of the store
  const cached = baileys.makeCacheableSignalKeyStore(b.state.keys);
  await cached.set({ session: { [ids[0]]: null } });
  const c = await useAtomicAuthState(dir, deps);
  assert.equal((await c.state.keys.get('session', [ids[0]]))[ids[0]], undefined);

  await c.clear();
  assert.equal(await readPairedId(dir), null);
});

test('key file names are unambiguous and cannot escape the directory', () => {
  assert.notEqual(keyFileName('session', 'a_b'), keyFileName('session', 'a/b'));
  assert.ok(!keyFileName('session', '../../etc/passwd').includes('/'));
});

test('the mutex runs holders one at a time and a waiter gives up after its lock timeout', async () => {
  const m = new Mutex();
  let active = 0;
  let maxActive = 0;
  await Promise.all(Array.from({ length: 20 }, () => m.run(async () => {
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise((r) => setTimeout(r, 2));
    active--;
  })));
  assert.equal(maxActive, 1);

  let releaseHolder;
  const holder = m.run(() => new Promise((r) => { releaseHolder = r; }));
  await assert.rejects(m.run(async () => 1, { timeoutMs: 30 }), LockTimeoutError);
  releaseHolder();
  await holder;
  assert.equal(await m.run(async () => 2, { timeoutMs: 30 }), 2);
});
