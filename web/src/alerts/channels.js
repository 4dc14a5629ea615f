// Where a user's alerts go: their email addresses and webhooks, each confirmed by its
// owner before anything is delivered to it.

import { AuthError } from "../auth.js";
import { ServiceDown, ServiceError } from "../api.js";
import { emptyRow, h, show } from "../dom.js";

const STATUS_TEXT = {
  confirmed: "confirmed",
  pending_confirmation: "waiting for confirmation",
  inactive: "inactive: add it again",
};
const PENDING_HINT = {
  email: "Check your inbox to confirm: SNS sent a link to this address.",
  webhook: "Your endpoint must confirm: GET the SubscribeURL of the SubscriptionConfirmation SNS posted to it.",
};

export class Channels {
  // call(path, options): the alerts API with the user's token.
  constructor({ call }) {
    this.call = call;
    this.body = document.querySelector("#channels-table tbody");
    this.form = document.getElementById("channel-form");
    this.error = document.getElementById("channel-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.add();
    });
    this.form.elements.type.addEventListener("change", () => {
      this.form.elements.target.placeholder =
        this.form.elements.type.value === "email" ? "you@example.com" : "https://example.com/hooks/alerts";
    });
  }

  clear() {
    this.body.replaceChildren();
  }

  async load() {
    const { body } = await this.call("/api/alerts/channels");
    const rows = body.channels.map((channel) => this.row(channel));
    if (!rows.length) rows.push(emptyRow(this.body.closest("table"), "No channels yet: alerts fire but reach nobody. Add one below."));
    this.body.replaceChildren(...rows);
    document.getElementById("channels-table").dataset.count = String(body.channels.length);
  }

  row(channel) {
    const target = channel.type === "email" ? channel.address : channel.url;
    const remove = h("button", { type: "button", class: "quiet", "aria-label": `Remove ${channel.type} ${target}` }, "Remove");
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) this.remove(channel);
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

  async add() {
    show(this.error, "");
    const f = this.form.elements;
    const type = f.type.value;
    const target = f.target.value.trim();
    const body = type === "email" ? { type, address: target } : { type, url: target };
    const button = document.getElementById("channel-add");
    button.disabled = true;
    try {
      await this.call("/api/alerts/channels", { method: "POST", json: body });
      f.target.value = "";
      await this.load();
    } catch (error) {
      if (error instanceof ServiceError && error.status !== 401 && error.status !== 403) show(this.error, error.message);
      else if (!(error instanceof ServiceDown || error instanceof ServiceError || error instanceof AuthError)) throw error;
    } finally {
      button.disabled = false;
    }
  }

  async remove(channel) {
    try {
      await this.call(`/api/alerts/channels/${encodeURIComponent(channel.id)}`, { method: "DELETE" });
    } catch (error) {
      if (error instanceof ServiceError && error.status !== 401 && error.status !== 403) show(this.error, error.message);
    } finally {
      await this.load().catch(() => {});
    }
  }
}
