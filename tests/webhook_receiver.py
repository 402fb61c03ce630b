"""A reseller's webhook receiver, for the tests: every delivery verified
with the Standard Webhooks package, as a receiver would.

Usage: webhook_receiver.py SECRET [FAIL_FIRST]

Listens on a free loopback port and prints it on the first line. Then one
JSON line per request: the path, the webhook-id, whether the signature
verified, the status answered and the body. Paths:
  /{name}          answers 204 once verified (401 if not);
  /flaky/{name}    answers 500 to the first FAIL_FIRST tries of each
                   webhook-id, then as above;
  /hang/{name}     answers nothing for 30 s (the sender gives up first).
Each line also says when the request arrived (`at`, Unix milliseconds).
"""

import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRET = sys.argv[1]
FAIL_FIRST = int(sys.argv[2]) if len(sys.argv) > 2 else 0
TRIES = Counter()
LOCK = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        arrived = int(time.time() * 1000)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            Webhook(SECRET).verify(body, headers)
            verified = True
        except Exception:  # any failure to verify is recorded as such
            verified = False
        webhook_id = headers.get("webhook-id", "")
        with LOCK:
            TRIES[(self.path, webhook_id)] += 1
            tries = TRIES[(self.path, webhook_id)]
        if self.path.startswith("/hang/"):
            status = 0
        elif not verified:
            status = 401
        elif self.path.startswith("/flaky/") and tries <= FAIL_FIRST:
            status = 500
        else:
            status = 204
        line = {
            "path": self.path,
            "id": webhook_id,
            "verified": verified,
            "status": status,
            "at": arrived,
            "signatures": len(headers.get("webhook-signature", "").split()),
            "body": json.loads(body) if verified else None,
        }
        with LOCK:
            print(json.dumps(line), flush=True)
        if status == 0:
            time.sleep(30)
            return
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
