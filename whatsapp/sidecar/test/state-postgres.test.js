// The postgres state store (SIDECAR_STATE_STORE=postgres) and the shard's fencing token:
// round trips of every kind of state, a newer owner fencing the old sidecar out, and a
// takeover where owner B carries on with what owner A wrote. Real sidecars (in-process,
// sandbox transport) on a real PostgreSQL; skipped only when PostgreSQL is unreachable.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as baileys from 'baileys';
import { startSidecar, startFakeWebhook, waitFor, SECRET, sleep } from './helpers.js';
import { pgUnavailable, createTestDatabase, pgEnv } from './pg-helpers.js';
import { createPostgresState } from '../src/state/postgres.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { baileysTransportFactory } from '../src/transports/baileys.js';

const deps = { BufferJSON: baileys.BufferJSON, initAuthCreds: baileys.initAuthCreds, proto: baileys.proto };
const unavailable = await pgUnavailable();
if (unavailable) console.log(`# ${unavailable}`);
const skip = unavailable || false;
const db = unavailable ? null : await createTestDatabase();
after(() => db?.drop());

let shardSeq = 0;
const newShard = () => `s${++shardSeq}-${process.pid}`;
const msg = (key, text = 'hello') => ({ to: '+15551230001', text, idempotencyKey: key });

function storeFor(shard, token) {
  const config = loadConfig({ SIDECAR_TOKEN: 't', ...pgEnv(db, shard, token) });
  const logs = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line) => logs.push(JSON.parse(line)) } });
  return { store: createPostgresState({ config, logger }), logs };
}

