// What fired, and whether it was delivered: newest first, older pages on demand, and
// the first page looked at again on its own while it is what the user sees.

import { emptyRow, h } from "../dom.js";
import { fmtMoment, fmtPrice } from "../format.js";

// How often a signed-in page looks for new firings (the check runs every 15 minutes).
const EVENTS_REFRESH_MS = 15_000;
const EXPLAIN = {
  sent: "SNS accepted it for your confirmed channels",
  failed: "SNS refused it; the next check retries",
  unknown: "the publish timed out: it may or may not have been delivered, and is not resent",
  no_channel: "you had no confirmed channel when it fired: add one under Where alerts go",
};

export class Events {
  // call(path, options): the alerts API with the user's token; visible(): whether the panel is shown.
  constructor({ call, visible }) {
    this.call = call;
    this.visible = visible;
    this.body = document.querySelector("#events-table tbody");
    this.more = document.getElementById("events-more");
    this.cursor = null;
    this.viewingOlder = false;
    this.more.addEventListener("click", () => this.load(true));
  }

  follow() {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (document.hidden || !this.visible() || this.viewingOlder) return;
      this.load(false).catch(() => {}); // a failure shows on the next look, or on Refresh
    }, EVENTS_REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.body.replaceChildren();
  }

  async load(older) {
    this.viewingOlder = older;
    const params = { limit: 20, cursor: older ? this.cursor : undefined };
    const { body } = await this.call("/api/alerts/events", { params });
    const rows = body.events.map((event) => this.row(event));
    if (older) this.body.append(...rows);
    else if (rows.length) this.body.replaceChildren(...rows);
    else this.body.replaceChildren(emptyRow(this.body.closest("table"), "Nothing has fired yet."));
    this.cursor = body.next_cursor;
    this.more.hidden = !body.next_cursor;
    const table = document.getElementById("events-table");
    table.dataset.count = String(this.body.querySelectorAll("tr:not(.empty)").length);
    table.dataset.loads = String(Number(table.dataset.loads || 0) + 1);
  }

  row(event) {
    const values = Object.entries(event.values || {}).map(([k, v]) => `${k} ${fmtPrice(v)}`).join(", ");
    const delivery = event.delivery || "unknown";
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
      h("td", { dataset: { label: "Delivery" } }, h("span", { class: `badge ${delivery}`, title: EXPLAIN[delivery] || "" }, shown[delivery] || delivery)),
    );
  }
}
