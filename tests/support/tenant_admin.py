"""The Tenant admin form's fields, for posting a change to a tenant."""

from __future__ import annotations

from django.forms.models import model_to_dict


def tenant_form(tenant, **changes) -> dict:
    data = {k: ("" if v is None else v) for k, v in model_to_dict(tenant).items() if k not in {"id", "llm_api_key"}}
    data["twilio_template_variables"] = "{}"
    data = {k: v for k, v in data.items() if v is not False}
    return {**data, **changes}
