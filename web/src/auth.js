// Accounts: the Amazon Cognito user pool that config.json names ("auth"), called
// from the page with Cognito's own API (SignUp, ConfirmSignUp, InitiateAuth,
// ForgotPassword, GlobalSignOut ...), the JSON protocol the AWS SDKs speak, which
// needs no signature for these calls.
//
// Why this and not managed login (authorization code + PKCE): it needs no
// redirect and no hosted page, keeps the dashboard one static page, and runs the
// same against moto (which has no /oauth2/* endpoints) and AWS. The password
// goes to Cognito only, over TLS, never to our API (USER_PASSWORD_AUTH).
//
// The tokens live in sessionStorage (this tab only, never localStorage or a URL).
// The access token is refreshed two minutes before it expires, with the refresh
// token, so a page left open stays signed in. Expiry is counted from when the
// page received the token (ExpiresIn), not from its exp claim, so a wrong clock
// on this computer cannot make every token look expired or fresh.

const SESSION_KEY = "alerts.session";
const REFRESH_AHEAD_MS = 120_000;
const RETRY_REFRESH_MS = 30_000;

const MESSAGES = {
  UsernameExistsException: "An account with this email exists already: sign in, or reset its password.",
  CodeMismatchException: "That code is not the one we sent. Check the email and try again.",
  ExpiredCodeException: "That code has expired: ask for a new one.",
  LimitExceededException: "Too many attempts: wait a few minutes, then try again.",
  TooManyRequestsException: "Too many attempts: wait a few minutes, then try again.",
  TooManyFailedAttemptsException: "Too many attempts: wait a few minutes, then try again.",
  UserNotFoundException: "The email or password is not right.",
  NotAuthorizedException: "The email or password is not right.",
  PasswordResetRequiredException: "This account's password must be reset: use \"Forgot password?\".",
};

// Cognito answers several refusals with one code (NotAuthorizedException) and tells them
// apart only in its message: each gets its own truthful words.
const NOT_AUTHORIZED = [
  [/attempts exceeded/i, "Too many failed sign-ins for this account: wait a few minutes before trying again, or reset its password with \"Forgot password?\"."],
  [/disabled/i, "This account is disabled."],
  [/expired|temporary password/i, "This account's temporary password has expired: ask the operator for a new one."],
  [/refresh token/i, "Your session has ended: sign in again."],
];

function messageFor(code, message) {
  if (code === "NotAuthorizedException") {
    for (const [pattern, text] of NOT_AUTHORIZED) if (pattern.test(message || "")) return text;
  }
  return MESSAGES[code];
}

export class AuthError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function claims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

export class Auth {
  constructor(config, { onChange } = {}) {
    this.config = config || {};
    this.onChange = onChange || (() => {});
    this.timer = null;
    this.refreshing = null;
    this.session = this.load();
    if (this.session) this.schedule();
  }

  get configured() {
    return Boolean(this.config.endpoint && this.config.clientId);
  }

  get signedIn() {
    return Boolean(this.session);
  }