test('postgres store round trips: auth creds and keys, idempotency, spool, marks', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const { store } = storeFor(shard, 1);
  try {
    // Auth: creds with Buffers survive BufferJSON; keys set/get/delete in one transaction each.
    const handle = store.auth.forTenant('acme');
    assert.equal(await handle.pairedId(), null);
    const a = await handle.open(deps);
    a.state.creds.me = { id: '15550001111:2@s.whatsapp.net', name: 'A' };
    await Promise.all([
      a.saveCreds(),
      a.state.keys.set({ 'pre-key': { 1: { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) }, 2: { public: Buffer.alloc(32, 3), private: Buffer.alloc(32, 4) } } }),
      a.state.keys.set({ session: { '15550002222.0': Buffer.from('sess') }, 'app-state-sync-key': { AAAA: { keyData: Buffer.from('k'), timestamp: 5 } } }),
    ]);
    await a.state.keys.set({ 'pre-key': { 1: null } });
    assert.equal(await store.auth.pairedId('acme'), '15550001111:2@s.whatsapp.net');
    const b = await store.auth.forTenant('acme').open(deps);
    assert.deepEqual(Buffer.from(b.state.creds.noiseKey.private), Buffer.from(a.state.creds.noiseKey.private));
    const pre = await b.state.keys.get('pre-key', ['1', '2']);
    assert.equal(pre['1'], undefined);
    assert.deepEqual(Buffer.from(pre['2'].private), Buffer.alloc(32, 4));
    assert.equal(Buffer.from((await b.state.keys.get('session', ['15550002222.0']))['15550002222.0']).toString(), 'sess');
    const app = await b.state.keys.get('app-state-sync-key', ['AAAA']);
    assert.equal(Buffer.from(app.AAAA.keyData).toString(), 'k');
    assert.equal(Number(app.AAAA.timestamp), 5);
    // The cacheable wrapper the Baileys transport uses works on top.
    const cached = baileys.makeCacheableSignalKeyStore(b.state.keys);
    await cached.set({ session: { x: Buffer.from('y') } });
    assert.equal(Buffer.from((await b.state.keys.get('session', ['x'])).x).toString(), 'y');
    await store.auth.clear('acme');
    assert.equal(await store.auth.pairedId('acme'), null);
    assert.equal((await db.query("SELECT count(*)::int AS n FROM whatsapp_sidecar_state WHERE tenant = 'acme' AND kind LIKE 'auth-%'")).rows[0].n, 0);

    // Idempotency: record, message-id index, atomic transition, erase by contact, expiry.
    const idem = store.idempotency;
    await idem.record('acme', { key: 'k1', outcome: 'pending', fp: 'f', toHash: 'aa11' });
    await idem.record('acme', { key: 'k1', outcome: 'unknown', fp: 'f', toHash: 'aa11', messageId: 'M1' }, { durable: false });
    assert.equal(await idem.keyForMessageId('acme', 'M1'), 'k1');
    const [won, lost] = await Promise.all([
      idem.transition('acme', 'k1', ['unknown'], { outcome: 'sent' }),
      idem.transition('acme', 'k1', ['unknown'], { outcome: 'failed' }),
    ]);
    assert.equal(won.outcome, 'sent');
    assert.equal(lost, null, 'only one transition from unknown may win');
    assert.equal((await idem.get('acme', 'k1')).outcome, 'sent');
    assert.equal(await idem.get('other', 'k1'), null, 'records are per tenant');
    await idem.record('acme', { key: 'k2', outcome: 'sent', fp: 'f', toHash: 'bb22', messageId: 'M2' });
    assert.equal(await idem.erase('acme', ['aa11']), 1);
    assert.equal(await idem.get('acme', 'k1'), null);
    assert.equal(await idem.keyForMessageId('acme', 'M1'), null);
    assert.equal((await idem.get('acme', 'k2')).outcome, 'sent');
    assert.equal(await idem.expire(60_000), 0);
    await db.query("UPDATE whatsapp_sidecar_state SET updated_at = now() - interval '2 days' WHERE tenant = 'acme' AND kind LIKE 'idempotency%'");
    assert.equal(await idem.expire(24 * 3600 * 1000), 1);
    assert.equal(await idem.keyForMessageId('acme', 'M2'), null);

    // Spool: pending by shard, oldest first; reject keeps the item with Django's answer.
    const sp = store.spoolStorage;
    const n1 = '000000000000001-1-000001-inbound-acme.json';
    const n2 = '000000000000002-1-000002-status-acme.json';
    await sp.put(n2, { tenant: 'acme', kind: 'status', body: '{"messageId":"M9"}', createdAt: 'x' });
    await sp.put(n1, { tenant: 'acme', kind: 'inbound', body: '{"id":"A\\u0000B"}', createdAt: 'x' });
    assert.deepEqual(await sp.pendingNames(), [n1, n2]);
    assert.equal(JSON.parse((await sp.read(n1)).body).id, 'A\u0000B', 'a NUL in a message survives (text, not jsonb)');
    await sp.reject(n2, await sp.read(n2), { httpStatus: 413, error: 'too_large', rejectedAt: 'y' });
    assert.deepEqual(await sp.pendingNames(), [n1]);
    const rejected = await sp.listRejected(10, () => true);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].item.rejection.httpStatus, 413);
    const seen = [];
    await sp.eachOfTenant('acme', async (x) => { seen.push([x.name, x.rejected]); });
    assert.deepEqual(seen, [[n1, false], [n2, true]]);
    await sp.deleteRejected(n2);
    await sp.remove(n1);
    assert.equal(await sp.read(n1), null);
    assert.deepEqual(await sp.listRejected(10, () => true), []);

    // Connection marks.
    assert.equal(await store.marks.lastConnected('acme'), null);
    await store.marks.record('acme', '2026-11-29T12:00:00.000Z');
    assert.equal(await store.marks.lastConnected('acme'), Date.parse('2026-11-29T12:00:00.000Z') / 1000);
  } finally {
    await store.close();
  }
});

