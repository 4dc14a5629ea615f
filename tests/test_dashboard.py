"""The dashboard in a real browser (Debian's Chromium through Playwright) against the
real local stack: the three apps under ``chalice local``, Redis, PostgreSQL, moto,
the fake Polygon and the page's own server, as ``make run`` starts them.

Every console error fails a test, except the HTTP errors a test provokes on
purpose (a refused token, a bad condition, a stopped service), which it names.
Each panel's screenshot is saved under ``build/screenshots/`` (``SCREENSHOT_DIR``);
``make screenshots`` saves them into ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devtools.local.stack import DEMO_EMAIL, DEMO_PASSWORD
from tests.apps import ROOT

# Not into the checkout's tracked files by default: a test run leaves git status clean.
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "build" / "screenshots")
INTERVALS = ["1d", "3d", "5d", "8d", "13d", "21d", "34d"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As the workplace's machines need it: no sandbox as root, no background network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ---------------------------------------------------------------- the stack and the browser


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: run 'sudo apt-get install chromium'", False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def expect(self, text: str) -> None:
        """An error this test provokes on purpose, e.g. "status of 403"."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


def open_page(browser, stack, width=1280, height=1000, timezone="America/Los_Angeles", clock=False):
    context = browser.new_context(viewport={"width": width, "height": height}, timezone_id=timezone, locale="en-US")
    page = context.new_page()
    console = Console(page)
    if clock:
        page.clock.install()
    page.goto(stack.web.url)
    page.wait_for_selector("#watchlist[data-state=ready]")
    page.wait_for_selector("#chart[data-state=ready]")
    return context, page, console


@pytest.fixture
def dashboard(browser, stack):
    opened = []

    def make(**kwargs):
        context, page, console = open_page(browser, stack, **kwargs)
        opened.append((context, console))
        return page, console

    yield make
    problems = [error for _, console in opened for error in console.unexpected()]
    for context, _ in opened:
        context.close()
    assert not problems, f"console errors: {problems}"


