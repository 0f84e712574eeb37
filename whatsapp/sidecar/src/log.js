import pino from 'pino';

// Phone numbers and JIDs are personal data: logs keep only the last 4 digits.
export function maskPhone(value) {
  if (value === undefined || value === null) return value;
  const digits = String(value).split('@')[0].split(':')[0].replace(/\D/g, '');
  if (!digits) return '***';
  return `***${digits.slice(-4)}`;
}

export function createLogger({ level = 'info', destination } = {}) {
  return pino(
    {
      level,
      base: { svc: 'sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: nothing should ever log these, but if it does they are censored.
      redact: { paths: ['token', 'secret', 'authorization', 'headers.authorization', '*.token', '*.secret'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
