#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A sign-in across two nodes in a real headless Chromium (chromium, chromium-driver, python3-selenium),
driven by spec/gate_cluster_spec.lua.

    /usr/bin/python3 spec/support/browser_cluster.py NODE_A_URL NODE_B_URL MOCK_URL

Opens a protected page on node A, signs in at the mock's login form as alice; the redirect_uri names
node B, so the callback lands on node B, which sends the browser on to the page (on node B). Then the
same page on node A, with the same cookie (127.0.0.1 on both: cookies do not isolate by port). Prints
one JSON object of what it saw; exits 0 unless the browser itself could not be driven.
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
    node_a, node_b, mock = sys.argv[1], sys.argv[2], sys.argv[3]
    profile = tempfile.mkdtemp(prefix="cluster-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--user-data-dir=" + profile):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    seen = {}
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(30)
        wait = WebDriverWait(driver, 30, ignored_exceptions=(NoSuchElementException,
                                                              StaleElementReferenceException))
        driver.get(node_a + "private/page?from=a")
        wait.until(lambda d: d.current_url.startswith(mock + "login"))
        seen["login_page"] = driver.current_url.split("?")[0]
        driver.find_element(By.NAME, "login").send_keys("alice")
        driver.find_element(By.NAME, "password").send_keys("alice-password")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.current_url.startswith(node_b + "private/"))
        seen["landed"] = driver.current_url
        seen["user_b"] = driver.find_element(By.ID, "user").text
        seen["uri_b"] = driver.find_element(By.ID, "uri").text
        callbacks = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                url = msg["params"]["request"]["url"]
                if "/oauth/callback?" in url and url not in callbacks:
                    callbacks.append(url)
        seen["callbacks"] = callbacks
        driver.get(node_a + "private/other")
        seen["url_a"] = driver.current_url
        seen["user_a"] = driver.find_element(By.ID, "user").text
        driver.get(node_a)
        seen["home_a"] = driver.find_element(By.ID, "who").text
        seen["cookies"] = [{"name": c["name"], "value": c["value"], "httpOnly": c.get("httpOnly")}
                           for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                           if c.get("domain") == "127.0.0.1" and not c["name"] == "sid"]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(seen))


if __name__ == "__main__":
    t0 = time.time()
    main()
    sys.stderr.write("browser cluster sign-in: %.1f s\n" % (time.time() - t0))
