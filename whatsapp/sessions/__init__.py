"""Sessions room: WhatsApp Web sessions in shards: lifecycle tasks, reconnect policy, sidecar supervisor, shard lease, the one sidecar client, moves, Sessions and Shards admin."""
