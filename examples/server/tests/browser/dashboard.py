"""The dashboard in a real headless browser, Chromium (chromedriver) or
Firefox (geckodriver), driven over WebDriver with selenium, against a
running cairn-server.

Run by scripts/browser-test.sh, which starts the server and passes:
  CAIRN_BROWSER  chromium (default) or firefox
  CAIRN_BASE     http://127.0.0.1:PORT
  CAIRN_ADMIN    an admin token      CAIRN_READER  a read-only token
  CAIRN_DATA     the target svc's folder `data` on disk
  CAIRN_SHOTS    where screenshots go (target/dashboard-screens)
Each step asserts what an operator would see; any failure exits non-zero.
"""

import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.firefox.service import Service as FirefoxService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["CAIRN_BASE"]
ADMIN = os.environ["CAIRN_ADMIN"]
READER = os.environ["CAIRN_READER"]
DATA = os.environ["CAIRN_DATA"]
SHOTS = os.environ["CAIRN_SHOTS"]
os.makedirs(SHOTS, exist_ok=True)
downloads = tempfile.mkdtemp(prefix="cairn-downloads-")
profile = tempfile.mkdtemp(prefix="cairn-chromium-")

BROWSER = os.environ.get("CAIRN_BROWSER", "chromium")


def chromium():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        "--user-data-dir=" + profile,
    ):
        opts.add_argument(flag)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": downloads, "download.prompt_for_download": False},
    )
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads}
    )
    return d


def firefox():
    opts = webdriver.FirefoxOptions()
    opts.binary_location = "/usr/bin/firefox-esr"
    opts.add_argument("-headless")
    opts.add_argument("-profile")
    opts.add_argument(profile)
    for key, value in {
        "browser.download.folderList": 2,
        "browser.download.dir": downloads,
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.helperApps.neverAsk.saveToDisk": "application/octet-stream,application/zstd",
        # A closed network: no update, telemetry or captive-portal checks.
        "app.update.disabledForTesting": True,
        "network.captive-portal-service.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
    }.items():
        opts.set_preference(key, value)
    geckodriver = os.environ.get("CAIRN_GECKODRIVER", "geckodriver")
    d = webdriver.Firefox(service=FirefoxService(geckodriver), options=opts)
    d.set_window_size(1280, 1000)
    return d


driver = firefox() if BROWSER == "firefox" else chromium()
SHOTS = os.path.join(SHOTS, BROWSER)
os.makedirs(SHOTS, exist_ok=True)
# Pages change under a wait: a vanished element is looked for again.
wait = WebDriverWait(
    driver, 60, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
)
step_no = 0


def step(what):
    global step_no
    step_no += 1
    print(f"browser ({BROWSER}): {step_no}. {what}", flush=True)


def shot(name, width=1280):
    """The whole page, not only what the window shows."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1280, 1000)


def css(selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def h1():
    return css("main h1").text


def login(token):
    driver.get(BASE + "/")
    wait.until(EC.url_contains("/login"))
    field = css("input#token")
    # The field is labelled for screen readers.
    assert css("label[for=token]").text == "API token"
    field.send_keys(token)
    css("form[action='/login'] button[type=submit]").click()
    wait.until(lambda d: h1() == "Overview")


def wait_job_done():
    """On a job page: the live bar (SSE) reaches its end, and the page
    shows the result; returns the bar's state and value at the end."""
    seen = {}

    def ended(d):
        bar = css("[data-job]")
        state = bar.get_attribute("data-state")
        if state in ("succeeded", "failed"):
            seen["end"] = (state, css("[data-job] progress").get_attribute("value"))
        return "end" in seen

    wait.until(ended)
    # The page reloads itself to show the job's result.
    wait.until(lambda d: all_css("main details"))
    return seen["end"]


def post_from_page(path, fields):
    """A form post from the page's own origin (with its cookie), by fetch;
    returns the status."""
    return driver.execute_async_script(
        """
        const [path, fields, done] = arguments;
        fetch(path, {method: 'POST', credentials: 'same-origin', redirect: 'manual',
                     body: new URLSearchParams(fields)})
          .then(r => done(r.status), e => done(String(e)));
        """,
        path,
        fields,
    )


