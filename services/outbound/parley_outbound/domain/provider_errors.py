"""What a provider's error means for us: retry later (with backoff) or fail for good, and with which reason.

Codes per reference/channels.md §1.10 (WhatsApp), §2.6 (Messenger/Instagram), §3.7 (Telegram), §4.7 (Viber)."""

from __future__ import annotations

from dataclasses import dataclass

from parley_common.events.common import ChannelType


@dataclass(frozen=True, slots=True)
class Outcome:
    retry: bool
    reason: str
    retry_after_seconds: float | None = None


_WHATSAPP_PERMANENT = {
    "131047": "re_engagement_required", "131026": "undeliverable", "131051": "unsupported_message_type",
    "131053": "media_upload_error", "132000": "template_parameter_count", "132001": "template_not_found",
    "132012": "template_parameter_format", "132015": "template_paused", "132016": "template_disabled",
    "131050": "user_stopped_marketing", "131049": "not_delivered_by_meta", "368": "account_restricted",
    "190": "access_token_expired", "100": "invalid_parameter", "131021": "recipient_is_sender",
    "131030": "recipient_not_allowed", "131005": "access_denied", "131008": "missing_parameter",
    "131009": "invalid_parameter",
}
_WHATSAPP_RETRY = {
    "130429": "rate_limited", "131056": "pair_rate_limited", "80007": "rate_limited", "4": "rate_limited",
    "131000": "provider_error", "131016": "provider_unavailable", "131057": "provider_maintenance",
    "2": "provider_unavailable",
}
_META_PERMANENT = {
    "10": "outside_window", "551": "recipient_unavailable", "1545041": "window_closed", "100": "invalid_parameter",
    "190": "access_token_expired", "199": "provider_error", "2018108": "recipient_not_allowed",
}
_META_RETRY = {"613": "rate_limited", "4": "rate_limited", "80006": "rate_limited", "2": "provider_unavailable"}
_VIBER_PERMANENT = {
    1: "invalid_url", 2: "invalid_auth_token", 3: "bad_data", 4: "missing_data", 5: "not_on_messenger",
    6: "not_subscribed", 7: "account_blocked", 8: "account_not_found", 9: "account_suspended",
    10: "webhook_not_set", 11: "no_suitable_device", 13: "api_version_not_supported",
    14: "incompatible_with_version", 15: "account_not_authorized",
}


def classify_meta(channel_type: ChannelType, code: str, http_status: int) -> Outcome:
    """WhatsApp / Messenger / Instagram Graph API errors."""
    permanent, retry = (
        (_WHATSAPP_PERMANENT, _WHATSAPP_RETRY) if channel_type is ChannelType.WHATSAPP
        else (_META_PERMANENT, _META_RETRY)
    )
    if code in retry:
        return Outcome(True, retry[code])
    if code in permanent:
        return Outcome(False, permanent[code])
    return classify_http(http_status)


def classify_telegram(error_code: int, description: str, retry_after: float | None) -> Outcome:
    if error_code == 429:
        return Outcome(True, "rate_limited", retry_after)
    if error_code == 403:
        lowered = description.lower()
        reason = "user_blocked_business" if "blocked" in lowered else "recipient_unavailable"
        return Outcome(False, reason)
    return classify_http(error_code)


def classify_viber(status: int) -> Outcome:
    if status == 12:
        return Outcome(True, "rate_limited")
    if status in _VIBER_PERMANENT:
        return Outcome(False, _VIBER_PERMANENT[status])
    return Outcome(True, "provider_error")


def classify_http(http_status: int) -> Outcome:
    """Unknown codes: 429 and 5xx are worth retrying; any other 4xx is our request's fault."""
    if http_status == 429:
        return Outcome(True, "rate_limited")
    if http_status >= 500:
        return Outcome(True, "provider_unavailable")
    return Outcome(False, "provider_rejected")


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff base·2^attempt, capped; `jitter` in [0, 1] (drawn by the caller) spreads replicas
    between half and all of that delay so they do not retry in lockstep."""
    delay: float = min(cap, base * (2 ** attempt))
    return delay * (0.5 + 0.5 * jitter)
