"""What `doorstep demo` prints: the three apps with their links and demo logins."""

from __future__ import annotations

from doorstep.cli import demo_banner
from seeding.load import DEMO_PASSWORD


def test_banner_links_every_app_with_a_login() -> None:
    """The banner names /app, /worker, /admin and /console, each with a demo login, and the password."""
    logins = {
        "admin": "13800000000",
        "dispatcher": "13800000001",
        "customer": "13912345678",
        "worker": "13712345678",
        "merchant": "13612345678",
    }
    text = demo_banner("http://127.0.0.1:8000", "shenzhen", logins, live=True)
    lines = {line.split(":", 1)[0].strip(): line for line in text.splitlines() if ":" in line}
    assert "http://127.0.0.1:8000/app  (log in: customer 13912345678)" in lines["Customer's app"]
    assert "http://127.0.0.1:8000/worker  (log in: worker 13712345678)" in lines["Worker's app"]
    assert "/admin  (log in: admin 13800000000, merchant 13612345678)" in lines["Back office"]
    assert "/console?city=shenzhen  (log in: dispatcher 13800000001)" in lines["Dispatcher console"]
    assert DEMO_PASSWORD in text
    assert "Live city" in text
