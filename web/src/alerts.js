// Alerts: sign in with a bearer token (kept in sessionStorage only, sent only in
// the Authorization header), manage rules, and see what fired and whether it
// was delivered. A 401 or 403 returns to sign-in.

import { ServiceDown, ServiceError } from "./api.js";
import { emptyRow, h, show } from "./dom.js";
import { fmtMoment, fmtPrice } from "./format.js";

const TOKEN_KEY = "alerts.token";
const FREQUENCIES = { once_per_bar: "once per trading day", once: "once", on_change: "each time it turns true" };

export class Alerts {
  constructor({ api, banner }) {
    this.api = api;
    this.banner = banner;
    this.signin = document.getElementById("signin");
    this.signinError = document.getElementById("signin-error");
    this.body = document.getElementById("alerts-body");
    this.who = document.getElementById("alerts-who");
    this.form = document.getElementById("rule-form");
    this.conditionError = document.getElementById("rule-condition-error");
    this.ruleError = document.getElementById("rule-error");
    this.rulesBody = document.querySelector("#rules-table tbody");
    this.eventsBody = document.querySelector("#events-table tbody");
    this.more = document.getElementById("events-more");
    this.editing = null;
    this.eventsCursor = null;

    this.signin.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = event.target.elements.token.value.trim();
      event.target.elements.token.value = "";
      sessionStorage.setItem(TOKEN_KEY, token);
      this.start();
    });
    document.getElementById("signout").addEventListener("click", () => this.signOut(""));
    document.getElementById("alerts-refresh").addEventListener("click", () => this.refresh());
    document.getElementById("rule-cancel").addEventListener("click", () => this.edit(null));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.form.elements.condition.addEventListener("input", () => this.clearConditionError());
    this.more.addEventListener("click", () => this.loadEvents(true));
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  start() {
    if (!this.token) {
      this.signOut("");
      return;
    }
    this.signin.hidden = true;
    this.body.hidden = false;
    this.who.textContent = `Signed in as ${userOf(this.token)}`;
    this.refresh();
  }

  signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    this.body.hidden = true;
    this.signin.hidden = false;
    this.who.textContent = "";
    this.edit(null);
    this.rulesBody.replaceChildren();
    this.eventsBody.replaceChildren();
    show(this.signinError, message);
  }

  async call(path, options = {}) {
    try {
      const answer = await this.api.call("alerts", path, {
        ...options,
        headers: { ...(options.headers || {}), Authorization: `Bearer ${this.token}` },
      });
      this.banner.set("alerts", null);
      return answer;
    } catch (error) {
      if (error instanceof ServiceError && (error.status === 401 || error.status === 403)) {
        this.signOut("The alerts service did not accept that token (it may have expired). Sign in again.");
      } else if (error instanceof ServiceDown) {
        this.banner.set("alerts", "The alerts service is not answering; your rules are safe, try again shortly.");
      }
      throw error;
    }
  }

  async refresh() {
    try {
      await Promise.all([this.loadRules(), this.loadEvents(false)]);
    } catch (error) {
      if (!(error instanceof ServiceError) && !(error instanceof ServiceDown)) throw error;
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
      h("td", {}, rule.symbol),
      h("td", {}, h("code", {}, rule.condition)),
      h("td", {}, FREQUENCIES[rule.frequency] || rule.frequency, rule.expires_at ? h("div", { class: "muted" }, `until ${fmtMoment(rule.expires_at)}`) : ""),
      h("td", {}, toggle),
      h("td", {}, rule.last_fired_at ? fmtMoment(rule.last_fired_at) : "never"),
      h("td", { class: rule.last_error ? "row-error" : "" }, rule.last_error || ""),
      h(
        "td",
        { class: "rules-actions" },
        h("button", { type: "button", class: "quiet", "aria-label": `Edit ${rule.symbol} ${rule.condition}`, onclick: () => this.edit(rule) }, "Edit"),
        remove,
      ),
    );
  }

  async loadEvents(older) {
    const params = { limit: 20, cursor: older ? this.eventsCursor : undefined };
    const { body } = await this.call("/api/alerts/events", { params });
    const rows = body.events.map((event) => this.eventRow(event));
    if (older) this.eventsBody.append(...rows);
    else if (rows.length) this.eventsBody.replaceChildren(...rows);
    else this.eventsBody.replaceChildren(emptyRow(this.eventsBody.closest("table"), "Nothing has fired yet."));
    this.eventsCursor = body.next_cursor;
    this.more.hidden = !body.next_cursor;
    document.getElementById("events-table").dataset.count = String(this.eventsBody.querySelectorAll("tr:not(.empty)").length);
  }

  eventRow(event) {
    const values = Object.entries(event.values || {}).map(([k, v]) => `${k} ${fmtPrice(v)}`).join(", ");
    const delivery = event.delivery || "unknown";
    const explain = {
      sent: "SNS accepted the notification",
      failed: "SNS refused it; the next check retries",
      unknown: "the publish timed out: it may or may not have been delivered, and is not resent",
    };
    return h(
      "tr",
      { dataset: { delivery } },
      h("td", {}, fmtMoment(event.fired_at)),
      h("td", {}, event.symbol),
      h("td", {}, h("code", {}, event.condition)),
      h("td", {}, values, event.price_stale ? h("span", { class: "badge stale" }, "stale price") : ""),
      h("td", {}, event.bar_date || ""),
      h("td", {}, h("span", { class: `badge ${delivery}`, title: explain[delivery] || "" }, delivery)),
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

// The token's user, for display only; the service verifies the token itself.
function userOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub || "you";
  } catch {
    return "you";
  }
}

function toLocalInput(iso) {
  const date = new Date(iso);
  const offset = date.getTimezoneOffset() * 60000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}
