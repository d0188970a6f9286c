"""Small values shared by the Flask app and the WSGI fast path."""

import re

# A valid incoming X-Request-ID is echoed; anything else is replaced by a fresh one.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
