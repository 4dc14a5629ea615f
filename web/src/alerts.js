// The alerts panel: the account (alerts/account.js: sign up, confirm, sign in, forgot
// password; auth.js keeps the tokens and refreshes them silently), the user's rules
// (alerts/rules.js), where their alerts go (alerts/channels.js), and what fired and
// whether it was delivered (alerts/events.js). The access token is sent only in the
// Authorization header; a 401 gets one refresh and one retry, then sign-in again.

import { AuthError } from "./auth.js";
import { ServiceDown, ServiceError } from "./api.js";
import { show } from "./dom.js";
import { Account } from "./alerts/account.js";
import { Channels } from "./alerts/channels.js";
import { Events } from "./alerts/events.js";
import { Rules } from "./alerts/rules.js";

export class Alerts {
  constructor({ api, banner, auth }) {
    this.api = api;
    this.banner = banner;
    this.auth = auth;
    this.panel = document.getElementById("alerts-panel");
    this.body = document.getElementById("alerts-body");
    this.who = document.getElementById("alerts-who");
    this.tokenRefreshes = 0;
    const call = (path, options) => this.call(path, options);
    this.account = new Account({ auth });
    this.rules = new Rules({ call, saved: () => this.refresh() });
    this.channels = new Channels({ call });
    this.events = new Events({ call, visible: () => !this.body.hidden });
    this.auth.onChange = (what, message) => this.authChanged(what, message);
    document.getElementById("signout").addEventListener("click", () => this.auth.signOut());
    document.getElementById("alerts-refresh").addEventListener("click", () => this.refresh());
  }

  start() {
    if (!this.auth.configured) {
      this.signedOut("");
      show(this.account.error, "This page's config.json names no user pool, so nobody can sign in here.");
      return;
    }
    if (this.auth.signedIn) this.signedIn();
    else this.signedOut("");
  }

  authChanged(what, message) {
    if (what === "signed-in") this.signedIn();
    else if (what === "signed-out") this.signedOut(message);
    // Counted where a test (or a curious person) can see that the page renewed its token.
    else if (what === "refreshed") this.panel.dataset.tokenRefreshes = String(++this.tokenRefreshes);
  }

  signedIn() {
    this.account.shown(false);
    this.body.hidden = false;
    this.who.textContent = `Signed in as ${this.auth.email}`;
    this.refresh();
    // "What fired" follows the checks on its own (while the page is in view and its first
    // page is what is shown): a check runs every 15 minutes.
    this.events.follow();
  }

  signedOut(message) {
    this.events.stop();
    this.body.hidden = true;
    this.who.textContent = "";
    this.rules.clear();
    this.channels.clear();
    this.account.shown(true, message);
  }

  async refresh() {
    try {
      await Promise.all([this.rules.load(), this.channels.load(), this.events.load(false)]);
    } catch (error) {
      if (!(error instanceof ServiceError) && !(error instanceof ServiceDown) && !(error instanceof AuthError)) throw error;
    }
  }

  async call(path, options = {}, retried = false) {
    let token;
    try {
      token = await this.auth.accessToken();
    } catch (error) {
      if (error instanceof AuthError && error.code === "unreachable") this.banner.set("auth", error.message);
      throw error;
    }
    this.banner.set("auth", null);
    try {
      const answer = await this.api.call("alerts", path, {
        ...options,
        headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` },
      });
      this.banner.set("alerts", null);
      return answer;
    } catch (error) {
      if (error instanceof ServiceError && (error.status === 401 || error.status === 403)) {
        // Expired a moment early, or revoked: one fresh token and one more try.
        if (!retried) {
          const renewed = await this.auth.refresh().then(() => true, () => false);
          if (renewed) return this.call(path, options, true);
        }
        if (this.auth.signedIn) this.auth.end("The alerts service did not accept your sign-in (it may have expired). Sign in again.");
      } else if (error instanceof ServiceDown) {
        this.banner.set("alerts", "The alerts service is not answering; your rules are safe, try again shortly.");
      } else if (error instanceof ServiceError && error.status === 503) {
        const wait = error.retryAfterS ? ` Try again in ${error.retryAfterS} s.` : "";
        this.banner.set("alerts", `${error.message}${wait} Your rules are safe.`);
      }
      throw error;
    }
  }
}