test('a newer owner fences the old sidecar: its next write is refused, nothing is sent, its sockets close, commands answer 409 fenced', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  // A long periodic check: here the refused write is what finds out.
  const a = await startSidecar({ env: pgEnv(db, shard, 1, { SIDECAR_FENCE_CHECK_MS: '600000' }) });
  let b;
  try {
    for (const t of ['t1', 't2']) assert.equal((await a.api('POST', `/sessions/${t}/start`, {})).body.canSend, true);
    assert.equal((await a.api('POST', '/sessions/t1/messages', msg('k0'))).status, 200);

    await db.setToken(shard, 2); // Django's new owner bumps the token...
    b = await startSidecar({ env: pgEnv(db, shard, 2) }); // ...and starts its own sidecar

    const r = await a.api('POST', '/sessions/t1/messages', msg('k1'));
    assert.equal(r.status, 409);
    assert.equal(r.body.error, 'fenced');
    assert.equal(a.app.world.sent('t1').length, 1, 'the refused send never reached WhatsApp');
    assert.equal((await db.query("SELECT count(*)::int AS n FROM whatsapp_sidecar_state WHERE kind = 'idempotency' AND key = 'k1'")).rows[0].n, 0);
    assert.ok(a.logs.some((l) => l.msg === 'fenced'), 'the sidecar logs "fenced"');
    await waitFor(() => ['t1', 't2'].every((t) => a.app.world.state(t).openSockets === 0), { what: 'the fenced sidecar closing every socket' });
    for (const [method, path] of [['GET', '/sessions/t2/status'], ['POST', '/sessions/t2/start'], ['POST', '/sessions/t2/stop'], ['GET', '/inbound/rejected']]) {
      const res = await a.api(method, path, method === 'POST' ? {} : undefined);
      assert.equal(res.status, 409, `${method} ${path}`);
      assert.equal(res.body.error, 'fenced');
    }
    assert.equal(a.app.world.state('t2').socketsCreated, 1, 'no new socket after the fence');
    await assert.rejects(a.app.state.idempotency.record('t1', { key: 'k2', outcome: 'pending' }), (err) => err.code === 'fenced');
    assert.equal((await a.api('GET', '/healthz', undefined, { token: null })).body.fenced, true);

    // The new owner works on the same shard.
    assert.equal((await b.api('POST', '/sessions/t1/start', {})).body.canSend, true);
    assert.equal((await b.api('POST', '/sessions/t1/messages', msg('k1'))).status, 200);
  } finally {
    await a.close();
    await b?.close();
  }
});

test("the new owner's token bump waits for a write in progress; every write after it is refused", { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const { store } = storeFor(shard, 1);
  try {
    let release;
    const held = new Promise((r) => { release = r; });
    let inside;
    const entered = new Promise((r) => { inside = r; });
    const write = store.fence.tx(async (c) => {
      inside();
      await held; // the write is in progress: the shard row is held FOR SHARE
      await c.query("INSERT INTO whatsapp_sidecar_state (shard, tenant, kind, key, value) VALUES ($1, 'fx', 'mark', 'connected', '{}')", [shard]);
    });
    await entered;
    let bumped = false;
    const bump = db.setToken(shard, 2).then(() => { bumped = true; });
    await sleep(300);
    assert.equal(bumped, false, 'the UPDATE of the token waits for the write in progress');
    release();
    await write;
    await bump;
    assert.equal((await db.query("SELECT count(*)::int AS n FROM whatsapp_sidecar_state WHERE tenant = 'fx'")).rows[0].n, 1, 'the write that began first landed');
    await assert.rejects(store.marks.record('fx', new Date().toISOString()), (err) => err.code === 'fenced');
    await assert.rejects(store.idempotency.transition('fx', 'k', ['unknown'], {}), (err) => err.code === 'fenced');
    assert.equal(store.fence.fenced, true);
  } finally {
    await store.close();
  }
});

test('a single-statement write that meets an uncommitted token bump waits for it, then is refused', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const { store } = storeFor(shard, 1);
  const pg = await import('pg');
  const owner = new pg.default.Client({ connectionString: db.url });
  await owner.connect();
  try {
    await owner.query('BEGIN');
    await owner.query('UPDATE whatsapp_shard SET fencing_token = 2 WHERE name = $1', [shard]);
    let settled = false;
    const write = store.idempotency.record('fy', { key: 'k', outcome: 'pending' }).finally(() => { settled = true; });
    write.catch(() => {});
    await sleep(300);
    assert.equal(settled, false, 'the write waits on the row the new owner is updating');
    await owner.query('COMMIT');
    await assert.rejects(write, (err) => err.code === 'fenced');
    assert.equal((await db.query("SELECT count(*)::int AS n FROM whatsapp_sidecar_state WHERE tenant = 'fy'")).rows[0].n, 0, 'nothing written');
  } finally {
    await owner.end();
    await store.close();
  }
});

