import pytest
pytestmark = pytest.mark.e2e
def test_dump(live_server_asgi, page):
    page.goto(live_server_asgi.url("/", workspace="acme"))
    print(page.url)
    print(page.content())
    page.goto(live_server_asgi.url("/accounts/signup/"))
    print(page.url)
    print(page.locator("main").inner_html())
