#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One end-to-end sign-in through the Eternaltwin gate in a real headless Chromium (Debian's chromium,
chromium-driver and python3-selenium), driven by spec/82-browser_spec.lua.

    /usr/bin/python3 spec/support/browser_signin.py SITE_URL MOCK_URL

From a protected page through the mock's login form and back to the page; then a replayed callback
is refused (without and with its binding cookie) and logout works (the home page's button: a
same-origin POST). Then many protected pages opened with long URLs keep the gate's cookies under
4 KB, and two tabs signing in at once both come back to their own page. Prints one JSON object of what it
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


def main():
    site, mock = sys.argv[1], sys.argv[2]
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
        driver.set_page_load_timeout(30)
        wait = WebDriverWait(driver, 30, ignored_exceptions=(NoSuchElementException,
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
        # Replayed in the same browser: refused with a 4xx page (the callback cleared its cookie)...
        seen["binding_left"] = any(is_binding(c["name"])
                                   for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"])
        driver.get(callbacks[0])
        seen["replay_title"] = driver.title
        seen["replay_reason"] = driver.find_element(By.TAG_NAME, "p").text
        # ...and again with the binding cookie put back: the state is used up.
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
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(seen))


if __name__ == "__main__":
    t0 = time.time()
    main()
    sys.stderr.write("browser sign-in: %.1f s\n" % (time.time() - t0))
