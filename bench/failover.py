#!/usr/bin/env python3
"""Replicas on PostgreSQL: failover time and routing convergence, measured.

Starts three `rollgate serve --database postgres://…` replicas on one fresh
database (the config `rollgate init` writes), then:

  failover     KILLS times (default 20): find the leader (GET /api/v1/cluster),
               kill -9 it, and time until another replica reports a new leader
               with a greater fencing token; the killed replica is started again
               before the next kill.
  convergence  CHANGES times (default 20): change a rollout's traffic weight
               through one replica's API (force-promote into the canary's first
               step, then roll back to 0) and time until every replica's
               GET /api/v1/routing shows that weight in the routing applied to
               its gateway (`applied`).

Prints median and max of each with the settings. Run by hand (not in CI):
  python3 bench/failover.py [--kills 20] [--changes 20] [--lease 5s] [--renew 1s] [--tick 1s]
Needs PostgreSQL on 127.0.0.1:5432 (trust auth, psql) and a built rollgate
(ROLLGATE=path, default target/release/rollgate, else target/debug/rollgate).
"""

import argparse, json, os, re, signal, statistics, subprocess, sys, tempfile, time, urllib.request

THURSDAY = "2026-11-26T09:00:00Z"


def binary():
    for path in [os.environ.get("ROLLGATE"), "target/release/rollgate", "target/debug/rollgate"]:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    sys.exit("build rollgate first (cargo build --release -p rollgate), or set ROLLGATE")


def psql(sql):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, stdout=subprocess.DEVNULL)


class Replica:
    def __init__(self, rg, work, url, args):
        env = dict(os.environ, ROLLGATE_CLOCK=f"speed=1,origin={THURSDAY}", ROLLGATE_WEBHOOK_KEY="bench")
        self.proc = subprocess.Popen(
            [rg, "serve", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--database", url,
             "--tick", args.tick, "--lease", args.lease, "--lease-renew", args.renew],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        self.addr = re.search(r"http://\S+", line).group(0)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def get(base, path, token):
    req = urllib.request.Request(base + path, headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)


def post(base, path, token, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def try_post(base, path, token, body):
    try:
        return post(base, path, token, body)
    except Exception:
        return {}


def cluster(replica, token):
    try:
        return get(replica.addr, "/api/v1/cluster", token)
    except Exception:
        return {}


def until(check, limit=60.0, every=0.01):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    raise SystemExit("timed out waiting")


def summary(name, xs):
    return f"{name:<34} n={len(xs):<3} median {statistics.median(xs):7.3f} s   max {max(xs):7.3f} s"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--lease", default="5s")
    p.add_argument("--renew", default="1s")
    p.add_argument("--tick", default="1s")
    args = p.parse_args()
    rg = binary()
    work = tempfile.mkdtemp()
    db = f"rollgate_bench_{os.getpid()}"
    psql(f"CREATE DATABASE {db}")
    url = f"postgres://postgres@127.0.0.1:5432/{db}"
    replicas = []
    try:
        subprocess.run([rg, "init"], cwd=work, check=True, stdout=subprocess.DEVNULL)
        tok = lambda name, role: subprocess.run(
            [rg, "token", "create", "--name", name, "--role", role, "--database", url],
            cwd=work, check=True, capture_output=True, text=True).stdout.strip()
        alice, dana = tok("alice", "deployer"), tok("dana", "admin")
        replicas = [Replica(rg, work, url, args) for _ in range(3)]
        until(lambda: cluster(replicas[0], alice).get("leader") is not None)

        failovers = []
        for _ in range(args.kills):
            seen = {}
            until(lambda: bool((seen.update(view=cluster(replicas[0], alice)) or seen["view"]).get("leader")))
            view = seen["view"]
            leader = next(r for r in replicas if r.addr.endswith(view["leader"]["address"]))
            token = view["token"]
            t0 = time.monotonic()
            leader.kill()
            others = [r for r in replicas if r is not leader]
            t1 = until(lambda: any(((v := cluster(r, alice)).get("token") or 0) > token and v.get("leader") for r in others))
            failovers.append(t1 - t0)
            replicas[replicas.index(leader)] = Replica(rg, work, url, args)

        convergence = []
        for i in range(args.changes // 2):
            rid = f"bench-{i}"
            post(replicas[0].addr, "/api/v1/rollouts", alice, {"service": "fraud-scorer", "candidate": "v2", "id": rid})
            for target, act in [(None, None), (0.0, "rollback")]:
                if act is None:
                    t0 = time.monotonic()
                    # Past every gate to the canary's first step: the first weight change.
                    until(lambda: try_post(replicas[0].addr, f"/api/v1/rollouts/{rid}/force-promote", dana,
                                           {"reason": "bench"}).get("stage") == "canary", limit=30, every=0.0)
                    weight = get(replicas[0].addr, f"/api/v1/rollouts/{rid}", alice)["candidate_percent"]
                else:
                    t0 = time.monotonic()
                    post(replicas[0].addr, f"/api/v1/rollouts/{rid}/rollback", alice,
                         {"category": "other", "reason": "bench", "full": False})
                    weight = 0.0

                def converged():
                    for r in replicas:
                        applied = get(r.addr, "/api/v1/routing", alice).get("applied") or {}
                        split = applied.get("services", {}).get("fraud-scorer", {}).get("split", [])
                        on_candidate = sum(w for v, w in split if v == "v2")
                        if abs(on_candidate - weight) > 1e-6:
                            return False
                    return True
                convergence.append(until(converged) - t0)
    finally:
        for r in replicas:
            r.proc.kill()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    print(f"rollgate {rg}")
    print(f"3 replicas, lease {args.lease}, renew {args.renew}, tick {args.tick}, PostgreSQL on loopback, {os.cpu_count()} cores")
    print(summary("failover (kill -9 → new leader)", failovers))
    print(summary("routing convergence (all replicas)", convergence))


if __name__ == "__main__":
    main()
