// Entry point: `node src/server.js`. Prints {"msg":"sidecar listening","port":N} once ready.
import { loadConfig, ConfigError } from './config.js';
import { createLogger } from './log.js';
import { createApp } from './app.js';

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${JSON.stringify({ level: 'fatal', msg: 'config_error', detail: err.message })}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  const app = await createApp({ config, logger });

  let stopping = false;
  const shutdown = async (signal) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'sidecar_shutting_down');
    const hard = setTimeout(() => process.exit(1), config.sendTimeoutMs + config.ackTimeoutMs + 15000);
    hard.unref();
    await app.close().catch((err) => logger.error({ err: err.message }, 'shutdown_failed'));
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const port = await app.listen();
  logger.info({ port, host: config.host, transport: config.transport, dataDir: config.dataDir, webhook: Boolean(config.webhookBase), stateStore: config.stateStore, shard: config.shard }, 'sidecar listening');
}

main().catch((err) => {
  process.stderr.write(`${JSON.stringify({ level: 'fatal', msg: 'startup_failed', detail: err.message })}\n`);
  process.exit(1);
});
