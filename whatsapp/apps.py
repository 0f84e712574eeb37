from django.apps import AppConfig


class WhatsappConfig(AppConfig):
    name = "whatsapp"
    verbose_name = "WhatsApp"
    default_auto_field = "django.db.models.BigAutoField"
