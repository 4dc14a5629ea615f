"""The database password from the secret RDS manages in Secrets Manager."""

from __future__ import annotations

import json
from urllib.parse import quote, urlparse, urlunparse


def database_url_with_secret(url: str, secret_arn: str, secretsmanager) -> str:
    secret = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    parts = urlparse(url)
    user = secret.get("username") or parts.username or "postgres"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user, safe='')}:{quote(secret['password'], safe='')}@{host}{port}"
    return urlunparse(parts._replace(netloc=netloc))