  // Who is signed in, from the ID token (for display only: the API verifies the access token).
  get email() {
    return this.session ? claims(this.session.idToken).email || this.session.email : "";
  }

  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      return saved && saved.accessToken && saved.refreshToken ? saved : null;
    } catch {
      return null;
    }
  }

  save() {
    if (this.session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  async cognito(action, body) {
    let response;
    try {
      response = await fetch(this.config.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
        },
        body: JSON.stringify(body),
      });
    } catch {
      throw new AuthError("unreachable", "The sign-in service is not answering; try again shortly.");
    }
    let data = {};
    try {
      data = JSON.parse((await response.text()) || "{}");
    } catch {
      data = {};
    }
    if (!response.ok) {
      const code = String(data.__type || `http_${response.status}`).split("#").pop();
      const said = data.message || data.Message;
      const message = messageFor(code, said) || said || `The sign-in service answered HTTP ${response.status}.`;
      throw new AuthError(code, response.status >= 500 ? "The sign-in service could not do that now; try again shortly." : message);
    }
    return data;
  }

  async signUp(email, password) {
    const answer = await this.cognito("SignUp", {
      ClientId: this.config.clientId,
      Username: email,
      Password: password,
      UserAttributes: [{ Name: "email", Value: email }],
    });
    return { confirmed: Boolean(answer.UserConfirmed), destination: answer.CodeDeliveryDetails?.Destination || email };
  }

  confirmSignUp(email, code) {
    return this.cognito("ConfirmSignUp", { ClientId: this.config.clientId, Username: email, ConfirmationCode: code });
  }

  resendCode(email) {
    return this.cognito("ResendConfirmationCode", { ClientId: this.config.clientId, Username: email });
  }

  // Signs in, or says which challenge Cognito asks for first ({challenge, session}).
  async signIn(email, password) {
    const answer = await this.cognito("InitiateAuth", {
      ClientId: this.config.clientId,
      AuthFlow: "USER_PASSWORD_AUTH",
      AuthParameters: { USERNAME: email, PASSWORD: password },
    });
    if (answer.ChallengeName) return { challenge: answer.ChallengeName, session: answer.Session };
    this.begin(answer.AuthenticationResult, email);
    return {};
  }

  // An account an operator made with a temporary password: the first sign-in sets a new one.
  async setNewPassword(email, session, password) {
    const answer = await this.cognito("RespondToAuthChallenge", {
      ClientId: this.config.clientId,
      ChallengeName: "NEW_PASSWORD_REQUIRED",
      Session: session,
      ChallengeResponses: { USERNAME: email, NEW_PASSWORD: password },
    });
    if (!answer.AuthenticationResult) throw new AuthError(answer.ChallengeName || "challenge", "Cognito asks for more than this page can do.");
    this.begin(answer.AuthenticationResult, email);
  }

  forgotPassword(email) {
    return this.cognito("ForgotPassword", { ClientId: this.config.clientId, Username: email });
  }

  resetPassword(email, code, password) {
    return this.cognito("ConfirmForgotPassword", {
      ClientId: this.config.clientId,
      Username: email,
      ConfirmationCode: code,
      Password: password,
    });
  }

  begin(result, email, reason = "signed-in") {
    this.session = {
      accessToken: result.AccessToken,
      idToken: result.IdToken,
      refreshToken: result.RefreshToken || this.session?.refreshToken,
      expiresAt: Date.now() + Number(result.ExpiresIn || 3600) * 1000,
      email,
    };
    this.save();
    this.schedule();
    this.onChange(reason);
  }

  schedule(delay) {
    clearTimeout(this.timer);
    if (!this.session) return;
    const wait = delay ?? Math.max(0, this.session.expiresAt - Date.now() - REFRESH_AHEAD_MS);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  // A fresh access token from the refresh token; one refresh at a time.
  refresh() {
    if (!this.session) return Promise.reject(new AuthError("signed_out", "Sign in first."));
    if (!this.refreshing) {
      this.refreshing = this.cognito("InitiateAuth", {
        ClientId: this.config.clientId,
        AuthFlow: "REFRESH_TOKEN_AUTH",
        AuthParameters: { REFRESH_TOKEN: this.session.refreshToken },
      })
        .then((answer) => this.begin(answer.AuthenticationResult, this.session.email, "refreshed"))
        .catch((error) => {
          if (error.code === "NotAuthorizedException") {
            this.end("Your session has ended (signed out elsewhere, or too long ago): sign in again.");
          } else {
            this.schedule(RETRY_REFRESH_MS); // the service is down: keep the session, try again soon
          }
          throw error;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  // The access token to send, refreshed first if it is about to expire.
  async accessToken() {
    if (!this.session) throw new AuthError("signed_out", "Sign in first.");
    if (this.session.expiresAt - Date.now() < REFRESH_AHEAD_MS) await this.refresh();
    return this.session.accessToken;
  }

  // Signs this account out everywhere (every refresh token ends); this tab forgets it at once.
  async signOut() {
    const token = this.session?.accessToken;
    this.end("");
    if (token) await this.cognito("GlobalSignOut", { AccessToken: token }).catch(() => {});
  }

  end(message) {
    clearTimeout(this.timer);
    this.session = null;
    this.save();
    this.onChange("signed-out", message);
  }
}
