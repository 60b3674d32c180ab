"""Docker HEALTHCHECK: healthy when the Jupyter server answers an authenticated API request."""

import os
import sys
import urllib.request

try:
    request = urllib.request.Request("http://127.0.0.1:8888/api/status",
                                     headers={"Authorization": f"token {os.environ['JUPYTER_TOKEN']}"})
    urllib.request.urlopen(request, timeout=4)
except Exception as e:  # noqa: BLE001 -- any failure means unhealthy
    sys.exit(f"unhealthy: {e}")
