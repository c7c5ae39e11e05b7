#!/usr/bin/env python
"""Django's command-line utility. Starts the embedded services first when no URLs are configured."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aisaas.settings.local")
    from django.core.management import execute_from_command_line

    from aisaas.bootstrap import ensure_services

    ensure_services()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
