"""Inbound room: webhook views, signatures, storing a message once, receipts, inbound dead letters."""
