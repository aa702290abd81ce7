"""An email's HTML body made safe to show before anything downstream sees it (ammonia via nh3: a whitelist of
tags and attributes; scripts, styles, event handlers, forms and frames removed). Remote images are dropped too:
loading one tells the sender that, when and from where an agent read the mail (tracking pixels); an image the
mail carries (`cid:`, also an attachment) keeps its reference. Links keep http(s)/mailto/cid only and open
without a referrer."""

from __future__ import annotations

import nh3


def _no_remote_images(tag: str, attribute: str, value: str) -> str | None:
    return None if (tag, attribute) == ("img", "src") and not value.startswith("cid:") else value


_CLEANER = nh3.Cleaner(url_schemes={"http", "https", "mailto", "cid"}, attribute_filter=_no_remote_images,
                       link_rel="noopener noreferrer nofollow")


def safe_html(html: str) -> str:
    return _CLEANER.clean(html)
