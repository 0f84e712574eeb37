"""kombu's Redis channel, with one redis client per channel for its one-shot commands.

kombu's Redis transport builds a new `redis.Redis` object for every publish
(`Channel._put` -> `conn_or_acquire` -> `_create_client`); the connection comes from the
channel's pool either way, but redis-py fills a table of about 170 response callbacks in
every constructor. That was 28% of Celery's `send_task` in the webhook's profile, about
0.4 ms of CPU a publish (issue 16, docs/PERFORMANCE.md). A redis client is a thread-safe
wrapper around its pool, so one per channel and pool serves every publish alike; the
consumer's blocking client (`asynchronous=True`) is kombu's own, unchanged."""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _one_shot_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._one_shot_client
        # A channel that dropped its pool (a lost connection) gets a client of the new one.
        if client is None or client.connection_pool is not self.pool:
            client = self._one_shot_client = super()._create_client()
        return client


def install() -> None:
    """Every Redis connection kombu opens in this process uses the channel above."""
    kombu_redis.Transport.Channel = Channel