def api(stack, service: str, path: str, headers: dict | None = None):
    request = urllib.request.Request(f"{stack.url(service)}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), dict(response.headers)


def all_bars(stack, query: str) -> list[dict]:
    bars, cursor = [], None
    while True:
        body, _ = api(stack, "backtest", f"/api/backtest?{query}" + (f"&cursor={cursor}" if cursor else ""))
        bars.extend(body["bars"])
        cursor = body["next_cursor"]
        if not cursor:
            return bars


def shown_price(price: float) -> str:
    """As the page shows a price: 2 decimals, the convention (the data keeps up to 4)."""
    return f"{price:,.2f}"


def exact_price(price: float) -> str:
    """As the crosshair read-out shows one: 2 to 4 decimals, the data's own precision."""
    whole, _, decimals = f"{price:,.4f}".partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"


def show_chart(page) -> None:
    """Submit the chart form and wait until that load is drawn."""
    loads = int(page.get_attribute("#chart", "data-loads") or 0)
    page.click("#chart-form button[type=submit]")
    page.wait_for_function(f"() => Number(document.querySelector('#chart').dataset.loads) > {loads}")


def sign_in(page, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> None:
    page.fill("#signin-email", email)
    page.fill("#signin-password", password)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#alerts-body:not([hidden])")
    page.wait_for_selector("#rules-table[data-count]")
    page.wait_for_selector("#channels-table[data-count]")


def shoot(locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(SCREENSHOTS / name))


# ---------------------------------------------------------------- watchlist


def test_watchlist_shows_what_the_quote_api_returns(dashboard, stack):
    page, _ = dashboard()
    answers = []
    page.on("response", lambda r: "/api/quote?" in r.url and answers.append(r))
    rows = page.locator("#watch-table tbody tr")
    symbols = [rows.nth(i).get_attribute("data-symbol") for i in range(rows.count())]
    assert symbols == ["AAPL", "MSFT", "IBM", "GOOG"]
    # What the page itself was answered (during trading hours the fake's price moves, so a
    # second request may land in the next cache fill).
    with page.expect_response(lambda r: "/api/quote?" in r.url) as answered:
        page.reload()
    page.wait_for_selector("#watch-table tbody tr[data-price]")
    body = answered.value.json()
    assert [q["symbol"] for q in body["results"]] == symbols
    expected = {q["symbol"]: q for q in body["results"]}
    for i, symbol in enumerate(symbols):
        row = rows.nth(i)
        assert float(row.get_attribute("data-price")) == expected[symbol]["price"]
        text = row.inner_text()
        assert shown_price(expected[symbol]["price"]) in text
        # The vendor's time, in the viewer's zone (the context runs in Los Angeles), and how old it is.
        assert "PST" in text and " ago" in text
        assert row.locator(".badge.hit, .badge.miss").count() == 1

    # An unknown symbol shows its own error on its own row; the others still answer.
    page.fill("#watch-symbol", "nope")
    with page.expect_response(lambda r: "/api/quote?" in r.url):
        page.click("#watch-add button")
    page.wait_for_selector("#watch-table tr[data-symbol=NOPE][data-error=unknown_symbol]")
    assert "unknown_symbol" in page.inner_text("#watch-table tr[data-symbol=NOPE]")
    assert page.locator("#watch-table tr[data-price]").count() == 4
    # The next refresh waits for what Cache-Control allows, never less.
    max_age = int(answers[-1].headers["cache-control"].split("=")[1])
    assert 0 < max_age <= 60
    assert int(page.get_attribute("#watchlist", "data-next-refresh-s")) == max_age
    # The list is kept in this browser.
    assert json.loads(page.evaluate("localStorage.getItem('watchlist.symbols')"))[-1] == "NOPE"
    page.evaluate("localStorage.removeItem('watchlist.symbols')")
    shoot(page.locator("#watchlist"), "watchlist.png")


def test_a_stopped_quote_service_shows_one_banner_and_keeps_the_last_values(dashboard, stack):
    page, console = dashboard(clock=True)
    prices = page.eval_on_selector_all("#watch-table tr[data-price]", "rows => rows.map(r => r.dataset.price)")
    assert page.is_hidden("#banner")
    stack.stop_service("quote")
    try:
        console.expect("status of 502")  # the page's origin answers 502 for a service it cannot reach
        page.clock.fast_forward(61_000)  # past the answer's max-age: the page asks again
        page.wait_for_selector("#watchlist[data-state=down]")
        assert page.is_visible("#banner")
        assert "quote service is not answering" in page.inner_text("#banner")
        assert page.locator("#banner").count() == 1
        # The last values stay on screen, marked as old.
        assert page.eval_on_selector_all("#watch-table tr.old", "rows => rows.map(r => r.dataset.price)") == prices
        assert page.locator("#watch-table .badge.old").count() == len(prices)
    finally:
        stack.serve("quote")
    page.clock.fast_forward(6_000)  # the first retry comes after 5 s
    page.wait_for_selector("#watchlist[data-state=ready]")
    assert page.is_hidden("#banner")
    assert page.locator("#watch-table tr.old").count() == 0


# ---------------------------------------------------------------- chart


@pytest.mark.parametrize("interval", INTERVALS)
def test_the_chart_draws_every_bar_the_api_returns(dashboard, stack, interval):
    page, _ = dashboard()
    page.select_option("#chart-interval", interval)
    page.check("input[name=range][value='all']")
    show_chart(page)
    expected = all_bars(stack, f"symbol=AAPL&interval={interval}&period=all&limit=10000")
    assert int(page.get_attribute("#chart", "data-bar-count")) == len(expected)
    assert page.get_attribute("#chart", "data-partial") == ("true" if expected[-1].get("partial") else "false")
    assert page.get_attribute("#chart", "data-source") == "lake+postgres"
    assert "PostgreSQL" in page.inner_text("#chart-meta") and "lake" in page.inner_text("#chart-meta")
    assert page.get_attribute("#chart-progress", "value") == "100"
    if expected[-1].get("partial"):
        assert "partial" in page.inner_text("#chart-meta")


@pytest.mark.parametrize("adjustment", ["raw", "split", "all"])
def test_the_chart_offers_each_adjustment_and_marks_splits_and_dividends(dashboard, stack, adjustment):
    page, _ = dashboard()
    page.select_option("#chart-adjustment", adjustment)
    page.check("input[name=range][value='all']")
    with page.expect_response(lambda r: "/api/backtest?" in r.url and f"adjustment={adjustment}" in r.url):
        show_chart(page)
    expected = all_bars(stack, f"symbol=AAPL&interval=1d&period=all&limit=10000&adjustment={adjustment}")
    assert page.get_attribute("#chart", "data-adjustment") == adjustment
    assert int(page.get_attribute("#chart", "data-bar-count")) == len(expected)
    # The sample's two AAPL splits and three dividends, each marked on its own session.
    assert (page.get_attribute("#chart", "data-splits"), page.get_attribute("#chart", "data-dividends")) == ("2", "3")
    markers = json.loads(page.get_attribute("#chart", "data-markers"))
    assert ["2000-06-21", "split 2:1"] in markers and ["2005-02-28", "split 2:1"] in markers
    assert ["2012-08-09", "div 2.65"] in markers
    meta = page.inner_text("#chart-meta")
    assert {"raw": "as traded", "split": "split-adjusted", "all": "total return"}[adjustment] in meta
    assert "2 splits and 3 dividends" in meta
    # The first bar as the API adjusts it: as traded, halved twice, and less the dividends too.
    first_close = expected[0]["close"]
    raw_close = all_bars(stack, "symbol=AAPL&interval=1d&period=all&limit=10000&adjustment=raw")[0]["close"]
    ratio = {"raw": 1.0, "split": 0.25}.get(adjustment)
    if ratio is not None:
        assert first_close == pytest.approx(raw_close * ratio, rel=1e-6)
    else:
        assert first_close < raw_close * 0.25
    if adjustment == "all":
        shoot(page.locator("#chart-panel"), "chart-total-return.png")


def test_crosshair_overlays_and_downloads(dashboard, stack):
    page, _ = dashboard()
    page.select_option("#chart-interval", "13d")
    page.check("input[name=range][value='5y']")
    page.check("#overlay-sma-on")
    page.fill("#overlay-sma", "50")
    with page.expect_response(lambda r: "/api/backtest?" in r.url and "overlays=sma%2850%29" in r.url) as answer:
        show_chart(page)
    body = answer.value.json()
    assert body["overlays"]["sma(50)"][-1] is not None
    box = page.locator("#chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
    readout = page.inner_text("#crosshair")
    # An N-day bar reads out its first and last session and how many sessions it holds.
    assert " – " in readout and "sessions" in readout and "sma(50)" in readout
    for letter in ("O ", "H ", "L ", "C ", "V "):
        assert letter in readout
    shoot(page.locator("#chart-panel"), "chart.png")

    with page.expect_download() as download:
        page.click("#download-csv")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0] == "Date,Open,High,Low,Close,Volume,SMA_50"
    assert len(csv_text.splitlines()) == len(body["bars"]) + 1
    with page.expect_download() as download:
        page.click("#download-parquet")
    assert Path(download.value.path()).read_bytes()[:4] == b"PAR1"


# ---------------------------------------------------------------- alerts


def alerts_api(stack, method: str, path: str, user: str, body: dict | None = None):
    """The alerts API as ``user@example.com`` (an account of the stack's pool, made if new)."""
    token = stack.token(*stack.account(user)) if user != "demo" else stack.token()
    request = urllib.request.Request(
        f"{stack.url('alerts')}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_check(stack) -> dict:
    check = subprocess.run(
        [sys.executable, "-m", "alerts.chalicelib.cli", "check"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    return json.loads(check.stdout)


def test_alerts_rules_errors_and_events(dashboard, stack):
    page, console = dashboard()
    alerts_api(stack, "POST", "/api/alerts/rules", "mallory", {"symbol": "IBM", "condition": "close > 1"})
    sign_in(page)
    assert f"Signed in as {DEMO_EMAIL}" in page.inner_text("#alerts-who")
    # The tokens are kept for this tab only: never in the URL or localStorage.
    session = json.loads(page.evaluate("sessionStorage.getItem('alerts.session')"))
    assert session["accessToken"] and session["refreshToken"]
    assert session["accessToken"] not in page.url
    assert session["refreshToken"] not in json.dumps(page.evaluate("Object.assign({}, localStorage)"))

    # A bad condition: the API's position and expected tokens, shown inline.
    console.expect("status of 400")
    bad = "close > sma(50) and"
    page.fill("#rule-symbol", "AAPL")
    page.fill("#rule-condition", bad)
    page.click("#rule-save")
    page.wait_for_selector("#rule-condition-error:not([hidden])")
    from_api = _invalid_condition(stack, bad)
    assert page.get_attribute("#rule-condition-error", "data-position") == str(from_api["position"])
    assert page.get_attribute("#rule-condition-error mark", "data-position") == str(from_api["position"])
    assert page.get_attribute("#rule-condition", "aria-invalid") == "true"
    listed = page.eval_on_selector_all("#rule-condition-error li", "items => items.map(i => i.textContent)")
    assert listed == from_api["expected"]

    # A valid rule appears in the list; another user's rule never does.
    page.fill("#rule-condition", "price < sma(50)")
    page.click("#rule-save")
    page.wait_for_selector("#rules-table tbody tr >> text=price < sma(50)")
    rules = page.inner_text("#rules-table tbody")
    assert "AAPL" in rules and "IBM" not in rules and "close > 1" not in rules
    # make run gave the demo account a webhook channel to its receiver.
    assert page.get_attribute("#channels-table tbody tr", "data-status") == "confirmed"

    # What fired, with the values and the delivery.
    run_check(stack)
    page.click("#alerts-refresh")
    page.wait_for_selector("#events-table tbody tr[data-delivery=sent]")
    event = page.inner_text("#events-table tbody tr")
    assert "AAPL" in event and "sma(50)" in event and "sent to 1 channel" in event
    shoot(page.locator("#alerts-panel"), "alerts.png")

    # Disable, edit, delete.
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 200):
        page.uncheck("#rules-table tbody tr input[type=checkbox]")
    [rule] = alerts_api(stack, "GET", "/api/alerts/rules", "demo")["rules"]
    assert rule["enabled"] is False
    page.click("#rules-table tbody tr button:text('Edit')")
    page.fill("#rule-condition", "price < sma(20)")
    page.click("#rule-save")
    page.wait_for_selector("#rules-table tbody tr >> text=price < sma(20)")
    page.click("#rules-table tbody tr button:text('Delete')")
    page.click("#rules-table tbody tr button:text('Confirm delete')")
    page.wait_for_selector("#rules-table[data-count='0']")
    assert alerts_api(stack, "GET", "/api/alerts/rules", "demo")["rules"] == []
    assert page.inner_text("#rules-table tbody") == "No rules yet: create one above."

    # A session the service does not accept returns to sign-in, saying why.
    console.expect("status of 401")
    console.expect("status of 400")  # Cognito refusing the made-up refresh token
    page.evaluate(
        "sessionStorage.setItem('alerts.session', JSON.stringify({accessToken: 'not-a-token', "
        "refreshToken: 'not-a-refresh-token', idToken: '', expiresAt: Date.now() + 3600000}))"
    )
    page.reload()
    page.wait_for_selector("#signin:not([hidden])")
    assert "sign in again" in page.inner_text("#signin-error").lower()
    assert page.evaluate("sessionStorage.getItem('alerts.session')") is None


def test_a_new_user_signs_up_confirms_and_their_alert_reaches_them_only(dashboard, stack):
    """Sign up, confirm with the emailed code (moto takes any), sign in, a rule, a webhook;
    a check runs; the page shows the delivery, the webhook got it signed, and another
    user's webhook got only that user's own firing."""
    import uuid

    page, console = dashboard()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    shoot(page.locator("#alerts-panel"), "signin.png")
    page.click("#signin >> text=Create an account")
    page.fill("#signup-email", DEMO_EMAIL)
    page.fill("#signup-password", "a long enough password")
    page.click("#signup button[type=submit]")
    console.expect("status of 400")  # Cognito refusing an address that has an account
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "exists already" in page.inner_text("#signin-error")
    page.fill("#signup-email", email)
    page.click("#signup button[type=submit]")
    page.wait_for_selector("#confirm:not([hidden])")
    assert "We emailed a confirmation code" in page.inner_text("#auth-message")
    page.fill("#confirm-code", "123456")
    page.click("#confirm button[type=submit]")
    page.wait_for_selector("#signin:not([hidden])")
    assert "confirmed" in page.inner_text("#auth-message")
    assert page.input_value("#signin-email") == email
    sign_in(page, email, "a long enough password")
    assert f"Signed in as {email}" in page.inner_text("#alerts-who")
    assert "No channels yet" in page.inner_text("#channels-table tbody")

    page.fill("#rule-symbol", "MSFT")
    page.fill("#rule-condition", "close > 0")
    page.click("#rule-save")
    page.wait_for_selector("#rules-table tbody tr >> text=close > 0")
    name = email.split("@")[0]
    page.select_option("#channel-type", "webhook")
    page.fill("#channel-target", stack.webhooks.url(name))
    page.click("#channel-add")
    page.wait_for_selector("#channels-table tbody tr[data-status=confirmed]")
    page.click("#channels-table summary")
    stack.webhooks.expect(name, page.inner_text("#channels-table details.secret code"))

    # Another user, with a rule and a webhook of their own.
    other = f"other-{uuid.uuid4().hex[:8]}"
    alerts_api(stack, "POST", "/api/alerts/channels", other, {"type": "webhook", "url": stack.webhooks.url(other)})
    theirs = alerts_api(stack, "POST", "/api/alerts/rules", other, {"symbol": "IBM", "condition": "close > 0"})
    run_check(stack)
    page.click("#alerts-refresh")
    page.wait_for_selector("#events-table tbody tr[data-delivery=sent]")
    assert "MSFT" in page.inner_text("#events-table tbody") and "IBM" not in page.inner_text("#events-table tbody")
    assert "sent to 1 channel" in page.inner_text("#events-table tbody tr")
    [mine] = stack.webhooks.deliveries(name)
    assert mine["signature_ok"] is True
    assert [f["symbol"] for f in mine["payload"]["firings"]] == ["MSFT"]
    [to_other] = stack.webhooks.deliveries(other)
    assert [f["rule_id"] for f in to_other["payload"]["firings"]] == [theirs["id"]]

    # Sign out: everywhere, so the refresh token this tab held is no longer any use.
    session = json.loads(page.evaluate("sessionStorage.getItem('alerts.session')"))
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    from alerts.chalicelib.cli import cognito_client
    from alerts.chalicelib.runtime import AlertsRuntime

    runtime = AlertsRuntime(stack.env)
    cognito = cognito_client(runtime)
    with pytest.raises(cognito.exceptions.NotAuthorizedException):
        cognito.initiate_auth(
            ClientId=runtime.settings.cognito_client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": session["refreshToken"]},
        )


def test_a_page_left_open_past_token_expiry_stays_signed_in(dashboard, stack):
    page, _ = dashboard(clock=True)
    targets = []
    page.on("request", lambda r: targets.append(r.headers.get("x-amz-target", "")))
    sign_in(page)
    first = json.loads(page.evaluate("sessionStorage.getItem('alerts.session')"))["accessToken"]
    sent = []
    page.on("request", lambda r: "/api/alerts/" in r.url and sent.append(r.headers.get("authorization")))
    page.clock.fast_forward(61 * 60 * 1000)  # an hour and a minute: the first access token has expired
    page.wait_for_function("() => Number(document.querySelector('#alerts-panel').dataset.tokenRefreshes) >= 1")
    assert "AWSCognitoIdentityProviderService.InitiateAuth" in targets
    second = json.loads(page.evaluate("sessionStorage.getItem('alerts.session')"))["accessToken"]
    assert second != first
    page.click("#alerts-refresh")
    page.wait_for_function("() => document.querySelector('#rules-table').dataset.count !== undefined")
    page.wait_for_timeout(300)
    assert sent and all(header == f"Bearer {second}" for header in sent)
    assert page.is_visible("#alerts-body") and page.is_hidden("#signin")


def test_a_forgotten_password_is_reset_from_the_page(dashboard, stack):
    import uuid

    email, _ = stack.account(f"forgetful-{uuid.uuid4().hex[:8]}")
    page, _ = dashboard()
    page.click("#signin >> text=Forgot password?")
    page.fill("#forgot-email", email)
    page.click("#forgot button[type=submit]")
    page.wait_for_selector("#reset:not([hidden])")
    page.fill("#reset-code", "123456")
    page.fill("#reset-password", "my brand new password")
    page.click("#reset button[type=submit]")
    page.wait_for_selector("#signin:not([hidden])")
    assert "password is changed" in page.inner_text("#auth-message")
    sign_in(page, email, "my brand new password")


def _invalid_condition(stack, condition: str) -> dict:
    try:
        alerts_api(stack, "POST", "/api/alerts/rules", "demo", {"symbol": "AAPL", "condition": condition})
    except urllib.error.HTTPError as error:
        return json.loads(error.read())["error"]
    raise AssertionError("the API accepted a bad condition")


# ---------------------------------------------------------------- layout and keyboard

CONTROLS = "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])"
ACCESSIBLE_NAME = """el => {
  const aria = el.getAttribute('aria-label');
  if (aria) return aria.trim();
  const by = el.getAttribute('aria-labelledby');
  if (by) return by.split(/\\s+/).map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  if (el.labels && el.labels.length) return [...el.labels].map(l => l.textContent).join(' ').trim();
  if (el.tagName === 'BUTTON' || el.tagName === 'A') return el.textContent.trim();
  return (el.getAttribute('title') || '').trim();
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_layout_and_keyboard(dashboard, stack, width):
    page, _ = dashboard(width=width, height=900, clock=True)
    sign_in(page)
    # No scheduled refresh may redraw rows while the walk below tabs through them.
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # seconds, in Playwright for Python
    # Nothing wider than the screen: a narrow phone scrolls down, never sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for panel in ("#watchlist", "#chart-panel", "#alerts-panel"):
        box = page.locator(panel).bounding_box()
        assert box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= width + 1
    controls = page.locator(CONTROLS)
    expected, unnamed = set(), []
    for i in range(controls.count()):
        control = controls.nth(i)
        if not control.is_visible() or control.is_disabled():
            continue
        key = control.evaluate("el => el.dataset.k = el.dataset.k || Math.random().toString(36).slice(2)")
        expected.add(key)
        if not control.evaluate(ACCESSIBLE_NAME):
            unnamed.append(control.evaluate("el => el.outerHTML.slice(0, 120)"))
    assert not unnamed, f"controls without a label: {unnamed}"
    # Tab from the top through the page: every control is reached by keyboard.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    reached = set()
    for _ in range(len(expected) * 3 + 10):
        page.keyboard.press("Tab")
        key = page.evaluate("document.activeElement && document.activeElement.dataset.k")
        if key:
            reached.add(key)
        if reached >= expected:
            break
    # Radio buttons share one tab stop: arrow keys move within the group.
    radios = set(page.eval_on_selector_all("input[type=radio]", "els => els.map(e => e.dataset.k)"))
    missing = expected - reached - radios
    assert not missing, page.eval_on_selector_all(
        "[data-k]",
        f"els => els.filter(e => {sorted(missing)!r}.includes(e.dataset.k)).map(e => e.outerHTML.slice(0, 120))",
    )
    assert reached & radios, "the range presets are reachable by keyboard"
    if width == 390:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "mobile.png"), full_page=True)


# ---------------------------------------------------------------- what a new user tripped on


def test_all_shows_the_whole_history_asked_for(dashboard, stack):
    """Range "all" at 1 day: the first bar drawn is the first stored (1999), not ~2008."""
    page, _ = dashboard()
    page.check("input[name=range][value='all']")
    show_chart(page)
    expected = all_bars(stack, "symbol=AAPL&interval=1d&period=all&limit=10000")
    assert len(expected) > 3000
    assert page.get_attribute("#chart", "data-first-visible") == expected[0]["date"]
    assert page.get_attribute("#chart", "data-last-visible") == expected[-1]["date"]


def test_an_empty_range_and_an_unknown_symbol_each_clear_the_chart_and_say_so(dashboard, stack):
    page, console = dashboard()
    assert int(page.get_attribute("#chart", "data-bar-count")) > 0  # AAPL, drawn at load
    page.check("input[name=range][value='custom']")
    page.fill("#chart-start", "1990-01-02")
    page.fill("#chart-end", "1990-06-29")
    show_chart(page)
    assert page.get_attribute("#chart", "data-state") == "empty"
    assert page.get_attribute("#chart", "data-bar-count") == "0" and page.inner_text("#chart-meta") == ""
    notice = page.inner_text("#chart-empty")
    assert "No bars for AAPL from 1990-01-02 to 1990-06-29" in notice and "stored history runs from" in notice
    console.expect("status of 404")
    page.check("input[name=range][value='5y']")
    page.fill("#chart-symbol", "NOPE")
    show_chart(page)
    assert page.get_attribute("#chart", "data-state") == "error"
    assert "no history is stored for NOPE" in page.inner_text("#chart-error")
    assert page.get_attribute("#chart", "data-bar-count") == "0" and page.inner_text("#chart-meta") == ""
    assert page.is_hidden("#chart-empty")


def test_markers_are_named_beside_the_chart_and_prices_read_as_the_convention(dashboard, stack):
    page, _ = dashboard()
    page.check("input[name=range][value='all']")
    show_chart(page)
    # Drawn markers carry no text (it was cut at the edge, and overlapped on one bar):
    # each is named in the list under the chart.
    assert json.loads(page.get_attribute("#chart", "data-drawn-marker-text")) == []
    named = page.locator("#chart-actions li").all_inner_texts()
    assert "2000-06-21: split 2:1" in named and "2012-08-09: div 2.65" in named
    # A reverse split and a stock dividend say what they are (the sample's ZVZZT).
    page.fill("#chart-symbol", "ZVZZT")
    show_chart(page)
    named = page.locator("#chart-actions li").all_inner_texts()
    assert "2011-05-09: reverse split 1:10" in named and "2007-06-15: stock dividend 5%" in named
    # 34-day bars: the price axis stops at zero (it reached -100).
    page.fill("#chart-symbol", "AAPL")
    page.select_option("#chart-interval", "34d")
    show_chart(page)
    assert float(page.get_attribute("#chart", "data-price-floor")) >= 0
    # The read-out keeps the data's decimals; the watchlist shows two.
    last = all_bars(stack, "symbol=AAPL&interval=34d&period=all&limit=10000")[-1]
    page.mouse.move(10, 10)
    assert f"C {exact_price(last['close'])}" in page.inner_text("#crosshair")
    row = page.locator("#watch-table tr[data-symbol=AAPL]")
    assert shown_price(float(row.get_attribute("data-price"))) in row.inner_text()
    # The remove button's cell lines up with its row (no flex layout on the cell).
    cells = row.locator("td")
    first, last_cell = cells.first.bounding_box(), cells.last.bounding_box()
    assert abs(first["y"] - last_cell["y"]) < 1 and abs(first["height"] - last_cell["height"]) < 1


def test_on_a_phone_every_action_is_reachable_without_scrolling_sideways(dashboard, stack):
    alerts_api(stack, "POST", "/api/alerts/rules", "demo", {"symbol": "MSFT", "condition": "close > 1 and rsi(14) > 1"})
    run_check(stack)
    page, _ = dashboard(width=390, height=844)
    sign_in(page)
    page.wait_for_selector("#events-table tbody tr[data-delivery]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for selector in ("#rules-table button", "#rules-table input", "#events-table .badge", "#channels-table button"):
        items = page.locator(selector)
        assert items.count() > 0, selector
        for i in range(items.count()):
            item = items.nth(i)
            item.scroll_into_view_if_needed()
            box = item.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, (selector, box)
    shoot(page.locator("#alerts-panel"), "alerts-phone.png")


def test_what_fired_follows_the_checks_on_its_own(dashboard, stack):
    page, _ = dashboard()
    sign_in(page)
    before = page.locator("#events-table tbody tr[data-delivery]").count()
    alerts_api(stack, "POST", "/api/alerts/rules", "demo", {"symbol": "IBM", "condition": "close > 2"})
    run_check(stack)
    # No click on Refresh: the page looks again by itself.
    page.wait_for_function(
        f"() => document.querySelectorAll('#events-table tbody tr[data-delivery]').length > {before}", timeout=40_000
    )


def test_a_hung_service_is_given_up_on_within_seconds(dashboard, stack):
    """A quote service that takes connections and never answers: the banner comes once
    the page gives up (10 s), not after the browser's own minutes."""
    import socket

    page, console = dashboard(clock=True)
    stack.stop_service("quote")
    hung = socket.socket()
    hung.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hung.bind(("127.0.0.1", stack.ports["quote"]))
    hung.listen(16)
    try:
        console.expect("status of 502")
        page.clock.fast_forward(61_000)  # past the answer's max-age: the page asks again, and waits
        page.clock.fast_forward(11_000)  # past the page's own limit (10 s)
        page.wait_for_selector("#watchlist[data-state=down]", timeout=20_000)
        assert "quote service" in page.inner_text("#banner")
    finally:
        hung.close()
        stack.serve("quote")


def test_each_sign_in_refusal_says_what_it_is(dashboard, stack):
    page, console = dashboard()
    console.expect("status of 400")

    def lockout(route):
        if "InitiateAuth" in (route.request.headers.get("x-amz-target") or ""):
            route.fulfill(
                status=400,
                content_type="application/x-amz-json-1.1",
                body=json.dumps({"__type": "NotAuthorizedException", "message": "Password attempts exceeded"}),
            )
        else:
            route.continue_()

    page.route("**/*", lockout)
    page.fill("#signin-email", DEMO_EMAIL)
    page.fill("#signin-password", DEMO_PASSWORD)  # the right password: still refused, and said why
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    message = page.inner_text("#signin-error")
    assert "Too many failed sign-ins" in message and "not right" not in message
    page.unroute("**/*")
    page.fill("#signin-password", "wrong-password-1")
    page.click("#signin button[type=submit]")
    page.wait_for_function("() => document.querySelector('#signin-error').textContent.includes('not right')")
