"""Ship it: an app routes each request with the bundle, calls the cloud, falls back to the device."""
import json
import time
import urllib.request

from router_lab.runtime import Outcome, Request, Route, Signals, load_bundle


def make_app(bundle_dir: str, cloud_url: str, timeout_s: float = 2.0):
    bundle = load_bundle(bundle_dir)  # every file checked against bundle.manifest.json
    policy = bundle.make_policy()  # the policy the sweep chose, with its own state
    device = bundle.device_graph  # digits: the on-device model and the router in one graph

    def answer(pixels, sensitive=False, session=None, network_up=True):
        start = time.monotonic()
        request = Request(features=pixels, sensitive=sensitive, session_id=session)
        decision = policy.decide(request, Signals(now_s=start, network_up=network_up))
        if decision.route == Route.CLOUD:
            try:
                body = json.dumps({"features": pixels.tolist()}).encode()
                with urllib.request.urlopen(cloud_url, body, timeout=timeout_s) as reply:
                    label = json.load(reply)["label"]
                now = time.monotonic()
                policy.observe(Outcome(now, (now - start) * 1e3, "cloud"))
                return label, decision
            except OSError:  # refused, timed out, 429/503: answer on the device instead
                policy.observe(Outcome(time.monotonic(), cloud_failed=True))
        label = int(device.run(pixels[None, :])["device_label"][0])
        now = time.monotonic()
        policy.observe(Outcome(now, (now - start) * 1e3, "local"))
        return label, decision

    return answer, policy
