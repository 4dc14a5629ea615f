// Alerts: accounts (auth.js: sign up, confirm, sign in, forgot password, sign out,
// a silent refresh), the user's rules, where their alerts go (channels), and what
// fired and whether it was delivered. The access token is sent only in the
// Authorization header; a 401 gets one refresh and one retry, then sign-in again.

import { AuthError } from "./auth.js";
import { ServiceDown, ServiceError } from "./api.js";
import { emptyRow, h, show } from "./dom.js";
import { fmtMoment, fmtPrice } from "./format.js";

// How often a signed-in page looks for new firings (the check runs every 15 minutes).
const EVENTS_REFRESH_MS = 15_000;
const FREQUENCIES = { once_per_bar: "once per trading day", once: "once", on_change: "each time it turns true" };
const STATUS_TEXT = {
  confirmed: "confirmed",
  pending_confirmation: "waiting for confirmation",
  inactive: "inactive: add it again",
};
const PENDING_HINT = {
  email: "Check your inbox to confirm: SNS sent a link to this address.",
  webhook: "Your endpoint must confirm: GET the SubscribeURL of the SubscriptionConfirmation SNS posted to it.",
};

export class Alerts {
  constructor({ api, banner, auth }) {
    this.api = api;
    this.banner = banner;
    this.auth = auth;
    this.panel = document.getElementById("alerts-panel");
    this.tokenRefreshes = 0;
    this.authBox = document.getElementById("auth");
    this.authMessage = document.getElementById("auth-message");
    this.signinError = document.getElementById("signin-error");
    this.body = document.getElementById("alerts-body");
    this.who = document.getElementById("alerts-who");
    this.form = document.getElementById("rule-form");
    this.conditionError = document.getElementById("rule-condition-error");
    this.ruleError = document.getElementById("rule-error");
    this.rulesBody = document.querySelector("#rules-table tbody");
    this.channelsBody = document.querySelector("#channels-table tbody");
    this.channelForm = document.getElementById("channel-form");
    this.channelError = document.getElementById("channel-error");
    this.eventsBody = document.querySelector("#events-table tbody");
    this.more = document.getElementById("events-more");
    this.editing = null;
    this.eventsCursor = null;
    this.pendingEmail = "";
    this.challenge = null;

    this.auth.onChange = (what, message) => this.authChanged(what, message);
    for (const button of this.authBox.querySelectorAll("[data-go]")) {
      button.addEventListener("click", () => this.view(button.dataset.go));
    }
    this.onSubmit("signin", (f) => this.signIn(f.email.value.trim(), f.password.value));
    this.onSubmit("signup", (f) => this.signUp(f.email.value.trim(), f.password.value));
    this.onSubmit("confirm", (f) => this.confirm(f.code.value.trim()));
    this.onSubmit("forgot", (f) => this.forgot(f.email.value.trim()));
    this.onSubmit("reset", (f) => this.reset(f.code.value.trim(), f.password.value));
    this.onSubmit("newpass", (f) => this.newPassword(f.password.value));
    document.getElementById("confirm-resend").addEventListener("click", () => this.resend());
    document.getElementById("signout").addEventListener("click", () => this.auth.signOut());
    document.getElementById("alerts-refresh").addEventListener("click", () => this.refresh());
    document.getElementById("rule-cancel").addEventListener("click", () => this.edit(null));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.form.elements.condition.addEventListener("input", () => this.clearConditionError());
    this.channelForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.addChannel();
    });
    this.channelForm.elements.type.addEventListener("change", () => {
      this.channelForm.elements.target.placeholder =
        this.channelForm.elements.type.value === "email" ? "you@example.com" : "https://example.com/hooks/alerts";
    });
    this.more.addEventListener("click", () => this.loadEvents(true));
  }

  onSubmit(id, work) {
    const form = document.getElementById(id);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      show(this.signinError, "");
      try {
        await work(form.elements);
      } catch (error) {
        if (!(error instanceof AuthError)) throw error;
        if (error.code === "UserNotConfirmedException") {
          this.pendingEmail = form.elements.email?.value.trim() || this.pendingEmail;
          this.view("confirm", "This account's email is not confirmed yet: enter the code we emailed.");
        } else {
          show(this.signinError, error.message);
        }
      } finally {
        button.disabled = false;
      }
    });
  }

  // Shows one of the sign-in forms (signin, signup, confirm, forgot, reset, newpass).
  view(name, message = "") {
    for (const form of this.authBox.querySelectorAll("form[data-view]")) form.hidden = form.dataset.view !== name;
    this.authBox.dataset.view = name;
    show(this.authMessage, message);
    show(this.signinError, "");
    const first = this.authBox.querySelector(`form[data-view=${name}] input`);
    if (first && name !== "signin") first.focus();
  }

  start() {
    if (!this.auth.configured) {
      this.signedOut("");
      show(this.signinError, "This page's config.json names no user pool, so nobody can sign in here.");
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
    this.authBox.hidden = true;
    this.body.hidden = false;
    this.who.textContent = `Signed in as ${this.auth.email}`;
    this.refresh();
    // "What fired" follows the checks on its own (while the page is in view and its first
    // page is what is shown): a check runs every 15 minutes, a look every EVENTS_REFRESH_MS.
    clearInterval(this.eventsTimer);
    this.eventsTimer = setInterval(() => {
      if (document.hidden || this.body.hidden || this.viewingOlder) return;
      this.loadEvents(false).catch(() => {}); // a failure shows on the next look, or on Refresh
    }, EVENTS_REFRESH_MS);
  }

  signedOut(message) {
    clearInterval(this.eventsTimer);
    this.body.hidden = true;
    this.authBox.hidden = false;
    this.who.textContent = "";
    this.edit(null);
    this.rulesBody.replaceChildren();
    this.channelsBody.replaceChildren();
    this.eventsBody.replaceChildren();
    this.view("signin");
    show(this.signinError, message);
  }

  async signIn(email, password) {
    const step = await this.auth.signIn(email, password);
    if (step.challenge === "NEW_PASSWORD_REQUIRED") {
      this.challenge = { email, session: step.session };
      this.view("newpass");
    } else if (step.challenge) {
      show(this.signinError, `Cognito asks for ${step.challenge}, which this page cannot do.`);
    }
  }

  async newPassword(password) {
    await this.auth.setNewPassword(this.challenge.email, this.challenge.session, password);
    this.challenge = null;
  }

  async signUp(email, password) {
    const made = await this.auth.signUp(email, password);
    this.pendingEmail = email;
    document.getElementById("signin-email").value = email;
    if (made.confirmed) this.view("signin", "Your account is ready: sign in.");
    else this.view("confirm", `We emailed a confirmation code to ${made.destination}.`);
  }

  async confirm(code) {
    await this.auth.confirmSignUp(this.pendingEmail, code);
    document.getElementById("signin-email").value = this.pendingEmail;
    this.view("signin", "Your email is confirmed: sign in.");
  }

  async resend() {
    try {
      await this.auth.resendCode(this.pendingEmail);
      show(this.authMessage, "We sent a new code.");
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      show(this.signinError, error.message);
    }
  }

  async forgot(email) {
    await this.auth.forgotPassword(email);
    this.pendingEmail = email;
    this.view("reset");
  }

  async reset(code, password) {
    await this.auth.resetPassword(this.pendingEmail, code, password);
    document.getElementById("signin-email").value = this.pendingEmail;
    this.view("signin", "Your password is changed: sign in with it.");
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

  async refresh() {
    try {
      await Promise.all([this.loadRules(), this.loadChannels(), this.loadEvents(false)]);
    } catch (error) {
      if (!(error instanceof ServiceError) && !(error instanceof ServiceDown) && !(error instanceof AuthError)) throw error;
    }
  }

  async loadChannels() {
    const { body } = await this.call("/api/alerts/channels");
    const rows = body.channels.map((channel) => this.channelRow(channel));
    if (!rows.length) rows.push(emptyRow(this.channelsBody.closest("table"), "No channels yet: alerts fire but reach nobody. Add one below."));
    this.channelsBody.replaceChildren(...rows);
    document.getElementById("channels-table").dataset.count = String(body.channels.length);
  }

  channelRow(channel) {
    const target = channel.type === "email" ? channel.address : channel.url;
    const remove = h("button", { type: "button", class: "quiet", "aria-label": `Remove ${channel.type} ${target}` }, "Remove");
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) this.removeChannel(channel);
      else {
        remove.dataset.armed = "true";
        remove.textContent = "Confirm remove";
      }
    });
    const status = h(
      "td",
      {},
      h("span", { class: `badge ${channel.status}` }, STATUS_TEXT[channel.status] || channel.status),
      channel.status === "pending_confirmation" ? h("div", { class: "muted hint" }, PENDING_HINT[channel.type]) : "",
    );
    const where = h("td", { class: "channel-target" }, target);
    if (channel.signing_secret) {
      where.append(
        h(
          "details",
          { class: "secret" },
          h("summary", {}, "Signing secret"),
          h("code", {}, channel.signing_secret),
          h("p", { class: "muted hint" }, "Each delivery's message carries signature t=…,v1=HMAC-SHA256(secret, t + \".\" + payload): check it."),
        ),
      );
    }
    return h("tr", { dataset: { channelId: channel.id, status: channel.status, type: channel.type } }, h("td", {}, channel.type), where, status, h("td", {}, remove));
  }

  async addChannel() {
    show(this.channelError, "");
    const f = this.channelForm.elements;
    const type = f.type.value;
    const target = f.target.value.trim();
    const body = type === "email" ? { type, address: target } : { type, url: target };
    const button = document.getElementById("channel-add");
    button.disabled = true;
    try {
      await this.call("/api/alerts/channels", { method: "POST", json: body });
      f.target.value = "";
      await this.loadChannels();
    } catch (error) {
      if (error instanceof ServiceError && error.status !== 401 && error.status !== 403) show(this.channelError, error.message);
      else if (!(error instanceof ServiceDown || error instanceof ServiceError || error instanceof AuthError)) throw error;
    } finally {
      button.disabled = false;
    }
  }

  async removeChannel(channel) {
    try {
      await this.call(`/api/alerts/channels/${encodeURIComponent(channel.id)}`, { method: "DELETE" });
    } catch (error) {
      if (error instanceof ServiceError && error.status !== 401 && error.status !== 403) show(this.channelError, error.message);
    } finally {
      await this.loadChannels().catch(() => {});
    }
  }

  async loadRules() {
    const { body } = await this.call("/api/alerts/rules");
    this.rules = body.rules;
    const rows = body.rules.map((rule) => this.ruleRow(rule));
    if (!rows.length) rows.push(emptyRow(this.rulesBody.closest("table"), "No rules yet: create one above."));
    this.rulesBody.replaceChildren(...rows);
    document.getElementById("rules-table").dataset.count = String(body.rules.length);
  }

  ruleRow(rule) {
    const toggle = h("input", {
      type: "checkbox",
      checked: rule.enabled,
      "aria-label": `Enabled: ${rule.symbol} ${rule.condition}`,
      onchange: (event) => this.patch(rule, { enabled: event.target.checked }),
    });
    const remove = h("button", { type: "button", class: "quiet", "aria-label": `Delete ${rule.symbol} ${rule.condition}` }, "Delete");
    // Two steps instead of a confirm() dialog, which blocks the page.
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) this.remove(rule);
      else {
        remove.dataset.armed = "true";
        remove.textContent = "Confirm delete";
      }
    });
    return h(
      "tr",
      { dataset: { ruleId: rule.id } },
      // Each cell names its column (data-label): on a phone a row is a card of labelled lines.
      h("td", { dataset: { label: "Symbol" } }, rule.symbol),
      h("td", { dataset: { label: "Condition" } }, h("code", {}, rule.condition)),
      h("td", { dataset: { label: "Frequency" } }, FREQUENCIES[rule.frequency] || rule.frequency, rule.expires_at ? h("div", { class: "muted" }, `until ${fmtMoment(rule.expires_at)}`) : ""),
      h("td", { dataset: { label: "Enabled" } }, toggle),
      h("td", { dataset: { label: "Last fired" } }, rule.last_fired_at ? fmtMoment(rule.last_fired_at) : "never"),
      h("td", { class: rule.last_error ? "row-error" : "", dataset: { label: "Last error" } }, rule.last_error || ""),
      // The buttons in a box of their own: a flex layout on the cell itself unmoors its border.
      h(
        "td",
        { class: "actions-cell" },
        h(
          "div",
          { class: "rules-actions" },
          h("button", { type: "button", class: "quiet", "aria-label": `Edit ${rule.symbol} ${rule.condition}`, onclick: () => this.edit(rule) }, "Edit"),
          remove,
        ),
      ),
    );
  }

  async loadEvents(older) {
    this.viewingOlder = older;
    const params = { limit: 20, cursor: older ? this.eventsCursor : undefined };
    const { body } = await this.call("/api/alerts/events", { params });
    const rows = body.events.map((event) => this.eventRow(event));
    if (older) this.eventsBody.append(...rows);
    else if (rows.length) this.eventsBody.replaceChildren(...rows);
    else this.eventsBody.replaceChildren(emptyRow(this.eventsBody.closest("table"), "Nothing has fired yet."));
    this.eventsCursor = body.next_cursor;
    this.more.hidden = !body.next_cursor;
    const table = document.getElementById("events-table");
    table.dataset.count = String(this.eventsBody.querySelectorAll("tr:not(.empty)").length);
    table.dataset.loads = String(Number(table.dataset.loads || 0) + 1);
  }

  eventRow(event) {
    const values = Object.entries(event.values || {}).map(([k, v]) => `${k} ${fmtPrice(v)}`).join(", ");
    const delivery = event.delivery || "unknown";
    const explain = {
      sent: "SNS accepted it for your confirmed channels",
      failed: "SNS refused it; the next check retries",
      unknown: "the publish timed out: it may or may not have been delivered, and is not resent",
      no_channel: "you had no confirmed channel when it fired: add one under Where alerts go",
    };
    const shown = {
      sent: `sent to ${event.channels || 0} channel${event.channels === 1 ? "" : "s"}`,
      failed: "failed: retried next check",
      unknown: "unknown",
      no_channel: "not sent: no confirmed channel",
    };
    return h(
      "tr",
      { dataset: { delivery } },
      h("td", { dataset: { label: "Fired" } }, fmtMoment(event.fired_at)),
      h("td", { dataset: { label: "Symbol" } }, event.symbol),
      h("td", { dataset: { label: "Condition" } }, h("code", {}, event.condition)),
      h("td", { dataset: { label: "Values" } }, values, event.price_stale ? h("span", { class: "badge stale" }, "stale price") : ""),
      h("td", { dataset: { label: "Bar" } }, event.bar_date || ""),
      h("td", { dataset: { label: "Delivery" } }, h("span", { class: `badge ${delivery}`, title: explain[delivery] || "" }, shown[delivery] || delivery)),
    );
  }

  edit(rule) {
    this.editing = rule;
    const f = this.form.elements;
    document.getElementById("rule-form-title").textContent = rule ? `Edit rule on ${rule.symbol}` : "New rule";
    document.getElementById("rule-save").textContent = rule ? "Save changes" : "Create rule";
    document.getElementById("rule-cancel").hidden = !rule;
    f.symbol.value = rule?.symbol || "";
    f.condition.value = rule?.condition || "";
    f.frequency.value = rule?.frequency || "once_per_bar";
    f.expires_at.value = rule?.expires_at ? toLocalInput(rule.expires_at) : "";
    f.enabled.checked = rule ? rule.enabled : true;
    this.clearConditionError();
    show(this.ruleError, "");
    if (rule) f.condition.focus();
  }

  fields() {
    const f = this.form.elements;
    return {
      symbol: f.symbol.value.trim(),
      condition: f.condition.value,
      frequency: f.frequency.value,
      expires_at: f.expires_at.value ? new Date(f.expires_at.value).toISOString() : null,
      enabled: f.enabled.checked,
    };
  }

  async save() {
    this.clearConditionError();
    show(this.ruleError, "");
    const body = this.fields();
    try {
      if (this.editing) await this.call(`/api/alerts/rules/${encodeURIComponent(this.editing.id)}`, { method: "PATCH", json: body });
      else await this.call("/api/alerts/rules", { method: "POST", json: body });
    } catch (error) {
      if (error instanceof ServiceError && error.code === "invalid_condition") this.showConditionError(error.details);
      else if (error instanceof ServiceError && error.status < 500 && error.status !== 401 && error.status !== 403) show(this.ruleError, error.message);
      else if (!(error instanceof ServiceDown || error instanceof ServiceError)) throw error;
      return;
    }
    this.edit(null);
    await this.refresh();
  }

  async patch(rule, changes) {
    try {
      await this.call(`/api/alerts/rules/${encodeURIComponent(rule.id)}`, { method: "PATCH", json: changes });
    } finally {
      await this.loadRules().catch(() => {});
    }
  }

  async remove(rule) {
    try {
      await this.call(`/api/alerts/rules/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
    } finally {
      if (this.editing?.id === rule.id) this.edit(null);
      await this.loadRules().catch(() => {});
    }
  }

  // The API says where the condition went wrong (1-based position) and what would fit there.
  showConditionError(error) {
    const input = this.form.elements.condition;
    const text = input.value;
    const at = Math.max(0, (error.position || 1) - 1);
    input.setAttribute("aria-invalid", "true");
    const found = at < text.length ? text[at] : "␣";
    const shown = h("pre", { "aria-hidden": "true" }, text.slice(0, at), h("mark", { dataset: { position: String(at + 1) } }, found), text.slice(at + 1));
    const expected = (error.expected || []).map((item) => h("li", {}, item));
    this.conditionError.replaceChildren(
      h("p", { class: "message" }, error.message),
      error.position ? shown : "",
      expected.length ? h("p", {}, "Expected here:") : "",
      expected.length ? h("ul", {}, expected) : "",
    );
    this.conditionError.dataset.position = String(error.position || "");
    this.conditionError.hidden = false;
    input.focus();
    input.setSelectionRange(at, Math.min(text.length, at + 1));
  }

  clearConditionError() {
    this.form.elements.condition.removeAttribute("aria-invalid");
    this.conditionError.replaceChildren();
    this.conditionError.hidden = true;
    delete this.conditionError.dataset.position;
  }
}

function toLocalInput(iso) {
  const date = new Date(iso);
  const offset = date.getTimezoneOffset() * 60000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}
