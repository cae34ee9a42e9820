"""The web for reWOO plans: fetch a page as text, pull links out of text, search.

The model chooses the URLs a plan fetches, and a fetched page can steer the model, so every
address is resolved first and refused when any of its addresses is loopback, private,
link-local (cloud metadata lives there), multicast, reserved or unspecified, unless the user
allowed private hosts. The request then goes to the address that was checked (the name is kept
for the Host header and TLS), so a second DNS answer cannot swap it. Each redirect is checked
the same way. Per page: 2 MiB, 15 s, text or HTML only, at most 5 redirects.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

MAX_PAGE_BYTES = 2 << 20
PAGE_TIMEOUT_S = 15.0
MAX_REDIRECTS = 5
MAX_RESULTS = 10
USER_AGENT = "airochat (reWOO TextScraper)"
_TEXT_TYPES = ("text/html", "text/plain", "application/xhtml+xml")


class WebError(Exception):
    """A page or a search that could not be had; the message says why, in one line."""


class MissingPackage(WebError):
    """An optional package a tool needs is not installed."""


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    text: str
    cut: bool  # the page was longer than MAX_PAGE_BYTES


def check_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to for `host`, refusing private ranges unless allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebError(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebError(f"cannot resolve {host}")
    if not allow_private:
        for address in addresses:
            why = _refused(address)
            if why:
                raise WebError(
                    f"{host} resolves to {address}, a {why} address: refused "
                    "(allow_private_hosts: true in the tools file allows it)"
                )
    return addresses[0]


def _refused(address: str) -> str:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("shared (carrier-grade NAT)", ip in ipaddress.ip_network("100.64.0.0/10")),
    )
    return next((name for name, hit in checks if hit), "")


def fetch_page(url: str, allow_private: bool, client: httpx.Client | None = None) -> Page:
    """One page as text, following at most MAX_REDIRECTS redirects, each address checked."""
    own = client is None
    http = client or httpx.Client(follow_redirects=False, trust_env=False)
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    try:
        for _ in range(MAX_REDIRECTS + 1):
            response = _request(http, url, allow_private, deadline)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                return _read_page(response, url, deadline)
            finally:
                response.close()
        raise WebError(f"{url}: more than {MAX_REDIRECTS} redirects")
    except httpx.TimeoutException:
        raise WebError(f"{url}: no answer within {PAGE_TIMEOUT_S:g} s") from None
    except httpx.HTTPError as exc:
        raise WebError(f"{url}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            http.close()


def _request(http: httpx.Client, url: str, allow_private: bool, deadline: float) -> httpx.Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebError(f"{url[:200]!r}: only http and https URLs are fetched")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = check_address(parts.hostname, port, allow_private)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{port}" if parts.port else literal
    direct = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    remaining = max(0.1, deadline - time.monotonic())
    request = http.build_request(
        "GET",
        direct,
        headers={"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": USER_AGENT},
        timeout=httpx.Timeout(remaining),
        extensions={"sni_hostname": parts.hostname} if parts.scheme == "https" else {},
    )
    return http.send(request, stream=True)


def _read_page(response: httpx.Response, url: str, deadline: float) -> Page:
    if response.status_code >= 400:
        raise WebError(f"{url}: HTTP {response.status_code}")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _TEXT_TYPES:
        raise WebError(f"{url}: {kind or 'no content type'} is not text or HTML; not read")
    body = bytearray()
    cut = False
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > MAX_PAGE_BYTES:
            del body[MAX_PAGE_BYTES:]
            cut = True
            break
        if time.monotonic() > deadline:
            raise WebError(f"{url}: not read within {PAGE_TIMEOUT_S:g} s")
    raw = bytes(body).decode(response.encoding or "utf-8", errors="replace")
    text = html_to_text(raw) if kind != "text/plain" else raw
    return Page(url, text, cut)


def html_to_text(html: str) -> str:
    """The readable text of a page (BeautifulSoup with the standard library's parser):
    no scripts, styles or markup; one blank line at most between blocks."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise MissingPackage(
            "TextScraper needs beautifulsoup4: pip install 'airochat[web]'"
        ) from None
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    text = soup.get_text("\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_LINK = re.compile(r"https?://[^\s<>\"'`\[\]{}|\\^]+", re.IGNORECASE)


def extract_links(text: str) -> list[str]:
    """The http(s) links in `text`, in order, each once (trailing punctuation dropped)."""
    links = (m.group(0).rstrip(".,;:!?)'\"") for m in _LINK.finditer(text))
    return list(dict.fromkeys(link for link in links if urlsplit(link).hostname))


def search_searxng(search_url: str, query: str) -> str:
    """A SearXNG instance's JSON API (`format=json`): title, URL and snippet per result."""
    try:
        with httpx.Client(timeout=PAGE_TIMEOUT_S, trust_env=False) as http:
            response = http.get(search_url, params={"q": query, "format": "json"})
        if response.status_code != 200:
            raise WebError(f"search at {search_url}: HTTP {response.status_code}")
        data = response.json()
    except httpx.HTTPError as exc:
        raise WebError(f"search at {search_url}: {type(exc).__name__}: {exc}") from None
    except ValueError:
        raise WebError(f"search at {search_url}: the answer is not JSON") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise WebError(f"search at {search_url}: no results list in the answer")
    return _results(
        (r.get("title"), r.get("url"), r.get("content")) for r in results if isinstance(r, dict)
    )


def search_ddgs(query: str) -> str:
    """DuckDuckGo and friends through the maintained `ddgs` package."""
    try:
        from ddgs import DDGS  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MissingPackage(
            "search: ddgs needs the ddgs package: pip install 'airochat[web]'"
        ) from None
    try:
        found = DDGS().text(query, max_results=MAX_RESULTS)
    except Exception as exc:  # ddgs raises its own exception types
        raise WebError(f"ddgs search: {type(exc).__name__}: {exc}") from None
    return _results((r.get("title"), r.get("href"), r.get("body")) for r in found or [])


def _results(rows: Any) -> str:
    blocks = []
    for title, url, snippet in rows:
        if not isinstance(url, str) or not url:
            continue
        lines = [str(title or "").strip(), url.strip(), " ".join(str(snippet or "").split())]
        blocks.append("\n".join(line for line in lines if line))
        if len(blocks) == MAX_RESULTS:
            break
    if not blocks:
        raise WebError("the search found nothing")
    return "\n\n".join(blocks)
