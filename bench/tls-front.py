"""A keep-alive HTTPS front for moto, for scripts/bench-native with TLS=1.

moto closes every connection; an AWS endpoint keeps them alive. This front
terminates TLS (Python's ssl, the certificate and key the bench script made
with openssl), keeps client connections alive (HTTP/1.1), and forwards each
request to moto over a new plain connection. It counts the TLS handshakes
it completed, the connections it accepted and the requests it served:

  GET /irhost-front/stats -> {"handshakes": n, "connections": n, "requests": n}
  (answered by the front itself, not counted)

Usage: tls-front.py --upstream http://127.0.0.1:PORT --cert leaf.pem --key leaf.key
Prints "READY <port>" once it accepts connections (127.0.0.1 only).
"""

import argparse
import http.client
import http.server
import json
import ssl
import sys
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}

stats = {"handshakes": 0, "connections": 0, "requests": 0}
lock = threading.Lock()


def count(key):
    with lock:
        stats[key] += 1


class Front(http.server.ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self):
        sock, addr = self.socket.accept()
        count("connections")
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, addr

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread, so that several
        # clients connecting at once are not served one by one.
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        count("handshakes")
        super().finish_request(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ("127.0.0.1", 80)

    def log_message(self, *args):
        pass

    def forward(self):
        if self.path == "/irhost-front/stats":
            with lock:
                body = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        count("requests")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream = http.client.HTTPConnection(*self.upstream, timeout=300)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = forward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    up = urllib.parse.urlparse(args.upstream)
    Handler.upstream = (up.hostname, up.port or 80)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["http/1.1"])
    server = Front(("127.0.0.1", 0), Handler)
    server.context = context
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
