"""The sandbox page in a real headless Chromium: a customer and an agent talk, then the agent archives."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not CHROMIUM.exists():
    pytest.skip(
        "headless browser test needs Chromium at /usr/bin/chromium (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from norbit_connectors.sandbox import SandboxServer  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_SECONDS = 30


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    with tempfile.TemporaryDirectory(prefix="norbit-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # The page is on 127.0.0.1: never through a proxy from the environment.
        options.add_argument("--no-proxy-server")
        service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(data=str(tmp_path / "sandbox.sqlite3")) as server:
        yield server


def until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Poll ``condition`` (bounded); elements re-rendered between find and use are looked up again."""

    def attempt(d: WebDriver) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(attempt, message=f"waiting for {what}")


def shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"sandbox-{name}.png"))


def texts(driver: WebDriver, css: str) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def shows(css: str, text: str) -> Callable[[WebDriver], bool]:
    """Some element matching ``css`` contains ``text``."""
    return lambda d: any(text in found for found in texts(d, css))


def click(driver: WebDriver, css: str, what: str) -> None:
    def done(d: WebDriver) -> bool:
        elements = [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_enabled()]
        if not elements:
            return False
        elements[-1].click()
        return True

    until(driver, done, what)


def test_customer_and_agent_talk_then_archive(browser: WebDriver, sandbox: SandboxServer) -> None:
    driver = browser
    try:
        driver.get(sandbox.url)
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#channel-list .channel"), "the channel list")
        shot(driver, "01-start")

        # The customer introduces herself and writes.
        name = driver.find_element(By.ID, "customer-name")
        name.send_keys("Zoë Smith", Keys.TAB)
        message = driver.find_element(By.ID, "customer-text")
        message.send_keys("Hello, my parcel is lost", Keys.ENTER)
        until(driver, shows("#customer-messages li.customer", "Hello, my parcel is lost"), "the customer's message")

        # Slack: the conversation's channel appears, and the notice card in #support.
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#channel-list [data-name="zoe-smith"]'), "#zoe-smith")
        click(driver, '#channel-list [data-name="support"]', "#support")
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#slack-messages .card button.join"), "the card")
        card = driver.find_element(By.CSS_SELECTOR, "#slack-messages .card").text
        assert "New conversation" in card and "Hello, my parcel is lost" in card and "Zoë Smith" in card
        shot(driver, "02-notice-card")

        # Cara joins from the card.
        Select(driver.find_element(By.ID, "agent")).select_by_visible_text("Cara Diaz")
        click(driver, "#slack-messages .card button.join", "the Join button")
        until(driver, shows("#slack-messages .card", "Joined by @Cara Diaz"), "'Joined by' on the card")
        click(driver, '#channel-list [data-name="zoe-smith"]', "#zoe-smith")
        until(driver, lambda d: "Cara Diaz" in d.find_element(By.ID, "channel-members").text, "Cara in the channel")
        assert "Hello, my parcel is lost" in driver.find_element(By.ID, "slack-messages").text
        shot(driver, "03-joined")

        # Cara answers; the customer sees it.
        driver.find_element(By.ID, "agent-text").send_keys("Hi Zoë, I'm tracking it now :mag:", Keys.ENTER)
        reply = shows("#customer-messages li.agent", "Hi Zoë, I'm tracking it now 🔍")
        until(driver, reply, "the agent's reply on the customer side")
        agent_line = driver.find_elements(By.CSS_SELECTOR, "#customer-messages li.agent")[-1].text
        assert agent_line.startswith("Cara Diaz")
        shot(driver, "04-reply")

        # /archive archives both sides.
        driver.find_element(By.ID, "agent-text").send_keys("/archive", Keys.ENTER)
        until(
            driver, lambda d: "archived" in d.find_element(By.ID, "customer-status").text, "the customer side archived"
        )
        until(driver, shows("#channel-title[data-archived=true]", "zoe-smith"), "the channel archived")
        assert "Only visible to you: Archiving this conversation" in driver.find_element(By.ID, "notes").text
        archived = driver.find_element(By.CSS_SELECTOR, '#channel-list [data-name="zoe-smith"]')
        assert archived.get_attribute("data-archived") == "true"
        shot(driver, "05-archived")
        # The page logged no errors along the way.
        assert [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"] == []
    except (AssertionError, WebDriverException):
        shot(driver, "failure")
        raise
