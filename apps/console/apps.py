"""The support console. Installed in SHARED_APPS (it has no models of its own: it registers admin
pages for other apps' models and serves staff views on the public host)."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "apps.console"
    verbose_name = "Support console"
