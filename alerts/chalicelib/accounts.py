"""Accounts: the Amazon Cognito user pool, as an operator and the local stack use it.

The pool's definition is here once: ``infra/stateful.yaml`` declares the same pool
for each AWS stage (``tests/test_accounts.py`` compares the two), and locally
``make run`` creates it on moto from this. Nothing here runs in a Lambda: the
API only verifies tokens (``auth.py``); creating users and signing in as one are
an operator's commands (``cli.py``) and the dashboard's own calls to Cognito.
"""

from __future__ import annotations

# Length over composition rules (NIST SP 800-63B): at least 12 characters, any kind.
PASSWORD_POLICY = {
    "MinimumLength": 12,
    "RequireUppercase": False,
    "RequireLowercase": False,
    "RequireNumbers": False,
    "RequireSymbols": False,
    "TemporaryPasswordValidityDays": 3,
}
USER_POOL = {
    # The email address is the user name, and it must be verified (a code is emailed at sign-up).
    "UsernameAttributes": ["email"],
    "AutoVerifiedAttributes": ["email"],
    "UsernameConfiguration": {"CaseSensitive": False},
    "Policies": {"PasswordPolicy": PASSWORD_POLICY},
    "AccountRecoverySetting": {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
    "MfaConfiguration": "OFF",
}
# One public client: the dashboard, a page in the browser, which cannot keep a secret.
APP_CLIENT = {
    "ClientName": "dashboard",
    "GenerateSecret": False,
    "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    "PreventUserExistenceErrors": "ENABLED",
    "EnableTokenRevocation": True,
    "AccessTokenValidity": 60,
    "IdTokenValidity": 60,
    "RefreshTokenValidity": 30,
    "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"},
    "ReadAttributes": ["email", "email_verified"],
    "WriteAttributes": ["email"],
}
LOCAL_POOL_NAME = "market-users-dev"


class AccountError(Exception):
    pass


def create_pool(cognito, name: str = LOCAL_POOL_NAME) -> tuple[str, str]:
    """The pool called ``name`` and its app client, created if missing: (pool id, client id)."""
    for pool in cognito.list_user_pools(MaxResults=60)["UserPools"]:
        if pool["Name"] == name:
            clients = cognito.list_user_pool_clients(UserPoolId=pool["Id"], MaxResults=60)["UserPoolClients"]
            for client in clients:
                if client["ClientName"] == APP_CLIENT["ClientName"]:
                    return pool["Id"], client["ClientId"]
            return pool["Id"], _create_client(cognito, pool["Id"])
    pool_id = cognito.create_user_pool(PoolName=name, **USER_POOL)["UserPool"]["Id"]
    return pool_id, _create_client(cognito, pool_id)


def _create_client(cognito, pool_id: str) -> str:
    return cognito.create_user_pool_client(UserPoolId=pool_id, **APP_CLIENT)["UserPoolClient"]["ClientId"]


def create_user(cognito, pool_id: str, email: str, password: str | None = None) -> dict:
    """An account for ``email``, verified. With ``password`` it is set for good and no
    email is sent; without, Cognito emails a temporary password that must be changed
    at the first sign-in. Returns the user's ``sub`` and status."""
    options = {"MessageAction": "SUPPRESS"} if password else {"DesiredDeliveryMediums": ["EMAIL"]}
    try:
        user = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            **options,
        )["User"]
    except cognito.exceptions.UsernameExistsException:
        raise AccountError(f"{email} already has an account") from None
    except (cognito.exceptions.InvalidParameterException, cognito.exceptions.InvalidPasswordException) as exc:
        raise AccountError(exc.response["Error"]["Message"]) from None
    if password:
        try:
            cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
        except cognito.exceptions.InvalidPasswordException as exc:
            cognito.admin_delete_user(UserPoolId=pool_id, Username=email)
            raise AccountError(exc.response["Error"]["Message"]) from None
    attributes = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
    return {"sub": attributes.get("sub"), "status": "CONFIRMED" if password else user.get("UserStatus")}


def sign_in(cognito, client_id: str, email: str, password: str) -> dict:
    """The tokens of a user (``AccessToken``, ``IdToken``, ``RefreshToken``, ``ExpiresIn``),
    as the dashboard gets them: the password goes to Cognito only, never to our API."""
    try:
        answer = cognito.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )
    except (
        cognito.exceptions.NotAuthorizedException,
        cognito.exceptions.UserNotFoundException,
        cognito.exceptions.UserNotConfirmedException,
        cognito.exceptions.PasswordResetRequiredException,
    ) as exc:
        raise AccountError(exc.response["Error"]["Message"]) from None
    if "AuthenticationResult" not in answer:
        challenge = answer.get("ChallengeName")
        raise AccountError(f"Cognito asks for {challenge}: sign in on the dashboard to complete it")
    return answer["AuthenticationResult"]
