#!/usr/bin/env python3
"""Forward one Wazuh alert to the SENTreflex webhook (POST /hooks/wazuh).

wazuh-integratord does not POST anything itself: for every alert that matches an <integration>
block it writes the alert to a temporary file and runs

    integrations/custom-sentreflex <alert_file> <api_key> <hook_url> [<options_file>] [debug]

This script sends that file's bytes unchanged as the request body and exits 0 once SENTreflex has
accepted it (any 2xx; SENTreflex answers 202 only after the alert is durable).

Authentication, chosen by the <api_key> value:
  * "<token>"          -> Authorization: Bearer <token>
  * "hmac:<secret>"    -> X-Reflex-Timestamp: <unix seconds>
                          X-Reflex-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    The signed string is the decimal timestamp, one ".", then the raw body bytes exactly as sent.
    The timestamp (and so the signature) is renewed on every attempt, so a retry after a long
    Retry-After still falls inside the receiver's replay window.

Retries: network errors, 429 and 5xx are retried with exponential backoff and jitter; a
Retry-After header (seconds or HTTP date) is honoured, capped so integratord is never blocked for
long. Other 4xx (bad token, invalid alert) and 3xx are final: retrying cannot help.

Exit codes: 0 delivered, 1 delivery failed, 2 bad invocation or unreadable alert file.

Standard library only: Wazuh's bundled Python has nothing else, and nothing is ever passed
through a shell.
"""

import hashlib
import hmac
import http.client
import json
import os
import random
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime

NAME = "custom-sentreflex"
VERSION = "1.0"

EXIT_OK = 0
EXIT_DELIVERY_FAILED = 1
EXIT_USAGE = 2

DEFAULTS = {
    "max_attempts": 6,
    "timeout": 10.0,
    "backoff_base": 1.0,
    "backoff_max": 30.0,
    "retry_after_max": 60.0,
    "ca_file": None,
}

# integratord runs integrations/<script>; its logs live in <wazuh>/logs next to that folder.
WAZUH_PATH = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LOG_FILE = os.path.join(WAZUH_PATH, "logs", "integrations.log")

debug_enabled = False


