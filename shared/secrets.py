"""Secrets read at run time from AWS Secrets Manager, once per Lambda container.

The configuration names the secrets (``POLYGON_API_KEY_SECRET_ID``,
``CURSOR_SECRET_SECRET_ID``: a name such as ``market-data/aws-prod/polygon-api-key``
or an ARN); the values never appear in ``config.json``, the environment or the logs.
Secrets Manager rather than SSM Parameter Store: the functions that reach Redis and
PostgreSQL run in the VPC without a NAT gateway, and Secrets Manager answers on a
dual-stack endpoint (IPv6, through the free egress-only internet gateway) where SSM
in us-east-1 has none. The database password comes from the secret RDS manages
(``shared.credentials``).
"""

from __future__ import annotations

from shared.config import ConfigError, Settings

SECRETS = {
    "polygon_api_key_secret_id": "polygon_api_key",
    "cursor_secret_secret_id": "cursor_secret",
}


def resolve_secrets(settings: Settings, secretsmanager) -> Settings:
    wanted = {getattr(settings, ref): target for ref, target in SECRETS.items() if getattr(settings, ref)}
    if not wanted:
        return settings
    values = {}
    for secret_id in sorted(wanted):
        try:
            values[wanted[secret_id]] = secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ConfigError(f"secret not found in Secrets Manager: {secret_id}") from exc
            raise
    return settings.with_secrets(values)
