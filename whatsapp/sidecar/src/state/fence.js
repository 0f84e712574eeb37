// The shard's fencing token (issue 15). Django's lifecycle owner takes the shard's lease
// and bumps whatsapp_shard.fencing_token; the sidecar it starts gets that number as
// SIDECAR_FENCING_TOKEN. Every state write runs in a transaction that first reads the row
// FOR SHARE and compares: a newer owner's bump waits for a write in progress, and every
// later write of this (now stale) sidecar is refused. Once refused, the sidecar is fenced
// for good: it closes its sockets and answers every command 409 {"error":"fenced"}.

export class FencedError extends Error {
  constructor(detail) {
    super(detail);
    this.code = 'fenced';
  }
}

export const isFenced = (err) => err?.code === 'fenced';

const TOKEN_SQL = 'SELECT fencing_token FROM whatsapp_shard WHERE name = $1';

/** Single-host (file store) mode: nothing to check, never fenced. */
export class NoFence {
  constructor() {
    this.fenced = false;
  }

  async check() { return true; }

  onFenced() {}

  start() {}

  stop() {}
}

export class PgFence {
  /**
   * `pool`: a pg Pool; `shard`, `token`: this sidecar's shard and fencing token (strings);
   * `intervalMs`: how often the token is compared even without writes, so that a stale
   * sidecar that was paused and resumed closes its sockets promptly.
   */
  constructor({ pool, shard, token, logger, intervalMs = 2000 }) {
    this.pool = pool;
    this.shard = shard;
    this.token = String(token);
    this.logger = logger;
    this.intervalMs = intervalMs;
    this.fenced = false;
    this.listeners = [];
    this.timer = null;
  }

  onFenced(fn) {
    this.listeners.push(fn);
  }

  // The current holder's token in the row (a string: pg returns bigint as text), or null.
  _matches(rows) {
    return rows.length === 1 && String(rows[0].fencing_token) === this.token;
  }

  _trip(current) {
    if (this.fenced) return;
    this.fenced = true;
    this.logger.error({ shard: this.shard, token: this.token, current }, 'fenced');
    for (const fn of this.listeners) {
      Promise.resolve().then(fn).catch((err) => this.logger.error({ err: err.message }, 'fenced_handler_failed'));
    }
  }

  _refuse(rows) {
    this._trip(rows[0]?.fencing_token ?? null);
    return new FencedError(`shard ${this.shard} is now held with token ${rows[0]?.fencing_token ?? '(no row)'}, not ${this.token}`);
  }

  /** True while the row still carries our token. A database that cannot be reached is not a refusal (logged). */
  async check() {
    if (this.fenced) return false;
    let rows;
    try {
      ({ rows } = await this.pool.query(TOKEN_SQL, [this.shard]));
    } catch (err) {
      this.logger.warn({ shard: this.shard, err: err.message }, 'fence_check_failed');
      return !this.fenced;
    }
    if (this._matches(rows)) return true;
    this._refuse(rows);
    return false;
  }

  /** Run `fn(client)` in one transaction that first holds the shard row FOR SHARE and checks the token. */
  async tx(fn) {
    if (this.fenced) throw new FencedError(`shard ${this.shard}: this sidecar is fenced`);
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`${TOKEN_SQL} FOR SHARE`, [this.shard]);
      if (!this._matches(rows)) {
        await client.query('ROLLBACK');
        throw this._refuse(rows);
      }
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      if (!isFenced(err)) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * One fenced statement in one round trip (autocommit): `sql` gets the shard as $1 and the
   * token as $2 and must gate its write on the `fence` CTE it is given (see postgres.js),
   * returning `fencing_token` from it. Same lock and check as `tx`, without BEGIN/COMMIT.
   */
  async statement(sql, params) {
    if (this.fenced) throw new FencedError(`shard ${this.shard}: this sidecar is fenced`);
    const { rows } = await this.pool.query(sql, [this.shard, this.token, ...params]);
    if (!this._matches(rows)) throw this._refuse(rows[0]?.fencing_token == null ? [] : rows);
    return rows[0];
  }

  start() {
    if (this.timer) return;
    // One check at a time: a slow database must not pile checks up on the pool.
    let running = false;
    this.timer = setInterval(() => {
      if (running) return;
      running = true;
      this.check().finally(() => { running = false; });
    }, this.intervalMs);
    this.timer.unref();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
