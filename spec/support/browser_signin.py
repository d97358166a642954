#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One end-to-end sign-in through the Eternaltwin gate in a real headless Chromium (Debian's chromium,
chromium-driver and python3-selenium), driven by spec/gate_browser_spec.lua.

    /usr/bin/python3 spec/support/browser_signin.py SITE_URL MOCK_URL [SCREENSHOT_DIR]

From a protected page through the mock's login form and back to the page; then a replayed callback
goes on to its page (Back, reload) and is refused once its binding cookie is put back, and logout works (the home page's button: a
same-origin POST). Then many protected pages opened with long URLs keep the gate's cookies under
4 KB, and two tabs signing in at once both come back to their own page. Last, every page the gate
draws is screenshot (PNG in SCREENSHOT_DIR) and checked for a link back. Prints one JSON object of what it
saw (the spec asserts on it); exits 0 unless the browser itself could not be driven.
"""
import json
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def is_binding(name):
    """The gate's binding cookies on http: eternaltwin_st1 to eternaltwin_st4."""
    return name.startswith("eternaltwin_st") and name[len("eternaltwin_st"):].isdigit()


def login(driver):
    """Fills the mock's login form as alice and submits it."""
    driver.find_element(By.NAME, "login").send_keys("alice")
    driver.find_element(By.NAME, "password").send_keys("alice-password")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def page_seen(driver, site, shots, name):
    """A screenshot of the page shown (PNG in shots/), its title, and whether it links back to the site."""
    path = "%s/%s.png" % (shots, name)
    driver.save_screenshot(path)
    with open(path, "rb") as f:
        png = f.read()
    links = [a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]
    return {"title": driver.title, "png": png[:8] == b"\x89PNG\r\n\x1a\n" and len(png),
            "link_back": any(h == site or h.startswith(site) and "/oauth/" not in h for h in links),
            "reason": (driver.find_elements(By.TAG_NAME, "p") or [None])[0].text
                      if driver.find_elements(By.TAG_NAME, "p") else ""}


def started_state(driver, site, mock, path):
    """Starts a sign-in at path (to the mock's login form): the state of its authorize URL."""
    driver.get(site + path)
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(mock))
    logs = driver.get_log("performance")
    for entry in reversed(logs):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if "state=" in url and url.startswith(mock + "oauth/authorize"):
                return url.split("state=")[1].split("&")[0]
    raise RuntimeError("no authorize URL seen")


def gate_pages(driver, site, mock, shots):
    """Every page the gate draws, each screenshot and checked for a link back to the site."""
    pages = {}
    driver.switch_to.window(driver.window_handles[0])
    driver.get(site + "logout")                              # signed in (the two tabs): the button
    pages["sign_out"] = page_seen(driver, site, shots, "sign_out")
    driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url == site)
    driver.execute_cdp_cmd("Network.deleteCookies", {"name": "sid", "url": mock})
    driver.get(site + "oauth/callback?error=access_denied&state=x")
    pages["declined"] = page_seen(driver, site, shots, "declined")
    driver.get(site + "oauth/callback?error=server_error")
    pages["upstream_error"] = page_seen(driver, site, shots, "upstream_error")
    driver.get(site + "oauth/callback")
    pages["no_code"] = page_seen(driver, site, shots, "no_code")
    driver.get(site + "oauth/callback?code=x&state=not-a-state")
    pages["bad_state"] = page_seen(driver, site, shots, "bad_state")
    state = started_state(driver, site, mock, "private/misconfigured")
    driver.get(site + "oauth/callback?code=junk&state=" + state)
    pages["misconfigured"] = page_seen(driver, site, shots, "misconfigured")
    state = started_state(driver, site, mock, "private/foreign")
    for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]:
        if is_binding(c["name"]):
            driver.execute_cdp_cmd("Network.deleteCookies", {"name": c["name"], "url": site})
    driver.get(site + "oauth/callback?code=x&state=" + state)
    pages["foreign"] = page_seen(driver, site, shots, "foreign")
    driver.get(site)
    driver.execute_script("""
        const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        document.body.appendChild(f); f.submit();""", site + "private")
    WebDriverWait(driver, 30).until(lambda d: d.title.startswith("401"))
    pages["sign_in_first"] = page_seen(driver, site, shots, "sign_in_first")
    driver.get(site + "logout")
    pages["not_signed_in"] = page_seen(driver, site, shots, "not_signed_in")
    driver.get(mock + "login")
    driver.execute_script("""
        const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        document.body.appendChild(f); f.submit();""", site + "logout")
    WebDriverWait(driver, 30).until(lambda d: d.current_url == site + "logout")
    pages["cross_site_sign_out"] = page_seen(driver, site, shots, "cross_site_sign_out")
    return pages