test('a stale sidecar that was paused closes its sockets within the periodic check, without writing anything', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 4);
  const a = await startSidecar({ env: pgEnv(db, shard, 4, { SIDECAR_FENCE_CHECK_MS: '200' }) });
  try {
    assert.equal((await a.api('POST', '/sessions/t1/start', {})).body.canSend, true);
    await sleep(500);
    assert.equal(a.app.world.state('t1').openSockets, 1, 'an unchanged token keeps the session');
    await db.setToken(shard, 5);
    await waitFor(() => a.app.world.state('t1').openSockets === 0, { timeoutMs: 3000, what: 'the socket closed by the periodic check' });
    const closed = a.logs.find((l) => l.msg === 'fenced');
    assert.equal(closed.current, '5');
  } finally {
    await a.close();
  }
});

test('a start is refused when the token in the shard row is no longer ours, before any socket exists', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 7);
  const a = await startSidecar({ env: pgEnv(db, shard, 7, { SIDECAR_FENCE_CHECK_MS: '600000' }) });
  try {
    await db.setToken(shard, 8);
    const r = await a.api('POST', '/sessions/t1/start', {});
    assert.equal(r.status, 409);
    assert.equal(r.body.error, 'fenced');
    assert.equal(a.app.world.state('t1').socketsCreated, 0);
  } finally {
    await a.close();
  }
});

test('takeover: owner B (token 2) carries on with what owner A (token 1) wrote; a retried send is not sent twice', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const a = await startSidecar({ env: pgEnv(db, shard, 1) }); // no webhook: inbound stays spooled
  let b;
  let hook;
  try {
    assert.equal((await a.api('POST', '/sessions/acme/start', {})).body.canSend, true);
    const first = await a.api('POST', '/sessions/acme/messages', msg('order-1', 'your order shipped'));
    assert.equal(first.status, 200);
    const keys = await a.app.state.auth.forTenant('acme').open(deps);
    await keys.state.keys.set({ session: { '15551230001.0': Buffer.from('signal-session') } });
    await a.api('POST', '/sandbox/acme/inbound', { from: '+15551230001', text: 'where is it?', id: 'IN-1' });
    await waitFor(async () => (await a.app.spool.pendingCount()) === 1, { what: 'the inbound spooled' });
    await a.close(); // owner A stops (or dies)

    await db.setToken(shard, 2);
    hook = await startFakeWebhook();
    // Manual pairing: an unpaired session would show a QR instead of connecting.
    b = await startSidecar({ env: pgEnv(db, shard, 2, { SIDECAR_SANDBOX_PAIRING: 'manual', SIDECAR_WEBHOOK_BASE: hook.base, SIDECAR_WEBHOOK_SECRET: SECRET }) });
    assert.equal((await b.api('GET', '/sessions/acme/status')).body.authPaired, true);
    const started = await b.api('POST', '/sessions/acme/start', {});
    assert.equal(started.body.canSend, true);
    assert.equal(started.body.qr, null);

    const retry = await b.api('POST', '/sessions/acme/messages', msg('order-1', 'your order shipped'));
    assert.equal(retry.status, 200);
    assert.equal(retry.body.duplicate, true);
    assert.equal(retry.body.messageId, first.body.messageId);
    assert.deepEqual(b.app.world.sent('acme'), [], 'owner B sent nothing for a key owner A had sent');
    assert.equal((await b.api('POST', '/sessions/acme/messages', msg('order-1', 'something else'))).body.error, 'idempotency_key_conflict');
    assert.equal((await b.api('GET', '/sessions/acme/messages/order-1')).body.outcome, 'sent');

    const got = await (await b.app.state.auth.forTenant('acme').open(deps)).state.keys.get('session', ['15551230001.0']);
    assert.equal(Buffer.from(got['15551230001.0']).toString(), 'signal-session');
    assert.notEqual(await b.app.state.marks.lastConnected('acme'), null);

    // The inbound A spooled but never delivered is delivered by B, then removed.
    await waitFor(() => hook.received.some((r) => r.body.id === 'IN-1'), { what: 'the spooled inbound delivered by owner B' });
    await waitFor(async () => (await b.app.spool.pendingCount()) === 0, { what: 'the delivered item removed' });
  } finally {
    await b?.close();
    await hook?.close();
  }
});

