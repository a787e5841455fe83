"""The web UI in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

Run by tests/web_ui.rs against a running server; every step asserts, and any failure exits non-zero with the step
named. Screenshots of the main pages go to $SHOTS. Accessibility: axe-core (bundled by axe-selenium-python, offline)
on every main page, failing on serious or critical violations, and keyboard navigation checked by Tab.
"""

import os
import sys
import time

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["BASE"]
USER = os.environ["UI_USER"]
PASSWORD = os.environ["UI_PASSWORD"]
TARGET = os.environ["TARGET"]
SHOTS = os.environ["SHOTS"]
STEP = "start"


def step(name):
    global STEP
    STEP = name
    print(f"step: {name}", flush=True)


def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--ignore-certificate-errors", "--disable-gpu", "--no-first-run"]:
        options.add_argument(arg)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def wait_for(d, css):
    return WebDriverWait(d, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def shot(d, name):
    d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def accessible(d, page):
    axe = Axe(d)
    axe.inject()
    results = axe.run()
    bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{page}: accessibility violations: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad)


def labelled(d, page):
    """Every visible form control has a label (a <label for>, a wrapping <label> or aria-label)."""
    for e in d.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
        ok = d.execute_script(
            "const e = arguments[0]; return !!(e.labels && e.labels.length) || e.hasAttribute('aria-label');", e)
        assert ok, f"{page}: a control without a label: {e.get_attribute('outerHTML')[:120]}"


