#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One end-to-end sign-in through the Eternaltwin gate in a real headless Chromium (Debian's chromium,
chromium-driver and python3-selenium), driven by spec/82-browser_spec.lua.

    /usr/bin/python3 spec/support/browser_signin.py SITE_URL MOCK_URL

From a protected page through the mock's login form and back to the page; then a replayed callback
is refused (without and with its binding cookie) and logout works. Prints one JSON object of what it
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
                   if c["name"].startswith("eternaltwin_session_st_")]
        seen["binding_cookie"] = {k: binding[0].get(k) for k in ("httpOnly", "sameSite", "path")} if binding else None
        driver.find_element(By.NAME, "login").send_keys("alice")
        driver.find_element(By.NAME, "password").send_keys("alice-password")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.current_url.startswith(site + "private/"))
        seen["back_to"] = driver.current_url
        seen["user"] = driver.find_element(By.ID, "user").text
        seen["uri"] = driver.find_element(By.ID, "uri").text
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies.get("eternaltwin_session", {})
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
        seen["binding_left"] = any(c["name"].startswith("eternaltwin_session_st_")
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
        seen["session_after_logout"] = any(c["name"] == "eternaltwin_session" for c in driver.get_cookies())
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(seen))


if __name__ == "__main__":
    t0 = time.time()
    main()
    sys.stderr.write("browser sign-in: %.1f s\n" % (time.time() - t0))
