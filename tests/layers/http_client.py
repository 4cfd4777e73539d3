"""An HTTP client in its own process: reads requests as JSON on stdin, prints the answers.

Used by the layer tests so that the server under test is called across a real
process boundary, as a remote caller would call it.
"""

from __future__ import annotations

import json
import sys

import httpx


def main() -> None:
    requests = json.load(sys.stdin)
    answers = []
    for request in requests:
        # A connection per request: a server may close one after an application
        # error, and the next request must not fail for that.
        with httpx.Client(timeout=30) as client:
            response = client.request(
                request.get("method", "GET"),
                request["url"],
                headers=request.get("headers") or {},
                json=request.get("json"),
            )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        answers.append(
            {"status": response.status_code, "body": body, "headers": dict(response.headers)}
        )
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
