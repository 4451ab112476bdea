"""The tiny Django project's ASGI entry point.

    cd examples/django_project && uvicorn asgi:application

Two lines make Django's sync views cancellable: install() before the
application is built (no running loop needed), and Django's own ASGIHandler
cancels a view whose client disconnected.
"""
import os

import aiocancel.asgiref

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
aiocancel.asgiref.install(patch=True)

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
