// The watchlist: symbols kept in this browser, quoted with one batch request,
// refreshed when the server's Cache-Control says the answer may be renewed.

import { ServiceDown, ServiceError, maxAgeOf } from "./api.js";
import { h, show } from "./dom.js";
import { SYMBOL, ago, fmtClock, fmtMoment, fmtPrice, fmtSigned, normalizeSymbol } from "./format.js";

const STORE_KEY = "watchlist.symbols";
const DEFAULT_SYMBOLS = ["AAPL", "MSFT", "IBM", "GOOG"];
const MAX_SYMBOLS = 50; // the quote API's limit per batch request
// A stale answer says the vendor is failing: asking again at once would only repeat it.
const STALE_RETRY_S = 15;
const DOWN_RETRY_S = [5, 10, 20, 40, 60];

export class Watchlist {
  constructor({ api, banner, onChart }) {
    this.api = api;
    this.banner = banner;
    this.onChart = onChart;
    this.section = document.getElementById("watchlist");
    this.body = document.querySelector("#watch-table tbody");
    this.status = document.getElementById("watch-status");
    this.formError = document.getElementById("watch-form-error");
    this.symbols = this.load();
    this.rows = new Map(); // symbol -> {quote} | {error}
    this.old = false;
    this.updatedAt = null;
    this.failures = 0;
    this.timer = null;
    document.getElementById("watch-add").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add(event.target.elements.symbol);
    });
    // "N s ago" moves every second without asking the server anything.
    setInterval(() => this.tick(), 1000);
  }

  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE_KEY));
      if (Array.isArray(saved)) return saved.filter((s) => SYMBOL.test(s)).slice(0, MAX_SYMBOLS);
    } catch {
      // An unreadable entry is replaced by the defaults below.
    }
    return [...DEFAULT_SYMBOLS];
  }

  save() {
    localStorage.setItem(STORE_KEY, JSON.stringify(this.symbols));
  }

  add(input) {
    const symbol = normalizeSymbol(input.value);
    if (!SYMBOL.test(symbol)) {
      show(this.formError, `${input.value.trim() || "That"} is not a ticker symbol: 1-6 letters or digits, optionally a class suffix such as BRK.B.`);
      input.setAttribute("aria-invalid", "true");
      return;
    }
    input.removeAttribute("aria-invalid");
    if (this.symbols.includes(symbol)) {
      show(this.formError, `${symbol} is already on the watchlist.`);
      return;
    }
    if (this.symbols.length >= MAX_SYMBOLS) {
      show(this.formError, `A watchlist holds at most ${MAX_SYMBOLS} symbols.`);
      return;
    }
    show(this.formError, "");
    this.symbols.push(symbol);
    this.save();
    input.value = "";
    this.refresh();
  }

  remove(symbol) {
    this.symbols = this.symbols.filter((s) => s !== symbol);
    this.rows.delete(symbol);
    this.save();
    this.render();
  }

  schedule(seconds) {
    clearTimeout(this.timer);
    this.nextAt = Date.now() + seconds * 1000;
    this.section.dataset.nextRefreshS = String(seconds);
    this.timer = setTimeout(() => this.refresh(), seconds * 1000);
  }

  async refresh() {
    clearTimeout(this.timer);
    if (this.symbols.length === 0) {
      this.render();
      return;
    }
    this.section.dataset.state = "loading";
    try {
      // The page's own schedule (from max-age) decides when to ask; the HTTP cache must not answer for it.
      const { headers, body } = await this.api.call("quote", "/api/quote", {
        params: { symbols: this.symbols.join(",") },
        cache: "no-cache",
      });
      this.rows = new Map();
      for (const quote of body.results) this.rows.set(quote.symbol, { quote });
      for (const error of body.errors) this.rows.set(error.symbol, { error });
      this.old = false;
      this.failures = 0;
      this.updatedAt = new Date();
      this.banner.set("quote", null);
      const anyStale = body.results.some((q) => q.stale);
      const maxAge = maxAgeOf(headers);
      this.schedule(maxAge > 0 ? maxAge : anyStale || maxAge === null ? STALE_RETRY_S : 1);
      this.section.dataset.state = "ready";
    } catch (error) {
      if (!(error instanceof ServiceDown || (error instanceof ServiceError && error.status >= 500))) {
        this.section.dataset.state = "error";
        show(this.formError, error.message);
        this.schedule(STALE_RETRY_S);
        this.render();
        return;
      }
      // The last values stay on screen, marked as old, until the service answers again.
      this.old = this.rows.size > 0;
      const wait = error.retryAfterS || DOWN_RETRY_S[Math.min(this.failures, DOWN_RETRY_S.length - 1)];
      this.failures += 1;
      const since = this.updatedAt ? ` Prices shown are from ${fmtClock(this.updatedAt)} and may be out of date.` : "";
      const why = error instanceof ServiceDown ? "is not answering" : `is failing (${error.message})`;
      this.banner.set("quote", `The quote service ${why}; retrying in ${wait} s.${since}`);
      this.schedule(wait);
      this.section.dataset.state = "down";
    }
    this.render();
  }

  tick() {
    for (const cell of this.body.querySelectorAll("[data-as-of]")) cell.textContent = ago(cell.dataset.asOf);
    if (this.nextAt) {
      const left = Math.max(0, Math.round((this.nextAt - Date.now()) / 1000));
      const when = this.updatedAt ? `Updated ${fmtClock(this.updatedAt)}; ` : "";
      this.status.textContent = `${when}next refresh in ${left} s`;
    }
  }

  render() {
    const rows = this.symbols.map((symbol) => this.row(symbol, this.rows.get(symbol)));
    this.body.replaceChildren(...rows);
    this.section.dataset.count = String(this.symbols.length);
    this.tick();
  }

  row(symbol, entry) {
    // The button in the cell, not a flex layout on the cell: that unmoors its border from the row's.
    const actions = h(
      "td",
      { class: "actions-cell" },
      h("button", { type: "button", class: "quiet", "aria-label": `Remove ${symbol}`, onclick: () => this.remove(symbol) }, "×"),
    );
    const name = h(
      "td",
      {},
      h("button", { type: "button", class: "symbol-button", "aria-label": `Chart ${symbol}`, onclick: () => this.onChart(symbol) }, symbol),
    );
    if (!entry) {
      return h("tr", { dataset: { symbol } }, name, h("td", { colspan: 4, class: "muted" }, "waiting for a quote"), actions);
    }
    if (entry.error) {
      return h(
        "tr",
        { dataset: { symbol, error: entry.error.code } },
        name,
        h("td", { colspan: 4, class: "row-error" }, `${entry.error.message} (${entry.error.code})`),
        actions,
      );
    }
    const q = entry.quote;
    const direction = q.change > 0 ? "up" : q.change < 0 ? "down" : "";
    const badges = [
      h("span", { class: `badge ${q.cache.status}`, title: `cache: ${q.cache.status}, ${q.cache.age_s} s old when answered` }, q.cache.status),
      q.stale && h("span", { class: "badge stale", title: "the vendor could not be asked; this is the last known price" }, "stale"),
      q.delayed && h("span", { class: "badge delayed" }, `delayed ${q.delay_min} min`),
      this.old && h("span", { class: "badge old" }, "old"),
    ];
    return h(
      "tr",
      { class: this.old ? "old" : "", dataset: { symbol, price: q.price } },
      name,
      h("td", { class: "num price" }, fmtPrice(q.price)),
      h(
        "td",
        { class: `num ${direction}` },
        fmtSigned(q.change),
        h("br"),
        q.change_pct === null ? "" : `${fmtSigned(q.change_pct)} %`,
      ),
      h("td", { class: "when" }, fmtMoment(q.as_of), h("br"), h("span", { class: "muted", dataset: { asOf: q.as_of || "" } }, ago(q.as_of))),
      h("td", {}, badges),
      actions,
    );
  }
}
