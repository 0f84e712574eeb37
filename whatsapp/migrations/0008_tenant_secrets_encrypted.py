"""Tenant secrets are encrypted at rest (project.encryption): the column becomes text
(a Fernet token is longer than the key) and every stored clear-text key is encrypted
with the first FIELD_ENCRYPTION_KEYS key. Reversible: the reverse decrypts them."""

from django.db import migrations, models

import project.encryption

SECRET_COLUMNS = ["llm_api_key"]


def _rewrite(apps, schema_editor, convert):
    from cryptography.fernet import InvalidToken

    Tenant = apps.get_model("whatsapp", "Tenant")
    quote = schema_editor.quote_name
    table = quote(Tenant._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        for column in map(quote, SECRET_COLUMNS):
            cursor.execute(f"SELECT id, {column} FROM {table} WHERE {column} <> ''")  # noqa: S608 - names only
            for pk, value in cursor.fetchall():
                try:
                    new = convert(value)
                except InvalidToken:
                    continue  # already in the wanted form
                if new is not None:
                    cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [new, pk])  # noqa: S608


def encrypt_clear_text(apps, schema_editor):
    from project.encryption import encrypt, is_encrypted

    _rewrite(apps, schema_editor, lambda value: None if is_encrypted(value) else encrypt(value))


def decrypt_to_clear_text(apps, schema_editor):
    from project.encryption import decrypt

    _rewrite(apps, schema_editor, decrypt)


class Migration(migrations.Migration):
    dependencies = [
        ("whatsapp", "0007_session_stop_reason"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tenant",
            name="llm_base_url",
            field=models.CharField(
                blank=True,
                help_text="e.g. https://llm.example.com/v1. Internal hosts only if listed in LLM_ALLOWED_INTERNAL_HOSTS.",
                max_length=300,
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="llm_api_key",
            field=project.encryption.EncryptedTextField(
                blank=True, help_text="Write-only. Empty: LLM_API_KEY, which is sent only to LLM_BASE_URL."
            ),
        ),
        migrations.RunPython(encrypt_clear_text, decrypt_to_clear_text),
    ]