def log(level, message):
    if level == "DEBUG" and not debug_enabled:
        return
    line = "%s %s: %s: %s" % (time.strftime("%Y/%m/%d %H:%M:%S"), NAME, level, message)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    # Only append to Wazuh's own log where it exists: never create directories elsewhere.
    if os.path.isdir(os.path.dirname(LOG_FILE)):
        try:
            with open(LOG_FILE, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError:
            pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would lose its body or its signature; surface it as a failure instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def load_options(args):
    options = dict(DEFAULTS)
    for env_key in ("max_attempts", "timeout", "backoff_base", "backoff_max", "retry_after_max", "ca_file"):
        value = os.environ.get("SENTREFLEX_" + env_key.upper())
        if value:
            options[env_key] = value
    # integratord passes <options> as a JSON file whose name ends in "options".
    for arg in args:
        if arg.endswith("options") and os.path.isfile(arg):
            with open(arg, "r", encoding="utf-8") as handle:
                data = json.load(handle)
            if isinstance(data, dict):
                options.update({k: v for k, v in data.items() if k in DEFAULTS})
    try:
        options["max_attempts"] = max(1, int(options["max_attempts"]))
        for key in ("timeout", "backoff_base", "backoff_max", "retry_after_max"):
            options[key] = max(0.0, float(options[key]))
    except (TypeError, ValueError) as exc:
        raise ValueError("invalid option value: %s" % exc)
    return options


def auth_headers(api_key, body):
    if api_key.startswith("hmac:"):
        secret = api_key[len("hmac:"):].encode("utf-8")
        timestamp = str(int(time.time()))
        digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        return {"X-Reflex-Timestamp": timestamp, "X-Reflex-Signature": "sha256=" + digest}
    return {"Authorization": "Bearer " + api_key}


def retry_after_seconds(value):
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_seconds(attempt, options):
    ceiling = min(options["backoff_max"], options["backoff_base"] * (2 ** (attempt - 1)))
    # Equal jitter: never less than half the step, so a burst of failing alerts still spreads out.
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def deliver(body, api_key, hook_url, options):
    context = ssl.create_default_context(cafile=options["ca_file"]) if options["ca_file"] else ssl.create_default_context()
    opener = urllib.request.build_opener(NoRedirect(), urllib.request.HTTPSHandler(context=context))
    delivery_id = hashlib.sha256(body).hexdigest()

    for attempt in range(1, options["max_attempts"] + 1):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sentreflex-wazuh-integration/" + VERSION,
            # Same value on every retry of this alert, so the receiver can drop a duplicate delivery.
            "X-Reflex-Delivery": delivery_id,
        }
        headers.update(auth_headers(api_key, body))
        request = urllib.request.Request(hook_url, data=body, headers=headers, method="POST")
        wait = None
        try:
            with opener.open(request, timeout=options["timeout"]) as response:
                log("INFO", "delivered alert %s: HTTP %d (attempt %d)" % (delivery_id[:12], response.status, attempt))
                return True
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status == 429 or 500 <= status <= 599:
                wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
                if wait is not None:
                    wait = min(wait, options["retry_after_max"])
                log("WARNING", "HTTP %d from SENTreflex (attempt %d/%d)" % (status, attempt, options["max_attempts"]))
            else:
                log("ERROR", "SENTreflex refused the alert with HTTP %d; not retrying%s" % (status, hint(status)))
                return False
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            log("WARNING", "network error (attempt %d/%d): %s" % (attempt, options["max_attempts"], reason))

        if attempt < options["max_attempts"]:
            delay = wait if wait is not None else backoff_seconds(attempt, options)
            log("DEBUG", "retrying in %.2fs" % delay)
            time.sleep(delay)

    log("ERROR", "giving up on alert %s after %d attempts" % (delivery_id[:12], options["max_attempts"]))
    return False


def hint(status):
    if status in (401, 403):
        return " (check <api_key> in ossec.conf against the SENTreflex Wazuh hook secret)"
    if status in (400, 415, 422):
        return " (is <alert_format>json</alert_format> set in the <integration> block?)"
    if 300 <= status < 400:
        return " (hook_url redirects; configure the final URL)"
    return ""


def main(argv):
    global debug_enabled
    args = argv[1:]
    debug_enabled = "debug" in args[3:]
    if len(args) < 3:
        log("ERROR", "usage: %s <alert_file> <api_key> <hook_url> [options_file] [debug]" % NAME)
        return EXIT_USAGE
    alert_file, api_key, hook_url = args[0], args[1], args[2]
    if not api_key or api_key == "hmac:":
        log("ERROR", "no <api_key> configured: SENTreflex requires a bearer token or hmac:<secret>")
        return EXIT_USAGE
    if not hook_url.startswith(("https://", "http://")):
        log("ERROR", "<hook_url> must be an http(s) URL")
        return EXIT_USAGE
    try:
        options = load_options(args[3:])
    except (OSError, ValueError) as exc:
        log("ERROR", "cannot read integration options: %s" % exc)
        return EXIT_USAGE
    try:
        with open(alert_file, "rb") as handle:
            body = handle.read()
    except OSError as exc:
        log("ERROR", "cannot read alert file %s: %s" % (alert_file, exc))
        return EXIT_USAGE
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        log("ERROR", "alert file is not JSON; set <alert_format>json</alert_format> in the <integration> block")
        return EXIT_USAGE
    if hook_url.startswith("http://"):
        log("DEBUG", "hook_url is plain http: use https outside a lab")
    return EXIT_OK if deliver(body, api_key, hook_url, options) else EXIT_DELIVERY_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
