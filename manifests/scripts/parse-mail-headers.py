"""Parses a reported e-mail (RFC 822 / MIME) for the phishing-triage playbook.

Input: the runner's JSON on stdin, {"message": "<raw message>"}; REFLEX_INPUT_MESSAGE is the
fallback for a hand run. Output (stdout, JSON): sender, reply-to, return-path, the Received chain
with the IPs it names, SPF/DKIM/DMARC verdicts from Authentication-Results, links found in the
text and HTML bodies with their domains, attachments with SHA-256, and a list of indicators an
analyst would look at first (reply-to differs from sender, link text shows another domain, ...).

Only the standard library; the message is data and is never executed or fetched.
"""

import hashlib
import ipaddress
import json
import os
import re
import sys
from email import policy
from email.parser import Parser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from urllib.parse import urlsplit

MAX_LINKS = 500
URL_RE = re.compile(r"""https?://[^\s<>"'()\[\]{}]+""", re.IGNORECASE)
IPV4_RE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
IPV6_RE = re.compile(r"\[(?:IPv6:)?([0-9a-fA-F:]+:[0-9a-fA-F:.]*)\]")
TRAILING = ".,;:!?'\">)"
# Hops inside an organisation; the first address outside these is where the message came from.
INTERNAL_NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")]


def clean_url(url):
    return url.rstrip(TRAILING)


def domain_of(url):
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def address(value):
    if not value:
        return None
    name, addr = parseaddr(str(value))
    if not addr:
        return None
    return {"name": name or None, "address": addr.lower()}


def addresses(values):
    return [
        {"name": name or None, "address": addr.lower()}
        for name, addr in getaddresses([str(v) for v in values or []])
        if addr
    ]


def address_domain(entry):
    if not entry or "@" not in entry["address"]:
        return None
    return entry["address"].rsplit("@", 1)[1]


def ips_in(text):
    found = []
    for candidate in IPV4_RE.findall(text) + IPV6_RE.findall(text):
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        internal = (
            ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified
            or any(ip.version == net.version and ip in net for net in INTERNAL_NETS)
        )
        found.append({"ip": str(ip), "external": not internal})
    return found


def parse_received(value):
    text = " ".join(str(value).split())
    hop = {"raw": text}
    for key in ("from", "by", "with", "for"):
        match = re.search(r"\b%s\s+(\S+)" % key, text, re.IGNORECASE)
        if match:
            hop[key] = match.group(1).strip(";<>")
    hop["ips"] = ips_in(text)
    return hop


def auth_results(values):
    verdicts = {}
    for value in values or []:
        for method in ("spf", "dkim", "dmarc"):
            match = re.search(r"\b%s=(\w+)" % method, str(value), re.IGNORECASE)
            if match and method not in verdicts:
                verdicts[method] = match.group(1).lower()
    return verdicts


class LinkCollector(HTMLParser):
    """Collects hrefs and the text shown for them, to catch <a href="evil">bank.example</a>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []
        self._href = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self._href = attrs["href"].strip()
            self._text = []
        elif tag in ("img", "form", "iframe"):
            target = attrs.get("src") or attrs.get("action")
            if target and target.lower().startswith(("http://", "https://")):
                self.links.append({"url": target.strip(), "text": None})

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            text = " ".join("".join(self._text).split()) or None
            self.links.append({"url": self._href, "text": text})
            self._href = None


def main():
    raw_stdin = sys.stdin.read()
    inputs = json.loads(raw_stdin) if raw_stdin.strip() else {}
    raw = inputs.get("message") or os.environ.get("REFLEX_INPUT_MESSAGE", "")
    if not raw:
        print("no message given: pass it as the 'message' input", file=sys.stderr)
        return 2
    message = Parser(policy=policy.default).parsestr(raw)

    links = []
    by_url = {}
    indicators = []
    attachments = []

    def check_shown_domain(entry, text):
        shown = URL_RE.search(text) or re.search(r"\b([a-z0-9-]+(?:\.[a-z0-9-]+)+)\b", text, re.IGNORECASE)
        if not shown or not entry["domain"]:
            return
        shown_text = shown.group(0)
        shown_domain = domain_of(shown_text) if "://" in shown_text else shown_text.lower()
        if shown_domain and shown_domain != entry["domain"] and not entry["domain"].endswith("." + shown_domain):
            indicators.append("link text shows %s but points to %s" % (shown_domain, entry["domain"]))

    def add_link(url, text=None):
        url = clean_url(url)
        if not url.lower().startswith(("http://", "https://")):
            return
        entry = by_url.get(url)
        if entry is None:
            if len(links) >= MAX_LINKS:
                return
            entry = {"url": url, "domain": domain_of(url)}
            by_url[url] = entry
            links.append(entry)
        if text and "text" not in entry:
            entry["text"] = text
            check_shown_domain(entry, text)

    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        content_type = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment":
            payload = part.get_payload(decode=True) or b""
            attachments.append({
                "filename": filename,
                "content_type": content_type,
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            })
            continue
        if content_type not in ("text/plain", "text/html"):
            continue
        try:
            body = part.get_content()
        except (LookupError, ValueError):
            body = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        if content_type == "text/html":
            collector = LinkCollector()
            collector.feed(body)
            for link in collector.links:
                add_link(link["url"], link["text"])
        for url in URL_RE.findall(body):
            add_link(url)

    sender = address(message.get("From"))
    reply_to = addresses(message.get_all("Reply-To"))
    return_path = address(message.get("Return-Path"))
    sender_domain = address_domain(sender)
    reply_to_mismatch = any(address_domain(r) != sender_domain for r in reply_to)
    if reply_to_mismatch:
        indicators.append("reply-to domain differs from the sender's")
    if return_path and sender_domain and address_domain(return_path) != sender_domain:
        indicators.append("return-path domain differs from the sender's")
    verdicts = auth_results(message.get_all("Authentication-Results"))
    for method, verdict in sorted(verdicts.items()):
        if verdict not in ("pass", "none", "neutral"):
            indicators.append("%s=%s" % (method, verdict))

    # Received headers are prepended by each hop, so the last one is closest to the origin.
    received = [parse_received(v) for v in message.get_all("Received") or []]
    origin_ip = None
    for hop in reversed(received):
        external = [ip["ip"] for ip in hop["ips"] if ip["external"]]
        if external:
            origin_ip = external[0]
            break

    result = {
        "subject": message.get("Subject"),
        "message_id": (message.get("Message-ID") or "").strip() or None,
        "date": message.get("Date"),
        "from": sender,
        "sender": address(message.get("Sender")),
        "reply_to": reply_to,
        "return_path": return_path,
        "to": addresses(message.get_all("To")),
        "sender_domain": sender_domain,
        "reply_to_mismatch": reply_to_mismatch,
        "authentication": verdicts,
        "received": received,
        "origin_ip": origin_ip,
        "links": links,
        "domains": sorted({link["domain"] for link in links if link["domain"]}),
        "attachments": attachments,
        "indicators": indicators,
    }
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