def main():
    site, mock = sys.argv[1], sys.argv[2]
    shots = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="gate-shots-")
    profile = tempfile.mkdtemp(prefix="gate-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--user-data-dir=" + profile):
        opts.add_argument(arg)
    # The performance log lists every request, redirects included: the callback URL is in it.
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    seen = {}
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(90)   # deadlines, generous for a loaded machine
        wait = WebDriverWait(driver, 90, ignored_exceptions=(NoSuchElementException,
                                                              StaleElementReferenceException))
        start = site + "private/page?from=browser&x=%20y"
        driver.get(start)
        # Not signed in: the gate sent us to Eternaltwin, which asks for a login.
        wait.until(lambda d: d.current_url.startswith(mock + "login"))
        seen["login_page"] = driver.current_url.split("?")[0]
        # The binding cookie the gate set with its redirect (HttpOnly, Path=/oauth/callback): kept,
        # to replay the callback with it later.
        binding = [c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                   if is_binding(c["name"])]
        seen["binding_cookie"] = {k: binding[0].get(k) for k in ("httpOnly", "sameSite", "path")} if binding else None
        login(driver)
        wait.until(lambda d: d.current_url.startswith(site + "private/"))
        seen["back_to"] = driver.current_url
        seen["user"] = driver.find_element(By.ID, "user").text
        seen["uri"] = driver.find_element(By.ID, "uri").text
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies.get("eternaltwin", {})
        seen["session_cookie"] = {k: session.get(k) for k in ("httpOnly", "sameSite", "secure", "path")}
        seen["session_has_expiry"] = "expiry" in session
        # The callback URL, from the network log.
        callbacks = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                url = msg["params"]["request"]["url"]
                if url.startswith(site + "oauth/callback?") and url not in callbacks:
                    callbacks.append(url)
        seen["callbacks"] = len(callbacks)
        # Replayed in the browser that completed it (Back, reload): the binding slot holds a
        # "completed" marker, and the browser goes on to its page...
        marker = [c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                  if is_binding(c["name"]) and c["value"] != binding[0]["value"]]
        seen["completed_marker"] = len(marker) == 1
        driver.get(callbacks[0])
        seen["replay_url"] = driver.current_url
        seen["replay_user"] = driver.find_element(By.ID, "user").text
        driver.back()
        driver.refresh()
        seen["reload_url"] = driver.current_url
        # ...and again with the original binding cookie put back: the state is used up.
        c = binding[0]
        driver.execute_cdp_cmd("Network.setCookie", {"name": c["name"], "value": c["value"], "url": site,
                                                     "path": c["path"], "httpOnly": True, "sameSite": "Lax"})
        driver.get(callbacks[0])
        seen["replay2_title"] = driver.title
        seen["replay2_reason"] = driver.find_element(By.TAG_NAME, "p").text
        # Still signed in; then sign out with the home page's button (a POST).
        driver.get(site)
        seen["home_before_logout"] = driver.find_element(By.ID, "who").text
        driver.find_element(By.ID, "logout").click()
        wait.until(lambda d: d.find_element(By.ID, "who").text == "Not signed in")
        seen["home_after_logout"] = driver.find_element(By.ID, "who").text
        seen["after_logout_url"] = driver.current_url
        seen["session_after_logout"] = any(c["name"] == "eternaltwin" for c in driver.get_cookies())
        # A cross-site page cannot sign anyone out: sign in again, then a form on the mock's origin
        # (another site) posts to /logout.
        driver.get(site + "private/again")
        wait.until(lambda d: d.current_url.startswith(mock + "login") or d.current_url.startswith(site + "private/"))
        if driver.current_url.startswith(mock + "login"):
            login(driver)
        wait.until(lambda d: d.current_url.startswith(site + "private/again"))
        driver.get(mock + "login")
        driver.execute_script("""
            const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
            document.body.appendChild(f); f.submit();""", site + "logout")
        wait.until(lambda d: d.current_url == site + "logout")
        seen["cross_site_logout_title"] = driver.title
        driver.get(site)
        seen["home_after_cross_site_logout"] = driver.find_element(By.ID, "who").text
        # Signed out (the button), then many protected pages with long URLs: the gate's cookies stay
        # under 4 KB.
        driver.get(site + "logout")
        driver.find_element(By.ID, "sign-out").click()
        wait.until(lambda d: d.current_url == site)
        # Signed out at the mock too (its session cookie, on the same host), so that each protected
        # page below stops at its login form: sign-ins started, none finished.
        driver.execute_cdp_cmd("Network.deleteCookies", {"name": "sid", "url": mock})
        for i in range(12):
            driver.get(site + "private/" + "p" * 400 + "?n=%d&q=" % i + "q" * 500)
            wait.until(lambda d: d.current_url.startswith(mock + "login"))
        gate = [c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                if c["name"] == "eternaltwin" or is_binding(c["name"])]
        seen["gate_cookies"] = len(gate)
        seen["gate_cookie_bytes"] = sum(len(c["name"]) + len(c["value"]) + 2 for c in gate)
        # Two tabs signing in at once: both come back to their own page.
        driver.switch_to.new_window("tab")
        driver.get(site + "private/one")
        wait.until(lambda d: d.current_url.startswith(mock + "login"))
        tab1 = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(site + "private/two?tab=2")
        wait.until(lambda d: d.current_url.startswith(mock + "login"))
        login(driver)
        wait.until(lambda d: d.current_url.startswith(site + "private/"))
        seen["tab_two"] = driver.find_element(By.ID, "uri").text
        driver.switch_to.window(tab1)
        login(driver)
        wait.until(lambda d: d.current_url.startswith(site + "private/"))
        seen["tab_one"] = driver.find_element(By.ID, "uri").text
        seen["pages"] = gate_pages(driver, site, mock, shots)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(seen))


if __name__ == "__main__":
    t0 = time.time()
    main()
    sys.stderr.write("browser sign-in: %.1f s\n" % (time.time() - t0))
