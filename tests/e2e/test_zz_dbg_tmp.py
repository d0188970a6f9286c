from tests.e2e.test_contribute_browser import browser, page, open_contribute  # noqa

def test_dbg(page, live_server):
    open_contribute(page, live_server, currency="usd", frequency="one_off")
    page.fill("#custom-amount", "0.50")
    page.click("#submit")
    page.wait_for_timeout(500)
    print("ERR", page.inner_html("#form-errors"))
    print("AMT", page.inner_html("#amount-error"))
    print("SUM", page.inner_text("#summary"), page.is_enabled("#submit"))
