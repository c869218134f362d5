"""Locust (PyPI, not written here) runs scripts/locustfile.py headless against `vu2f aa-sim`, with
signatures from `vu2f serve --device-service` over HTTPS: every user enrolls its token as AA's
portal does and logs on again and again through chain discovery, and Locust's own statistics must
show logons and no failure."""
import csv
import json
import os
import subprocess
import sys

from conftest import ROOT, vu2f_binary

USERS = 4


def start(args):
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    return child


def test_locust_logs_on_through_the_device_service(tmp_path):
    store = str(tmp_path / "store")
    subprocess.run([vu2f_binary(), "--store", store, "token", "create", "load", "--count",
                    str(USERS)], check=True, stdout=subprocess.DEVNULL)
    users = [{"name": f"load-{n:05d}", "password": "pw"} for n in range(1, USERS + 1)]
    config = tmp_path / "aa.json"
    config.write_text(json.dumps({"users": [{"name": "admin", "password": "admin-pw",
                                             "admin": True}] + users}))
    children = []
    try:
        sim = start([vu2f_binary(), "--json", "aa-sim", "--listen", "127.0.0.1:0", "--data",
                     str(tmp_path / "sim"), "--config", str(config)])
        children.append(sim)
        server = json.loads(sim.stdout.readline())["url"]
        service = start([vu2f_binary(), "--store", store, "--json", "serve", "--all",
                         "--device-service", "127.0.0.1:0"])
        children.append(service)
        lines = [json.loads(service.stdout.readline()) for _ in range(USERS + 1)]
        device = lines[-1]
        assert device["device_service"].startswith("https://")
        env = dict(os.environ, VU2F_DEVICE_SERVICE=device["device_service"],
                   VU2F_DEVICE_SERVICE_CA=device["certificate"], VU2F_ADMIN_USER="admin",
                   VU2F_ADMIN_PASSWORD="admin-pw", VU2F_PASSWORD="pw")
        locust = os.path.join(os.path.dirname(sys.executable), "locust")
        run = subprocess.run(
            [locust, "-f", os.path.join(ROOT, "scripts", "locustfile.py"), "--headless",
             "--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", "6s",
             "--host", server, "--csv", str(tmp_path / "stats"), "--only-summary"],
            env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        with open(tmp_path / "stats_stats.csv") as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
        whole = rows["whole logon"]
        assert int(whole["Request Count"]) >= 20, whole
        for name, row in rows.items():
            assert int(row["Failure Count"]) == 0, (name, row)
        assert int(rows["enroll: save template"]["Request Count"]) == USERS
        # Every logon read the user's chains first, as AA's portal does.
        assert int(rows["logon: chains"]["Request Count"]) >= int(whole["Request Count"])
        assert int(rows["enroll: chains"]["Request Count"]) == USERS
        # Every completed logon had one signature; logons cut off when Locust stopped may have
        # had theirs without being counted whole.
        signs = int(rows["device service sign"]["Request Count"])
        assert int(whole["Request Count"]) <= signs <= int(whole["Request Count"]) + USERS
    finally:
        for child in children:
            child.kill()
            child.wait()
