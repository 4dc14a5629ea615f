"""The dashboard: the full daily history drawn after its data arrives, in Chromium."""

from __future__ import annotations

import os
import statistics

from devtools.bench.common import verdict


def bench_web(redis_url: str, pg_url: str, runs: int = 7) -> None:
    """The dashboard from the same stack as ``make run``: first paint, the 13-year
    daily chart's drawing time once its data is in, and the page's own weight."""
    import gzip

    import redis
    from playwright.sync_api import sync_playwright

    from devtools.doubles.servers import ThrowawayDatabase, free_ports
    from devtools.local.stack import DEFAULT_PORTS, Stack
    from devtools.local.web_site import CHART_LIBRARY, own_code_sizes

    print("\n== dashboard ==")
    sizes = own_code_sizes()
    own = sum(sizes.values())
    library = len(gzip.compress(CHART_LIBRARY.read_bytes(), 9))
    print(
        f"the page's own HTML, JS and CSS, gzipped: {own / 1024:.1f} KB in {len(sizes)} files "
        f"(goal <= 100 KB: {verdict(own <= 100 * 1024)}); the chart library apart: {library / 1024:.1f} KB"
    )
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    db_redis = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(db_redis).flushdb()
    with ThrowawayDatabase(pg_url, "mds_bench_web") as database_url:
        env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "LAKE_URI", "AWS_ENDPOINT_URL")}
        env.update(REDIS_URL=db_redis, DATABASE_URL=database_url)
        stack = Stack(ports=free_ports(DEFAULT_PORTS), env=env, quiet=True)
        try:
            stack.start(check_loop=False)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
                )
                paints, ready, draws, bars = [], [], [], None
                for _ in range(runs):
                    # A new context each time: a first visit, nothing cached.
                    context = browser.new_context(viewport={"width": 1280, "height": 1000})
                    page = context.new_page()
                    page.goto(stack.web.url)
                    page.wait_for_selector("#watchlist[data-state=ready]")
                    page.wait_for_selector("#chart[data-state=ready]")
                    paints.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                    ready.append(page.evaluate("performance.now()"))
                    page.select_option("#chart-interval", "1d")
                    page.check("input[name=range][value='all']")
                    page.click("#chart-form button[type=submit]")
                    page.wait_for_function("() => Number(document.querySelector('#chart').dataset.loads) >= 2")
                    draws.append(page.evaluate("performance.getEntriesByName('chart:draw').at(-1).duration"))
                    bars = int(page.get_attribute("#chart", "data-bar-count"))
                    context.close()
                browser.close()
        finally:
            stack.stop()
    fcp, drawn = statistics.median(paints), statistics.median(draws)
    print(
        f"first contentful paint from the local stack, {runs} cold visits: median {fcp:.0f} ms "
        f"(min {min(paints):.0f}, max {max(paints):.0f}); goal <= 1 s: {verdict(fcp <= 1000)}; "
        f"watchlist and chart on screen at a median {statistics.median(ready):.0f} ms"
    )
    print(
        f"the full daily history ({bars} bars) drawn {drawn:.0f} ms after its data arrived "
        f"(median of {runs}; min {min(draws):.0f}, max {max(draws):.0f}); goal <= 300 ms: {verdict(drawn <= 300)}"
    )
