from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models


class Rule(models.Model):
    """A keyword or regular-expression rule of the rules engine: the first enabled rule
    (lowest priority number) that matches the customer's text gives the answer."""

    tenant = models.ForeignKey("whatsapp.Tenant", on_delete=models.CASCADE, related_name="rules")
    pattern = models.CharField(max_length=300, help_text="Keywords separated by commas, or a regex.")
    is_regex = models.BooleanField(default=False)
    answer = models.TextField()
    priority = models.PositiveIntegerField(default=100)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["tenant", "priority", "pk"]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.pattern}"

    def clean(self) -> None:
        if self.is_regex:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValidationError({"pattern": f"Not a valid regular expression: {exc}"}) from exc

    def matches(self, text: str) -> bool:
        if self.is_regex:
            return re.search(self.pattern, text, re.IGNORECASE) is not None
        words = [w.strip().lower() for w in self.pattern.split(",") if w.strip()]
        lowered = text.lower()
        return any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in words)
