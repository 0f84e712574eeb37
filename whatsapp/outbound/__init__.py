"""Outbound room: the send task, delivery policy, breakers, pacing, providers, answer parts, dead-letter reasons."""
