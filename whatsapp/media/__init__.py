"""Media of inbound messages (voice notes, photos, documents): the MediaFile rows the
webhooks record, the Celery task that fetches, stores and transcribes them, and what staff
see of them in the admin. See docs/MEDIA.md."""
