from django.db import migrations, models
import django.db.models.deletion


def create_default_shard(apps, schema_editor):
    # Tenants without a shard belong to the default one (SESSION_DEFAULT_SHARD); its row
    # exists so the admin lists it. A lifecycle worker creates the row of any other shard
    # it is started for.
    Shard = apps.get_model("whatsapp", "Shard")
    Shard.objects.get_or_create(name="default")


class Migration(migrations.Migration):

    dependencies = [
        ("whatsapp", "0017_reply_templates"),
    ]

    operations = [
        migrations.CreateModel(
            name="Shard",
            fields=[
                ("name", models.SlugField(primary_key=True, serialize=False)),
                ("owner", models.TextField(blank=True, default="")),
                ("fencing_token", models.BigIntegerField(default=0)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("sidecar_url", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"db_table": "whatsapp_shard", "ordering": ["name"]},
        ),
        migrations.AddField(
            model_name="tenant",
            name="shard",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="tenants",
                to="whatsapp.shard",
                help_text="Empty: the default shard. Changing it moves the session (stopped, then started on the new owner).",
            ),
        ),
        migrations.RunPython(create_default_shard, migrations.RunPython.noop),
    ]
