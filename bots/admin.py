from django.contrib import admin

from bots.models import Rule


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("tenant", "priority", "pattern", "is_regex", "short_answer", "enabled")
    list_filter = ("tenant", "enabled", "is_regex")
    list_editable = ("priority", "enabled")
    search_fields = ("pattern", "answer")

    @admin.display(description="Answer")
    def short_answer(self, obj):
        return obj.answer[:80]
