"""Settings of the outbound service (environment prefix PARLEY_OUTBOUND_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class OutboundSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_OUTBOUND_", extra="ignore")

    port: int = 8004
    media_base_url: str = Field(default="http://127.0.0.1:8005",
                                description="the media service inside the cluster: outbound reads attachment "
                                "bytes from it and uploads them to the providers")
    rate_per_second: dict[str, float] = Field(
        default={}, description="send rate per sender (channel) by channel type, overriding the channel "
        "catalogue's default (WhatsApp 80 msg/s per number)")
    channel_rate_per_second: dict[str, float] = Field(default={}, description="per channel id overrides")
    templates_mandatory_channels: list[str] = Field(
        default=[], description="channel ids that send approved templates only (edna: mandatory templates)")
    max_attempts: int = Field(default=4, ge=1, le=10, description="provider calls per message, incl. retries")
    backoff_base_seconds: float = Field(default=0.2, gt=0)
    backoff_cap_seconds: float = Field(default=10.0, gt=0)
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    stuck_after_seconds: float = Field(default=60.0, gt=0,
                                       description="a queued/sending message this old is reconciled at start")
    batch_records: int = Field(default=500, ge=1, le=5000,
                               description="send commands fetched at once; stored, and their outcomes recorded, "
                               "with one bulk write each")
    send_consumers: int = Field(default=1, ge=1, le=12, description="consumers of the requests topic in one "
                                "process (one group; the partitions are shared out, their batches overlap). One: "
                                "each more is a fetch loop of its own while records flow (idle, a process's consumers "
                                "share one fetch), and under a backlog KEDA adds pods on the group's lag instead")
    send_linger_ms: int = Field(
        default=25, ge=0, le=200,
        description="a POST /v1/messages within this of the one before, while another is being accepted, waits up "
                    "to this for others, and all go on together: their window reads, pending notes and Kafka produce "
                    "are one round trip each (parley_common.batching.LingerGate); a send after a quieter spell, or "
                    "with none other in flight, does not wait")
    max_sends_in_flight: int = Field(default=100, ge=1, description="POST /v1/messages handled at once by this "
                                     "process; one more is answered 503 overloaded at once (retry with the same "
                                     "Idempotency-Key) instead of queueing into the client's time-out")
    write_chunk_records: int = Field(default=100, ge=1, le=5000, description="a consumer batch is handled in "
                                     "chunks of this many commands at once: one chunk's writes overlap another's calls")
    send_concurrency: int = Field(default=128, ge=1, le=1000, description="conversations whose provider calls run "
                                  "at once (one HTTP connection each)")
    broadcast_max_attempts: int = Field(default=8, ge=1, le=20, description="provider calls per broadcast message, "
                                        "incl. retries (a throttled broadcast waits longer than an agent would)")
    broadcast_throttle_hold_seconds: float = Field(default=2.0, gt=0, le=60, description="a throttling answer "
                                                   "(WhatsApp 130429, HTTP 429) stops the sender's broadcasts this "
                                                   "long (at least; longer when the provider asks)")
    broadcast_page_records: int = Field(default=500, ge=10, le=5000, description="recipients read and sent as one "
                                        "page of a running broadcast (never the whole audience at once)")
    broadcast_pages_in_flight: int = Field(default=3, ge=1, le=16, description="pages of one broadcast sending at "
                                           "once (keeps every number's lane busy while a page is written)")
    broadcast_lease_seconds: float = Field(default=10.0, ge=1, le=300, description="a running broadcast's lease: "
                                           "after a crash another replica (or the restarted one) resumes it this "
                                           "much later")
    broadcast_write_chunk_records: int = Field(default=25, ge=1, le=1000, description="a broadcast page is written "
                                               "in chunks this small, so one-to-one messages' writes never queue "
                                               "behind a large bulk write")
    broadcast_chunks_at_once: int = Field(default=8, ge=1, le=200, description="broadcast write chunks in the "
                                          "pipeline at once (each writes to the database: a one-to-one message's "
                                          "writes queue behind at most this many)")
    broadcast_poll_seconds: float = Field(default=5.0, gt=0, le=3600, description="how often each replica looks "
                                          "for due broadcasts (scheduled starts, a dead runner's expired lease); "
                                          "one created or resumed on this replica starts at once")
    broadcast_send_concurrency: int = Field(default=128, ge=1, le=1000, description="broadcast provider calls at "
                                            "once (their own slots: they never take the agents')")
    projection_check_seconds: float = Field(default=5.0, gt=0, le=3600, description="how often each replica "
                                            "checks that the cache still holds outbound's projections (window "
                                            "facts, blocked identities, custom fields) and rebuilds them when it "
                                            "lost them; a send that meets the loss starts the rebuild at once")
