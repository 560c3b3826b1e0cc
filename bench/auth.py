#!/usr/bin/env python3
"""What authenticating a request costs, side by side in one run.

Creates TOKENS API tokens (default 200) in a fresh data directory, starts
`rollgate serve` on it, and times REQUESTS sequential requests (default 300)
to an endpoint that needs a token (GET /api/v1/cluster, which on SQLite reads
nothing else) and to one that does not (GET /healthz), twice each. Prints the
mean time per request of each and their ratio.

Run by hand (not in CI):  python3 bench/auth.py [--tokens 200] [--requests 300]
Needs a built rollgate (ROLLGATE=path, default target/release/rollgate, else target/debug/rollgate).
"""

import argparse, os, re, subprocess, sys, tempfile, time, urllib.request


def binary():
    for path in [os.environ.get("ROLLGATE"), "target/release/rollgate", "target/debug/rollgate"]:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    sys.exit("build rollgate first (cargo build --release -p rollgate), or set ROLLGATE")


def mean_ms(url, headers, n):
    request = urllib.request.Request(url, headers=headers)
    start = time.perf_counter()
    for _ in range(n):
        urllib.request.urlopen(request).read()
    return (time.perf_counter() - start) / n * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    rollgate = binary()
    with tempfile.TemporaryDirectory() as work:
        run = lambda *a: subprocess.run([rollgate, *a], cwd=work, check=True, capture_output=True, text=True)
        run("init")
        for i in range(args.tokens):
            out = run("token", "create", "--name", f"bot{i}", "--role", "viewer")
        token = re.search(r"rg_[0-9a-f]+_[0-9a-f]+", out.stdout + out.stderr).group(0)
        server = subprocess.Popen([rollgate, "serve", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"],
                                  cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            api = server.stdout.readline().split()[-1]
            print(f"rollgate {rollgate}")
            print(f"{args.tokens} tokens in the ledger, {args.requests} sequential requests per measurement, SQLite")
            for _ in range(2):
                authed = mean_ms(f"{api}/api/v1/cluster", {"Authorization": f"Bearer {token}"}, args.requests)
                bare = mean_ms(f"{api}/healthz", {}, args.requests)
                print(f"with a token {authed:7.3f} ms   without {bare:7.3f} ms   ratio {authed / bare:5.2f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
