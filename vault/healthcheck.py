#!/usr/bin/env python3
"""Container healthcheck: exit 0 only if GET /healthz answers 200. Stdlib only."""

import sys
import urllib.error
import urllib.request

URL = "http://127.0.0.1:8000/healthz"


def main() -> int:
    try:
        with urllib.request.urlopen(URL, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"healthz: HTTP {exc.code} {exc.read(500).decode('utf-8', 'replace')}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"healthz: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
