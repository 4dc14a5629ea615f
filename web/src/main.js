// The dashboard's entry: read where the three services are, then start each panel.

import { Alerts } from "./alerts.js";
import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { Chart } from "./chart.js";
import { Banner } from "./dom.js";
import { Watchlist } from "./watchlist.js";

async function main() {
  const banner = new Banner(document.getElementById("banner"));
  let config;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    config = await response.json();
  } catch {
    banner.set("config", "The page's configuration (config.json) could not be read, so it does not know where the services are.");
    return;
  }
  const api = new Api(config);
  const chart = new Chart({ api, banner });
  const watchlist = new Watchlist({ api, banner, onChart: (symbol) => chart.show(symbol) });
  const alerts = new Alerts({ api, banner, auth: new Auth(config.auth) });
  document.body.dataset.ready = "true";
  watchlist.refresh();
  chart.load();
  alerts.start();
}

main();
