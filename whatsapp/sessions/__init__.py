"""Sessions room: WhatsApp Web session lifecycle tasks, reconnect policy, sidecar supervisor, lease, sidecar client, Sessions admin."""
