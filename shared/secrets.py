"""Secrets read at run time from SSM Parameter Store, once per Lambda container.

The configuration names the parameters (``POLYGON_API_KEY_PARAM``,
``CURSOR_SECRET_PARAM``); the values never appear in
``config.json``, the environment or the logs. All of a service's parameters
come in one ``GetParameters`` call at cold start. The database password comes
from the secret RDS manages (``shared.credentials``).
"""

from __future__ import annotations

from shared.config import ConfigError, Settings

PARAMETERS = {
    "polygon_api_key_param": "polygon_api_key",
    "cursor_secret_param": "cursor_secret",
}


def resolve_parameters(settings: Settings, ssm) -> Settings:
    wanted = {getattr(settings, ref): target for ref, target in PARAMETERS.items() if getattr(settings, ref)}
    if not wanted:
        return settings
    response = ssm.get_parameters(Names=sorted(wanted), WithDecryption=True)
    missing = response.get("InvalidParameters") or []
    if missing:
        raise ConfigError(f"SSM parameters not found: {', '.join(missing)}")
    return settings.with_secrets({wanted[p["Name"]]: p["Value"] for p in response["Parameters"]})