def main():
    d = driver()
    try:
        step("an unauthenticated visit lands on the login page")
        d.get(BASE + "/ui/devices")
        wait_for(d, "form[action='/ui/login']")
        assert "/ui/login" in d.current_url, d.current_url
        labelled(d, "login")
        accessible(d, "login")
        shot(d, "login")

        step("keyboard: Tab reaches the name, the password and the button in order")
        body = d.find_element(By.TAG_NAME, "body")
        body.click()
        order = []
        for _ in range(6):
            d.switch_to.active_element.send_keys(Keys.TAB)
            order.append(d.switch_to.active_element.get_attribute("id"))
        assert order[:2] == ["user", "password"], order
        assert "login" in order, order

        step("log in with a user name and password, typed")
        d.find_element(By.ID, "user").send_keys(USER)
        d.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
        wait_for(d, "table.devices")
        assert d.current_url.endswith("/ui/devices"), d.current_url
        cookies = {c["name"]: c for c in d.get_cookies()}
        session = cookies["provisor_session"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict", session

        step("dashboard")
        d.get(BASE + "/ui/")
        wait_for(d, "#total")
        assert int(d.find_element(By.ID, "total").text) >= 10000, d.find_element(By.ID, "total").text
        labelled(d, "dashboard")
        accessible(d, "dashboard")
        shot(d, "dashboard")

        step("keyboard: the main navigation is reachable by Tab")
        d.find_element(By.TAG_NAME, "body").click()
        reached = set()
        for _ in range(12):
            d.switch_to.active_element.send_keys(Keys.TAB)
            reached.add(d.switch_to.active_element.text)
        assert {"Devices", "Groups", "Import", "Audit"} <= reached, reached

        step("find one device among 10,000")
        d.get(BASE + "/ui/devices")
        box = wait_for(d, "#q")
        box.send_keys(TARGET[4:] + Keys.ENTER)
        link = wait_for(d, f"a[href='/ui/devices/{TARGET}']")
        rows = d.find_elements(By.CSS_SELECTOR, "table.devices tbody tr")
        assert len(rows) == 1, f"{len(rows)} rows for {TARGET[4:]}"
        labelled(d, "devices")
        accessible(d, "devices")
        shot(d, "devices")
        link.click()
        wait_for(d, "#effective")

        def effective(name):
            row = d.find_element(By.CSS_SELECTOR, f"#effective tr[data-name='{name}']")
            return row.find_element(By.CSS_SELECTOR, ".value").text, row.find_element(By.CSS_SELECTOR, ".from").text

        assert effective("Resync_Periodic") == ("3600", "lobby"), effective("Resync_Periodic")
        assert effective("Password_1_")[0] == "********", effective("Password_1_")
        assert "secret-target" not in d.page_source
        labelled(d, "device")
        accessible(d, "device")
        shot(d, "device")

        step("change a group parameter and see the device's effective value change")
        d.get(BASE + "/ui/groups/lobby")
        wait_for(d, "#g-name").send_keys("Resync_Periodic")
        d.find_element(By.ID, "g-value").send_keys("600")
        d.find_element(By.ID, "save-group").click()
        wait_for(d, "p.notice")
        value = d.find_element(By.CSS_SELECTOR, "#group-params tr[data-name='Resync_Periodic'] .value").text
        assert value == "600", value
        labelled(d, "group")
        accessible(d, "group")
        shot(d, "group")
        d.get(BASE + f"/ui/devices/{TARGET}")
        wait_for(d, "#effective")
        assert effective("Resync_Periodic") == ("600", "lobby"), effective("Resync_Periodic")

        step("import a CSV with a bad row and see the error in place")
        d.get(BASE + "/ui/import")
        area = wait_for(d, "#csv")
        csv = "mac,model,group\n0e0000000001,CP-7841-3PCC,lobby\nnot-a-mac,CP-7841-3PCC,lobby\n0e0000000003,CP-7841-3PCC,nogroup\n"
        d.execute_script("arguments[0].value = arguments[1];", area, csv)
        d.find_element(By.ID, "check").click()
        wait_for(d, "#rows")
        bad = d.find_elements(By.CSS_SELECTOR, "#rows tr.bad")
        assert [b.find_element(By.CSS_SELECTOR, "td").text for b in bad] == ["3", "4"], [b.text for b in bad]
        assert bad[0].get_attribute("aria-invalid") == "true"
        assert "nogroup" in bad[1].find_element(By.CSS_SELECTOR, ".problem").text, bad[1].text
        assert d.find_element(By.CSS_SELECTOR, "p.error").is_displayed()
        labelled(d, "import")
        accessible(d, "import")
        shot(d, "import")

        step("a good CSV: dry run, then import")
        area = d.find_element(By.ID, "csv")
        d.execute_script("arguments[0].value = arguments[1];", area, "mac,model,group\n0e0000000001,CP-7841-3PCC,lobby\n")
        d.find_element(By.ID, "check").click()
        wait_for(d, "#diff")
        assert "+ 0e0000000001" in d.find_element(By.ID, "diff").text
        d.find_element(By.ID, "apply").click()
        wait_for(d, "p.notice")
        assert "1 new" in d.find_element(By.CSS_SELECTOR, "p.notice").text

        step("rotate a key")
        d.get(BASE + f"/ui/devices/{TARGET}")
        wait_for(d, "#rotate").click()
        notice = wait_for(d, "p.notice").text
        assert "New keys" in notice, notice

        step("audit view")
        d.get(BASE + f"/ui/audit?device={TARGET}")
        wait_for(d, "#audit")
        assert "rotated its keys" in d.find_element(By.ID, "audit").text
        labelled(d, "audit")
        accessible(d, "audit")
        shot(d, "audit")

        step("live events show a request as it happens")
        d.get(BASE + "/ui/events")
        wait_for(d, "#live")
        time.sleep(0.5)
        events = d.current_window_handle
        d.switch_to.new_window("tab")
        d.get(BASE + "/ui/groups/lobby")
        wait_for(d, "#g-name").send_keys("Display_Name_1_")
        d.find_element(By.ID, "g-value").send_keys("Lobby phone")
        d.find_element(By.ID, "save-group").click()
        wait_for(d, "p.notice")
        d.close()
        d.switch_to.window(events)
        WebDriverWait(d, 10).until(
            lambda d: any("Display_Name_1_" in li.text for li in d.find_elements(By.CSS_SELECTOR, "#live li")))
        accessible(d, "events")
        shot(d, "events")

        step("log out: the session is gone")
        d.get(BASE + "/ui/")
        wait_for(d, "#logout").click()
        wait_for(d, "form[action='/ui/login']")
        d.get(BASE + "/ui/devices")
        wait_for(d, "form[action='/ui/login']")
        assert "/ui/login" in d.current_url
        print("browser: every step passed", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report the step and fail
        print(f"FAILED at step {STEP!r}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