test('the real Baileys transport builds its socket config from the postgres auth state', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const { store } = storeFor(shard, 1);
  try {
    const first = await store.auth.forTenant('bx').open(deps);
    first.state.creds.me = { id: '15550003333:1@s.whatsapp.net', name: 'A' };
    await first.saveCreds();
    const logger = createLogger({ level: 'silent', destination: { write() {} } });
    const t = baileysTransportFactory({ tenant: 'bx', authDir: '/nonexistent', auth: store.auth.forTenant('bx'), logger, config: { waVersion: [2, 3000, 1], authLockTimeoutMs: 1000 } });
    const cfg = await t.socketConfig();
    assert.equal(cfg.auth.creds.me.id, '15550003333:1@s.whatsapp.net');
    assert.deepEqual(Buffer.from(cfg.auth.creds.noiseKey.private), Buffer.from(first.state.creds.noiseKey.private));
    await cfg.auth.keys.set({ 'pre-key': { 9: { public: Buffer.alloc(32, 9), private: Buffer.alloc(32, 8) } } });
    const again = await store.auth.forTenant('bx').open(deps);
    assert.deepEqual(Buffer.from((await again.state.keys.get('pre-key', ['9']))['9'].private), Buffer.alloc(32, 8));
    await t.close();
  } finally {
    await store.close();
  }
});

test('erasing a contact on the postgres store removes its idempotency rows and spooled inbound, and nothing else', { skip }, async () => {
  const shard = newShard();
  await db.setToken(shard, 1);
  const sc = await startSidecar({ env: pgEnv(db, shard, 1) }); // no webhook: inbound stays spooled
  try {
    await sc.api('POST', '/sessions/erasing/start', {});
    assert.equal((await sc.api('POST', '/sessions/erasing/messages', { to: '+15551110001', text: 'a', idempotencyKey: 'to-x' })).status, 200);
    assert.equal((await sc.api('POST', '/sessions/erasing/messages', { to: '+15551110002', text: 'b', idempotencyKey: 'to-y' })).status, 200);
    await sc.api('POST', '/sandbox/erasing/inbound', { from: '+15551110001', text: 'from x', id: 'IN-X' });
    await sc.api('POST', '/sandbox/erasing/inbound', { from: '+15551110002', text: 'from y', id: 'IN-Y' });
    await waitFor(async () => (await sc.app.spool.pendingCount()) === 2, { what: 'both inbound spooled' });
    const r = await sc.api('POST', '/privacy/erase', { tenant: 'erasing', phone: '+15551110001' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { idempotencyRecords: 1, spoolItems: 1, mediaFiles: 0 });
    assert.equal((await sc.api('GET', '/sessions/erasing/messages/to-x')).body.outcome, 'absent');
    assert.equal((await sc.api('GET', '/sessions/erasing/messages/to-y')).body.outcome, 'sent');
    const left = (await db.query("SELECT value FROM whatsapp_sidecar_state WHERE tenant = 'erasing' AND kind = 'spool'")).rows.map((x) => JSON.parse(JSON.parse(x.value).body).id);
    assert.deepEqual(left, ['IN-Y']);
    const all = (await db.query("SELECT string_agg(value, ' ') AS v FROM whatsapp_sidecar_state WHERE tenant = 'erasing'")).rows[0].v;
    assert.ok(!all.includes('15551110001'), 'the erased number is nowhere in the sidecar state');
  } finally {
    await sc.close();
  }
});

test('postgres store needs a database URL, a shard and a fencing token', () => {
  const base = { SIDECAR_TOKEN: 't', SIDECAR_STATE_STORE: 'postgres', SIDECAR_STATE_DATABASE_URL: 'postgres://x/y', SIDECAR_SHARD: 's1', SIDECAR_FENCING_TOKEN: '3' };
  assert.equal(loadConfig(base).fencingToken, '3');
  assert.equal(loadConfig({ ...base, SIDECAR_FENCING_TOKEN: '003' }).fencingToken, '3', 'compared as PostgreSQL compares bigints');
  for (const drop of ['SIDECAR_STATE_DATABASE_URL', 'SIDECAR_SHARD', 'SIDECAR_FENCING_TOKEN']) {
    assert.throws(() => loadConfig({ ...base, [drop]: '' }), new RegExp(drop));
  }
  assert.throws(() => loadConfig({ ...base, SIDECAR_FENCING_TOKEN: 'abc' }), /SIDECAR_FENCING_TOKEN/);
  assert.throws(() => loadConfig({ ...base, SIDECAR_STATE_STORE: 'redis' }), /SIDECAR_STATE_STORE/);
  assert.equal(loadConfig({ SIDECAR_TOKEN: 't' }).stateStore, 'file');
});
