// The user's rules: the table (enable, edit, delete) and the form that creates or
// edits one, with the condition language's errors shown where they are.

import { ServiceDown, ServiceError } from "../api.js";
import { emptyRow, h, show } from "../dom.js";
import { fmtMoment } from "../format.js";

const FREQUENCIES = { once_per_bar: "once per trading day", once: "once", on_change: "each time it turns true" };

export class Rules {
  // call(path, options): the alerts API with the user's token; saved(): what to reload after a save.
  constructor({ call, saved }) {
    this.call = call;
    this.saved = saved;
    this.body = document.querySelector("#rules-table tbody");
    this.form = document.getElementById("rule-form");
    this.conditionError = document.getElementById("rule-condition-error");
    this.error = document.getElementById("rule-error");
    this.editing = null;
    document.getElementById("rule-cancel").addEventListener("click", () => this.edit(null));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.form.elements.condition.addEventListener("input", () => this.clearConditionError());
  }

  clear() {
    this.edit(null);
    this.body.replaceChildren();
  }

  async load() {
    const { body } = await this.call("/api/alerts/rules");
    this.rules = body.rules;
    const rows = body.rules.map((rule) => this.row(rule));
    if (!rows.length) rows.push(emptyRow(this.body.closest("table"), "No rules yet: create one above."));
    this.body.replaceChildren(...rows);
    document.getElementById("rules-table").dataset.count = String(body.rules.length);
  }

  row(rule) {
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
    show(this.error, "");
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
    show(this.error, "");
    const body = this.fields();
    try {
      if (this.editing) await this.call(`/api/alerts/rules/${encodeURIComponent(this.editing.id)}`, { method: "PATCH", json: body });
      else await this.call("/api/alerts/rules", { method: "POST", json: body });
    } catch (error) {
      if (error instanceof ServiceError && error.code === "invalid_condition") this.showConditionError(error.details);
      else if (error instanceof ServiceError && error.status < 500 && error.status !== 401 && error.status !== 403) show(this.error, error.message);
      else if (!(error instanceof ServiceDown || error instanceof ServiceError)) throw error;
      return;
    }
    this.edit(null);
    await this.saved();
  }

  async patch(rule, changes) {
    try {
      await this.call(`/api/alerts/rules/${encodeURIComponent(rule.id)}`, { method: "PATCH", json: changes });
    } finally {
      await this.load().catch(() => {});
    }
  }

  async remove(rule) {
    try {
      await this.call(`/api/alerts/rules/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
    } finally {
      if (this.editing?.id === rule.id) this.edit(null);
      await this.load().catch(() => {});
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