try:
    readme = os.path.join(DATA, "readme.txt")
    saved = open(readme, "rb").read()

    step("the login page; a wrong token is refused")
    driver.get(BASE + "/login")
    shot("login")
    css("input#token").send_keys("cairn_not_a_token")
    css("form[action='/login'] button[type=submit]").click()
    wait.until(lambda d: all_css("[role=alert]"))
    assert "not one this server knows" in css("[role=alert]").text

    step("log in with the keyboard alone: Tab to the token, type it, Enter")
    driver.get(BASE + "/login")
    body = css("body")
    for _ in range(6):
        if driver.switch_to.active_element.get_attribute("id") == "token":
            break
        body.send_keys(Keys.TAB) if _ == 0 else driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "token", "Tab never reached the token"
    driver.switch_to.active_element.send_keys(ADMIN + Keys.ENTER)
    wait.until(lambda d: h1() == "Overview")
    driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
    wait.until(EC.url_contains("/login"))

    step("log in with the admin token; see the targets")
    login(ADMIN)
    rows = [r.text for r in all_css("tbody th[scope=row]")]
    assert "svc" in rows, rows
    cookie = driver.get_cookie("cairn_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    shot("overview")
    # Readable on a phone-sized screen: nothing wider than the window.
    driver.set_window_size(390, 844)
    wide = driver.execute_script(
        "return document.documentElement.scrollWidth > window.innerWidth + 1"
    )
    assert not wide, "the overview scrolls sideways on a phone"
    shot("overview-phone", width=390)

    step("start a backup and watch its progress reach 100%")
    css("button[aria-label='Back up svc now']").click()
    wait.until(lambda d: h1().startswith("Job "))
    state, value = wait_job_done()
    assert (state, value) == ("succeeded", "100"), (state, value)
    shot("job")

    step("open the backup, browse to a file and download it")
    css("main a[href^='/backups/']").click()
    wait.until(lambda d: h1().startswith("Backup "))
    backup_id = h1().split(" ", 1)[1]
    shot("backup")
    driver.find_element(By.LINK_TEXT, "data/").click()
    wait.until(lambda d: "readme.txt" in css("main table").text)
    shot("browser")
    css("a[aria-label='Download readme.txt']").click()
    target_file = os.path.join(downloads, "readme.txt")
    deadline = time.time() + 30
    while not os.path.exists(target_file) and time.time() < deadline:
        time.sleep(0.2)
    assert open(target_file, "rb").read() == saved, "the downloaded bytes differ"

    step("change the file on disk; the restore dry run lists the change")
    with open(readme, "wb") as f:
        f.write(b"changed after the backup\n")
    driver.get(BASE + "/backups/" + backup_id)
    driver.find_element(By.XPATH, "//button[normalize-space()='Restore…']").click()
    wait.until(lambda d: h1().startswith("Restore "))
    replaced = css("#replace").text
    assert "readme.txt" in replaced, replaced
    shot("restore-preview")

    step("confirm by naming the target; the file on disk is back")
    css("input#confirm").send_keys("svc")
    driver.find_element(By.XPATH, "//button[normalize-space()='Restore svc now']").click()
    wait.until(lambda d: h1().startswith("Job "))
    state, _ = wait_job_done()
    assert state == "succeeded", state
    assert open(readme, "rb").read() == saved, "the restore did not bring the file back"

    step("a target's page: backups, chart, schedule, a retention preview")
    driver.get(BASE + "/")
    css("button[aria-label='Back up svc now']").click()
    wait.until(lambda d: h1().startswith("Job "))
    wait_job_done()
    driver.get(BASE + "/targets/svc")
    assert len(all_css("main tbody tr")) >= 2
    assert css("svg.chart").get_attribute("role") == "img"
    policy = css("textarea#policy")
    policy.clear()
    policy.send_keys('{"keep_last": 1, "deleted_grace": "1h"}')
    driver.find_element(By.XPATH, "//button[normalize-space()='Preview']").click()
    wait.until(lambda d: "Preview of this policy" in d.page_source)
    listed = all_css("#preview li")
    assert len(listed) >= 1, "the preview lists what the policy would delete"
    shot("target")

    step("the jobs page")
    driver.get(BASE + "/jobs")
    assert len(all_css("main tbody tr")) >= 4
    shot("jobs")

    step("a post without the CSRF token, or with a wrong one, is refused")
    assert post_from_page("/targets/svc/backup", {}) == 403
    assert post_from_page("/targets/svc/backup", {"csrf": "0" * 64}) == 403

    step("log in with a read token: no restore or delete control, and a post is refused")
    driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
    wait.until(EC.url_contains("/login"))
    login(READER)
    assert not all_css("button[aria-label='Back up svc now']")
    driver.get(BASE + "/backups/" + backup_id)
    buttons = [b.text for b in all_css("main button")]
    assert not any(b in ("Restore…", "Delete", "Pin", "Verify") for b in buttons), buttons
    assert not all_css("a[aria-label^='Download']"), "a read token downloads nothing"
    token = css("input[name=csrf]").get_attribute("value")
    assert post_from_page(f"/backups/{backup_id}/restore/preview", {"csrf": token}) == 403
    assert post_from_page(f"/backups/{backup_id}/delete", {"csrf": token}) == 403
    shot("read-only")
    print(f"browser ({BROWSER}): all steps passed", flush=True)
except Exception:
    shot("failure")
    print(f"browser ({BROWSER}): failed at step", step_no, "on", driver.current_url, file=sys.stderr)
    print(driver.page_source[:4000], file=sys.stderr)
    raise
finally:
    driver.quit()
    shutil.rmtree(downloads, ignore_errors=True)
    shutil.rmtree(profile, ignore_errors=True)
