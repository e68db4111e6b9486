"""What the frontend does with the CLF API, run inside the frontend stand-in's container
(`docker compose exec defect-detect-fe python3 /probe/probe.py <build id>`): a CORS
preflight, `POST /api/builds/<id>/analyze` with the frontend's Origin, then polls of the
job until it ends. Prints one JSON object with what it saw; standard library only."""

import json
import sys
import time
import urllib.error
import urllib.request

API = "http://clf-abp-path-analysis:6300"
ORIGIN = "http://defect-detect-fe:6200"


def call(method, path, headers=None, body=None):
    request = urllib.request.Request(
        API + path, data=body, method=method, headers={"Origin": ORIGIN, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def main(build_id, timeout):
    preflight_status, preflight_headers, _ = call(
        "OPTIONS",
        f"/api/builds/{build_id}/analyze",
        {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type"},
    )
    post_status, post_headers, post_body = call(
        "POST", f"/api/builds/{build_id}/analyze", {"Content-Type": "application/json"}, b"{}"
    )
    job_id = json.loads(post_body)["job_id"]
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        poll_status, poll_headers, poll_body = call("GET", f"/api/jobs/{job_id}")
        polls += 1
        job = json.loads(poll_body)["job"]
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(
        json.dumps(
            {
                "preflight": {"status": preflight_status, "headers": preflight_headers},
                "post": {"status": post_status, "headers": post_headers, "job_id": job_id},
                "poll": {"status": poll_status, "headers": poll_headers, "count": polls},
                "job": job,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 300.0)
