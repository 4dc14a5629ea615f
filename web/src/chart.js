// The chart: candlesticks and volume from GET /api/backtest, every page loaded by
// following next_cursor, SMA/EMA overlays from the API (the same numbers the
// alerts check compares), the adjustment asked for with the splits and dividends
// behind it marked, and downloads in the API's own CSV and Parquet.

import {
  CandlestickSeries,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
} from "../vendor/lightweight-charts.mjs";
import { ServiceDown } from "./api.js";
import { show } from "./dom.js";
import { SYMBOL, fmtPrice, fmtPriceExact, fmtVolume, normalizeSymbol } from "./format.js";

const PAGE_LIMIT = 2000;
const DOWNLOAD_LIMIT = 10000; // the API's largest page
const UP = "#137a52";
const DOWN = "#b3261e";
const PARTIAL = "#8a94a3";
const OVERLAY_COLORS = { sma: "#1f5fbf", ema: "#c26a00" };
const SPLIT_COLOR = "#6b3fa0";
const DIVIDEND_COLOR = "#1f5fbf";
const ADJUSTMENTS = { raw: "as traded (raw)", split: "split-adjusted", all: "total return (splits and dividends)" };

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

export class Chart {
  constructor({ api, banner }) {
    this.api = api;
    this.banner = banner;
    this.form = document.getElementById("chart-form");
    this.container = document.getElementById("chart");
    this.meta = document.getElementById("chart-meta");
    this.error = document.getElementById("chart-error");
    this.progress = document.getElementById("chart-progress");
    this.progressLabel = document.getElementById("chart-progress-label");
    this.readout = document.getElementById("crosshair");
    this.empty = document.getElementById("chart-empty");
    this.actionsList = document.getElementById("chart-actions");
    this.actionsByDate = new Map();
    this.downloadNote = document.getElementById("download-note");
    this.bars = [];
    this.overlaySeries = new Map();
    this.loading = null;

    this.chart = createChart(this.container, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#1d232b", attributionLogo: false },
      grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
      crosshair: { mode: CrosshairMode.Normal },
      // Room on the right for the last bar's "partial" marker; bars as thin as it takes to
      // fit the whole range asked for ("all" of 1990-2013 is ~6,000 daily bars).
      timeScale: { borderColor: "#dde1e6", rightOffset: 6, minBarSpacing: 0.05 },
      // No margin under the lowest price: on a long history that starts near zero a margin
      // would show negative prices (the axis reached -100 on 34-day bars).
      rightPriceScale: { borderColor: "#dde1e6", scaleMargins: { top: 0.1, bottom: 0 } },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
      autoscaleInfoProvider: noNegativePrices,
    });
    this.volume = this.chart.addSeries(HistogramSeries, { priceFormat: { type: "volume" }, priceLineVisible: false }, 1);
    this.chart.panes()[1].setStretchFactor(0.25);
    this.markers = createSeriesMarkers(this.candles, []);
    this.chart.subscribeCrosshairMove((param) => this.read(param));

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    for (const radio of this.form.elements.range) radio.addEventListener("change", () => this.syncRange());
    document.getElementById("download-csv").addEventListener("click", () => this.download("csv"));
    document.getElementById("download-parquet").addEventListener("click", () => this.download("parquet"));
    this.syncRange();
  }

  syncRange() {
    const custom = this.form.elements.range.value === "custom";
    this.form.elements.start.disabled = !custom;
    this.form.elements.end.disabled = !custom;
    this.form.elements.start.required = custom;
  }

  show(symbol) {
    this.form.elements.symbol.value = symbol;
    this.load();
    this.container.scrollIntoView({ behavior: "smooth", block: "center" });
  }

  // The query as the form says it; period presets are resolved by the API against the latest bar.
  query() {
    const f = this.form.elements;
    const symbol = normalizeSymbol(f.symbol.value);
    if (!SYMBOL.test(symbol)) throw new Error(`${f.symbol.value.trim() || "That"} is not a ticker symbol.`);
    const params = { symbol, interval: f.interval.value, adjustment: f.adjustment.value };
    const range = f.range.value;
    if (range === "custom") {
      if (!f.start.value) throw new Error("Choose the first date of a custom range.");
      params.start = f.start.value;
      params.end = f.end.value || undefined;
    } else {
      params.period = range;
    }
    const overlays = [];
    for (const kind of ["sma", "ema"]) {
      if (!f[`${kind}-on`].checked) continue;
      const n = Number(f[kind].value);
      if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`The ${kind.toUpperCase()} period must be a whole number from 1 to 200.`);
      overlays.push(`${kind}(${n})`);
    }
    if (overlays.length) params.overlays = overlays.join(",");
    return params;
  }

  // The query, or null after showing why the form cannot make one.
  queryOrShow() {
    try {
      return this.query();
    } catch (error) {
      show(this.error, error.message);
      return null;
    }
  }

  // Nothing drawn, nothing said about a chart no longer shown (an error or an empty range).
  clear() {
    this.bars = [];
    this.overlays = {};
    this.candles.setData([]);
    this.volume.setData([]);
    this.markers.setMarkers([]);
    for (const series of this.overlaySeries.values()) this.chart.removeSeries(series);
    this.overlaySeries.clear();
    this.actionsByDate = new Map();
    this.actionsList.replaceChildren();
    this.meta.textContent = "";
    this.container.dataset.barCount = "0";
    this.container.dataset.markers = "[]";
    this.read({});
  }

  async load() {
    const params = this.queryOrShow();
    if (!params) return;
    show(this.empty, "");
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    show(this.error, "");
    this.container.dataset.state = "loading";
    this.setProgress(0, "Loading the first page…");
    const bars = [];
    const overlays = {};
    const actions = new Map();
    let first = null;
    const sources = new Set();
    let cursor = null;
    let pages = 0;
    try {
      do {
        const { body } = await this.api.call("backtest", "/api/backtest", {
          params: { ...params, limit: PAGE_LIMIT, cursor },
          signal: controller.signal,
        });
        first ??= body;
        pages += 1;
        for (const tier of body.source.split("+")) sources.add(tier);
        bars.push(...body.bars);
        for (const [name, values] of Object.entries(body.overlays || {})) (overlays[name] ??= []).push(...values);
        for (const action of body.corporate_actions || []) actions.set(`${action.date}:${action.type}`, action);
        cursor = body.next_cursor;
        const last = bars.at(-1);
        const span = Date.parse(first.end) - Date.parse(first.start);
        const done = last ? (Date.parse(last.end_date || last.date) - Date.parse(first.start)) / (span || 1) : 1;
        this.setProgress(cursor ? Math.min(99, done * 100) : 100, `${bars.length.toLocaleString()} bars, ${pages} page${pages > 1 ? "s" : ""}${cursor ? "…" : ""}`);
      } while (cursor);
    } catch (error) {
      if (error.name === "AbortError") return;
      this.container.dataset.state = "error";
      this.setProgress(0, "Failed");
      if (error instanceof ServiceDown) {
        this.banner.set("backtest", "The history service is not answering; the chart shows what was loaded before.");
      } else {
        this.clear(); // an answer that says no (an unknown symbol): the old chart would mislead
      }
      show(this.error, error instanceof ServiceDown ? error.message : `${error.message} (${error.code})`);
      this.container.dataset.loads = String(Number(this.container.dataset.loads || 0) + 1);
      return;
    }
    this.banner.set("backtest", null);
    performance.mark("chart:data");
    // Every tier the drawn bars came from, in the order they run: lake (older), then PostgreSQL.
    const source = ["lake", "postgres"].filter((tier) => sources.has(tier)).join("+");
    const listed = [...actions.values()].sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0));
    if (!bars.length) {
      this.clear();
      const stored = first.available ? ` ${params.symbol}'s stored history runs from ${first.available.first} to ${first.available.last}.` : "";
      show(this.empty, `No bars for ${params.symbol} from ${first.start} to ${first.end}.${stored}`);
      this.container.dataset.state = "empty";
      this.container.dataset.loads = String(Number(this.container.dataset.loads || 0) + 1);
      return;
    }
    this.draw(params, { ...first, source }, bars, overlays, listed);
    // Two frames: the chart paints on the next animation frame after setData.
    await nextFrame();
    await nextFrame();
    performance.mark("chart:drawn");
    // Fitted again once the page has settled around the chart (the list under it can change
    // its size, and a resize keeps the bar spacing, pushing the first bars off the left edge).
    this.chart.timeScale().fitContent();
    await nextFrame();
    // What is on screen once fitted (a reader, or a test, can check nothing is off it).
    const visible = this.chart.timeScale().getVisibleLogicalRange();
    this.container.dataset.firstVisible = bars[Math.max(0, Math.ceil(visible?.from ?? 0))]?.date || "";
    this.container.dataset.lastVisible = bars[Math.min(bars.length - 1, Math.floor(visible?.to ?? bars.length - 1))]?.date || "";
    // The lowest price the axis shows (the pane's bottom edge): never below zero.
    const bottom = this.candles.coordinateToPrice(this.chart.panes()[0].getHeight());
    this.container.dataset.priceFloor = bottom === null ? "" : String(bottom);
    performance.measure("chart:draw", "chart:data", "chart:drawn");
    this.container.dataset.state = "ready";
    // How many loads have finished: lets a reader (or a test) wait for "the next one".
    this.container.dataset.loads = String(Number(this.container.dataset.loads || 0) + 1);
  }

  setProgress(percent, text) {
    this.progress.value = percent;
    this.progressLabel.textContent = text;
  }

  draw(params, first, bars, overlays, actions = []) {
    this.bars = bars;
    this.params = params;
    const candles = new Array(bars.length);
    const volumes = new Array(bars.length);
    for (let i = 0; i < bars.length; i++) {
      const b = bars[i];
      const color = b.partial ? PARTIAL : b.close >= b.open ? UP : DOWN;
      candles[i] = { time: b.date, open: b.open, high: b.high, low: b.low, close: b.close };
      if (b.partial) Object.assign(candles[i], { color, wickColor: color, borderColor: color });
      volumes[i] = { time: b.date, value: b.volume, color: `${color}88` };
    }
    this.candles.setData(candles);
    this.volume.setData(volumes);

    for (const series of this.overlaySeries.values()) this.chart.removeSeries(series);
    this.overlaySeries.clear();
    for (const [name, values] of Object.entries(overlays)) {
      const series = this.chart.addSeries(LineSeries, {
        color: OVERLAY_COLORS[name.slice(0, 3)] || "#555",
        lineWidth: 2,
        title: name,
        priceLineVisible: false,
        lastValueVisible: false,
        priceFormat: { type: "price", precision: 2, minMove: 0.01 },
        autoscaleInfoProvider: noNegativePrices,
      });
      series.setData(bars.map((b, i) => (values[i] === null ? { time: b.date } : { time: b.date, value: values[i] })));
      this.overlaySeries.set(name, series);
    }
    this.overlays = overlays;

    const last = bars.at(-1);
    const sessions = Number(params.interval.replace("d", ""));
    // Markers without text (labels at the chart's edge were cut, and labels of one bar
    // overlapped): each is named in the list under the chart and in the crosshair read-out.
    const marks = actionMarkers(bars, actions);
    if (last?.partial) {
      marks.push({ time: last.date, position: "aboveBar", shape: "circle", color: PARTIAL, label: `partial: ${last.sessions} of ${sessions} sessions` });
    }
    this.markers.setMarkers(marks.map(({ label, ...mark }) => mark));
    this.actionsByDate = new Map();
    for (const mark of marks) this.actionsByDate.set(mark.time, [...(this.actionsByDate.get(mark.time) || []), mark.label]);
    this.actionsList.replaceChildren(
      ...marks.map((m) => {
        const item = document.createElement("li");
        item.textContent = `${m.time}: ${m.label}`;
        item.style.setProperty("--mark", m.color);
        return item;
      }),
    );
    this.chart.timeScale().fitContent();

    this.container.dataset.barCount = String(bars.length);
    this.container.dataset.source = first.source;
    this.container.dataset.partial = last?.partial ? "true" : "false";
    this.container.dataset.adjustment = first.adjustment;
    this.container.dataset.splits = String(actions.filter((a) => a.type === "split").length);
    this.container.dataset.dividends = String(actions.filter((a) => a.type === "dividend").length);
    this.container.dataset.markers = JSON.stringify(marks.map((m) => [m.time, m.label]));
    this.container.dataset.drawnMarkerText = JSON.stringify(marks.filter((m) => m.text).map((m) => m.text));

    this.container.setAttribute("aria-label", `${params.symbol} ${params.interval} candlesticks, ${bars.length} bars from ${first.start} to ${first.end}`);
    const partial = last?.partial ? ` The last bar is partial (${last.sessions} of ${sessions} sessions) and drawn grey.` : "";
    const available = first.available ? ` Stored history: ${first.available.first} to ${first.available.last}.` : "";
    const marked = actions.length ? ` Marked: ${describeActions(actions)}.` : " No splits or dividends in this range.";
    this.meta.textContent = `${params.symbol} ${params.interval}, ${ADJUSTMENTS[first.adjustment] || first.adjustment}: ${bars.length} bars, ${first.start} to ${first.end}, from ${describeSource(first.source)}.${partial}${marked}${available}`;
    this.read({});
  }

  read(param) {
    const bar = param.logical !== undefined && param.logical !== null ? this.bars[Math.round(param.logical)] : this.bars.at(-1);
    if (!bar) {
      this.readout.textContent = this.bars.length ? "" : "Move over the chart to read a bar.";
      return;
    }
    const i = this.bars.indexOf(bar);
    // The data's own precision here (the axis shows 2 decimals).
    const parts = [
      bar.end_date ? `${bar.date} – ${bar.end_date}, ${bar.sessions} session${bar.sessions > 1 ? "s" : ""}${bar.partial ? " (partial)" : ""}` : bar.date,
      `O ${fmtPriceExact(bar.open)}`,
      `H ${fmtPriceExact(bar.high)}`,
      `L ${fmtPriceExact(bar.low)}`,
      `C ${fmtPriceExact(bar.close)}`,
      `V ${fmtVolume(bar.volume)}`,
    ];
    for (const [name, values] of Object.entries(this.overlays || {})) parts.push(`${name} ${fmtPriceExact(values[i])}`);
    parts.push(...(this.actionsByDate.get(bar.date) || []));
    this.readout.textContent = parts.join("  ·  ");
  }

  async download(format) {
    const params = this.queryOrShow();
    if (!params) return;
    this.downloadNote.textContent = `Preparing ${format.toUpperCase()}…`;
    try {
      // API Gateway returns a binary body only to a client that asks for it.
      const headers = format === "parquet" ? { Accept: "application/vnd.apache.parquet" } : {};
      const { headers: got, body } = await this.api.call("backtest", "/api/backtest", {
        params: { ...params, format, limit: DOWNLOAD_LIMIT },
        headers,
        blob: true,
      });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(body);
      link.download = `${params.symbol}-${params.interval}-${params.adjustment}-${params.period || `${params.start}-${params.end || "latest"}`}.${format}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      this.downloadNote.textContent = got.get("X-Next-Cursor")
        ? `Downloaded the first ${DOWNLOAD_LIMIT.toLocaleString()} bars; narrow the range for the rest.`
        : `Downloaded ${link.download}.`;
    } catch (error) {
      this.downloadNote.textContent = `Download failed: ${error.message}`;
    }
  }
}

function describeSource(source) {
  const names = { postgres: "PostgreSQL (recent years)", lake: "the Parquet lake (full history)" };
  return source.split("+").map((s) => names[s] || s).join(" and ");
}

// One marker per split or dividend, on the bar whose sessions hold its date (an N-day
// bar spans date to end_date), all above the bar: a marker below it would widen the scale
// under the lowest price, into negative prices.
function actionMarkers(bars, actions) {
  const marks = [];
  let i = 0;
  for (const action of actions) {
    while (i < bars.length && (bars[i].end_date || bars[i].date) < action.date) i++;
    if (i >= bars.length) break;
    if (bars[i].date > action.date) continue; // between two bars: not a session shown
    if (action.type === "split") {
      marks.push({ time: bars[i].date, position: "aboveBar", shape: "arrowDown", color: SPLIT_COLOR, label: splitLabel(action) });
    } else {
      marks.push({ time: bars[i].date, position: "aboveBar", shape: "circle", color: DIVIDEND_COLOR, label: dividendLabel(action) });
    }
  }
  return marks;
}

// A forward split "split 2:1", a reverse one "reverse split 1:10", a stock dividend
// "stock dividend 5%" (105 shares for 100).
function splitLabel(split) {
  if (split.adjustment_type === "stock_dividend") {
    const percent = (split.split_to / split.split_from - 1) * 100;
    return `stock dividend ${Number(percent.toFixed(2))}%`;
  }
  if (split.adjustment_type === "reverse_split" || split.split_to < split.split_from) return `reverse split ${fmtRatio(split)}`;
  return `split ${fmtRatio(split)}`;
}

function dividendLabel(dividend) {
  const kind = dividend.dividend_type && !["recurring", "unknown", "CD"].includes(dividend.dividend_type) ? ` (${dividend.dividend_type.replaceAll("_", " ")})` : "";
  return `div ${fmtPrice(dividend.amount)}${kind}`;
}

// Prices are never below zero: the axis stops at 0 rather than showing room down to -100.
function noNegativePrices(original) {
  const info = original();
  if (info?.priceRange && info.priceRange.minValue < 0) info.priceRange.minValue = 0;
  return info;
}

function fmtRatio(split) {
  const n = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return `${n(split.split_to)}:${n(split.split_from)}`;
}

function describeActions(actions) {
  const splits = actions.filter((a) => a.type === "split").length;
  const dividends = actions.length - splits;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return [splits && plural(splits, "split"), dividends && plural(dividends, "dividend")].filter(Boolean).join(" and ");
}
