#!/usr/bin/env python3
"""An HTTPS receiver for stream tests: a Splunk HEC-compatible /services/collector/event and a
plain JSON endpoint. Appends each accepted body, then a newline, to OUT; answers 503 to the first
FAIL_FIRST requests; refuses a wrong Authorization. Prints its port once listening.

usage: https_receiver.py CERT KEY OUT TOKEN FAIL_FIRST
"""
import http.server
import ssl
import sys
import threading

cert, key, out, token, fail_first = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
lock = threading.Lock()
seen = {"requests": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        hec = self.path.rstrip("/").endswith("/services/collector/event")
        expected = f"Splunk {token}" if hec else f"Bearer {token}"
        with lock:
            seen["requests"] += 1
            failing = seen["requests"] <= fail_first
            if self.headers.get("Authorization") != expected:
                return self.answer(401, b'{"text":"Invalid authorization","code":3}')
            if failing:
                return self.answer(503, b'{"text":"Server is busy","code":9}')
            with open(out, "ab") as f:
                f.write(body + b"\n")
        self.answer(200, b'{"text":"Success","code":0}')

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
