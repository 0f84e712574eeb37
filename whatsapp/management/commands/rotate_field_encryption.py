"""Re-encrypt every encrypted secret in the database with the first key of
FIELD_ENCRYPTION_KEYS (project.encryption). Rotation: put the new key first, keep the old
one second, run this, then drop the old key."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from project.encryption import EncryptedTextField, UndecryptableSecret


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        rotated = unreadable = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
            for name in fields:
                for pk, value in model.objects.exclude(**{name: ""}).values_list("pk", name).iterator():
                    if isinstance(value, UndecryptableSecret):
                        unreadable += 1
                        continue
                    # Saving the clear text encrypts it afresh with the first key.
                    model.objects.filter(pk=pk).update(**{name: value})
                    rotated += 1
        self.stdout.write(f"{rotated} secret(s) re-encrypted with the first key")
        if unreadable:
            raise CommandError(f"{unreadable} secret(s) could not be decrypted with any key: "
                               "keep the old key in FIELD_ENCRYPTION_KEYS until they are")
