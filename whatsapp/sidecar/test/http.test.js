import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startSidecar, tmpDataDir, TOKEN } from './helpers.js';
import { loadConfig, ConfigError } from '../src/config.js';

const SERVER = fileURLToPath(new URL('../src/server.js', import.meta.url));

test('missing or wrong bearer token is 401; /healthz is open', async () => {
  const sc = await startSidecar();
  try {
    const h = await sc.api('GET', '/healthz', undefined, { token: null });
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { ok: true, transport: 'sandbox', sessions: 0 });
    for (const [method, p] of [['GET', '/sessions/acme/status'], ['POST', '/sessions/acme/start'], ['POST', '/sessions/acme/messages'], ['GET', '/sandbox/acme/sent']]) {
      for (const token of [null, 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
        const r = await sc.api(method, p, method === 'GET' ? undefined : {}, { token });
        assert.equal(r.status, 401, `${method} ${p} token=${token}`);
        assert.equal(r.body.error, 'unauthorized');
      }
    }
    const ok = await sc.api('GET', '/sessions/acme/status');
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body).sort(), ['activeSends', 'authPaired', 'canSend', 'connected', 'connectedSince', 'lastDisconnect', 'qr', 'starting', 'stopping', 'tenant']);
  } finally {
    await sc.close();
  }
});

test('bad input is a 400 with a JSON error; unknown routes are 404', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    const post = (body, raw) => sc.api('POST', '/sessions/acme/messages', body, { raw });
    const cases = [
      [post(undefined, '{not json'), 'invalid_json'],
      [post(undefined, '[1,2]'), 'invalid_json'],
      [post({ text: 'x', idempotencyKey: 'k' }), 'invalid_request'],
      [post({ to: '15551234567', idempotencyKey: 'k' }), 'invalid_request'],
      [post({ to: '15551234567', text: 'x' }), 'invalid_request'],
      [post({ to: 'abc', text: 'x', idempotencyKey: 'k' }), 'invalid_request'],
      [post({ to: '15551234567', text: 'x'.repeat(4097), idempotencyKey: 'k' }), 'invalid_request'],
      [post({ to: '15551234567', text: 'x', idempotencyKey: 'k'.repeat(201) }), 'invalid_request'],
      [post({ to: '15551234567', text: 'x', idempotencyKey: 42 }), 'invalid_request'],
      [sc.api('GET', '/sessions/Bad_Tenant/status'), 'invalid_tenant'],
      [sc.api('POST', '/sessions/-x/start'), 'invalid_tenant'],
      [sc.api('POST', `/sessions/${'a'.repeat(64)}/start`), 'invalid_tenant'],
      [sc.api('POST', '/sandbox/acme/behavior', { failSends: -1 }), 'invalid_request'],
      [sc.api('POST', '/sandbox/acme/inbound', { from: 'nobody' }), 'invalid_request'],
      [sc.api('POST', '/sandbox/acme/disconnect', { code: 'x' }), 'invalid_request'],
    ];
    for (const [p, error] of cases) {
      const r = await p;
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error, error);
      assert.equal(typeof r.body.detail, 'string');
    }
    assert.equal((await sc.api('POST', '/sessions/acme/messages', { to: '15551234567', text: 'x'.repeat(4096), idempotencyKey: 'k'.repeat(200) })).status, 200);
    assert.equal((await sc.api('GET', '/nope')).status, 404);
    assert.equal((await sc.api('GET', '/sessions/acme/unknown')).status, 404);
    assert.equal((await sc.api('DELETE', '/sessions/acme/status')).status, 404);
  } finally {
    await sc.close();
  }
});

test('sandbox control endpoints do not exist on the real transport', async () => {
  const sc = await startSidecar({ env: { SIDECAR_TRANSPORT: 'baileys' } });
  try {
    assert.equal((await sc.api('GET', '/sandbox/acme/sent')).status, 404);
    assert.equal((await sc.api('GET', '/healthz', undefined, { token: null })).body.transport, 'baileys');
  } finally {
    await sc.close();
  }
});

test('configuration is strict: token required, loopback only unless allowed, bad numbers rejected', () => {
  assert.throws(() => loadConfig({}), ConfigError);
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_HOST: '0.0.0.0' }), /non-loopback/);
  assert.equal(loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_HOST: '0.0.0.0', SIDECAR_ALLOW_PUBLIC: '1' }).host, '0.0.0.0');
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_SEND_TIMEOUT_MS: 'soon' }), ConfigError);
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_TRANSPORT: 'other' }), ConfigError);
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_WEBHOOK_BASE: 'http://x' }), /SECRET/);
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_WA_VERSION: '2,3000' }), ConfigError);
  const c = loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_WA_VERSION: '2,3000,1023223821' });
  assert.deepEqual(c.waVersion, [2, 3000, 1023223821]);
  assert.equal(c.port, 3001);
  assert.equal(c.transport, 'baileys');
  assert.equal(c.sendTimeoutMs, 15000);
});

function run(env, { untilLine } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (untilLine && out.includes(untilLine)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

test('as a process: prints the listening line with the port, and refuses to start without a token', async () => {
  const dataDir = await tmpDataDir();
  const ok = await run({ SIDECAR_TOKEN: 'secret-tok', SIDECAR_TRANSPORT: 'sandbox', SIDECAR_PORT: '0', SIDECAR_DATA_DIR: dataDir }, { untilLine: 'sidecar listening' });
  const line = JSON.parse(ok.out.split('\n').find((l) => l.includes('sidecar listening')));
  assert.equal(line.msg, 'sidecar listening');
  assert.ok(Number.isInteger(line.port) && line.port > 0);
  assert.equal(ok.code, 0, 'SIGTERM shuts down cleanly');
  assert.ok(!ok.out.includes('secret-tok'));

  const noToken = await run({ SIDECAR_TRANSPORT: 'sandbox', SIDECAR_PORT: '0', SIDECAR_DATA_DIR: dataDir });
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /SIDECAR_TOKEN is required/);
  const pub = await run({ SIDECAR_TOKEN: 't', SIDECAR_HOST: '0.0.0.0', SIDECAR_TRANSPORT: 'sandbox', SIDECAR_DATA_DIR: dataDir });
  assert.equal(pub.code, 2);
});
