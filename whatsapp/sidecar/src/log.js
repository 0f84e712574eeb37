import pino from 'pino';

// Phone numbers and JIDs are personal data: logs keep only the last 4 digits.
export function maskPhone(value) {
  if (value === undefined || value === null) return value;
  const digits = String(value).split('@')[0].split(':')[0].replace(/\D/g, '');
  if (!digits) return '***';
  return `***${digits.slice(-4)}`;
}

const JID = /\+?(\d{5,})(?::\d+)?@(s\.whatsapp\.net|c\.us|lid|g\.us|broadcast|newsletter)\b/g;
const E164 = /\+\d{7,15}\b/g;
const BARE_NUMBER = /^\+?\d{7,15}$/;
// Keys under which Baileys or we may put a bare number (no "@server", no "+").
const NUMBER_KEYS = /phone|number|jid|^from$|^to$|participant|user|recipient|sender|^me$/i;

/** A string with every JID and +E.164 number masked (and, under a number key, a bare number). */
export function maskText(text, key = '') {
  if (BARE_NUMBER.test(text) && NUMBER_KEYS.test(key)) return maskPhone(text);
  return text.replace(JID, (_, digits, server) => `***${digits.slice(-4)}@${server}`).replace(E164, (m) => maskPhone(m));
}

/** A copy of a log argument with personal numbers masked, however deep (bounded). */
export function maskDeep(value, key = '', depth = 0, seen = new WeakSet()) {
  if (typeof value === 'string') return maskText(value, key);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (ArrayBuffer.isView(value) || seen.has(value)) return value;
  seen.add(value);
  if (value instanceof Error) {
    const copy = Object.assign(new Error(maskText(value.message || '')), maskDeep({ ...value }, key, depth + 1, seen));
    copy.name = value.name;
    copy.stack = maskText(value.stack || '');
    return copy;
  }
  if (Array.isArray(value)) return value.map((v) => maskDeep(v, key, depth + 1, seen));
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = maskDeep(v, k, depth + 1, seen);
  return out;
}

export function createLogger({ level = 'info', destination } = {}) {
  return pino(
    {
      level,
      base: { svc: 'sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Every line, ours and Baileys' (its logger is a child of this one), is masked before
      // it is written: Baileys logs JIDs in objects and in messages.
      hooks: {
        logMethod(args, method) {
          return method.apply(this, args.map((a) => maskDeep(a)));
        },
      },
      // Defence in depth: nothing should ever log these, but if it does they are censored.
      redact: { paths: ['token', 'secret', 'authorization', 'headers.authorization', '*.token', '*.secret'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
