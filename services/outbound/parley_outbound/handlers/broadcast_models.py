"""The broadcast API's request bodies (also the stored definition a runner reads back), and the plan they make."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from parley_common.bounds import Identifier
from parley_common.events.common import ChannelType
from parley_common.events.outbound import TemplateButtonParameter, TemplateHeaderMedia
from parley_outbound.adapters.audience_repo import AudienceQuery
from parley_outbound.domain.broadcasts import ActivityFilter, Pool, VariableSource, is_known_field
from parley_outbound.handlers.broadcast_audience import BroadcastPlan

MAX_EXPLICIT_CONTACTS = 10_000
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ -]{1,64}$")]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
Value = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class VariableMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str | None = Field(default=None, max_length=80, description="a contact field: `display_name` or "
                              "`custom_fields.<name>`")
    constant: Value | None = Field(default=None, description="the same text for every recipient")
    fallback: Value | None = Field(default=None, description="used when the contact has no value for `field`; "
                                   "without one such a recipient is skipped (missing_variable)")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.field is None) == (self.constant is None):
            raise ValueError("give exactly one of field and constant")
        if self.field is not None and not is_known_field(self.field):
            raise ValueError("field is display_name or custom_fields.<name>")
        return self

    def source(self) -> VariableSource:
        return VariableSource(self.field, self.constant, self.fallback)


class BroadcastTemplateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?$")
    variables: dict[VariableName, VariableMapping] = Field(default_factory=dict, max_length=50,
                                                           description="the body's variables")
    header_variables: dict[VariableName, VariableMapping] = Field(default_factory=dict, max_length=5)
    media_id: Identifier | None = Field(default=None, description="the media header, stored by media")
    header_media: TemplateHeaderMedia | None = None
    buttons: list[TemplateButtonParameter] = Field(default_factory=list, max_length=10)


class AudienceModel(BaseModel):
    """Contacts matching every condition given (none given: every contact of the tenant)."""

    model_config = ConfigDict(extra="forbid")
    contact_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_EXPLICIT_CONTACTS,
                                          description="only these contacts")
    labels: list[Identifier] = Field(default_factory=list, max_length=20, description="contacts with all of them")
    custom_fields: dict[FieldName, Value] = Field(default_factory=dict, max_length=20,
                                                  description="custom field name → value (as text), all equal")
    channel_ids: list[Identifier] = Field(default_factory=list, max_length=50,
                                          description="contacts with an identity on one of these channels")
    active_since: AwareDatetime | None = Field(default=None, description="the customer wrote on the number the "
                                               "broadcast uses at or after this time")
    inactive_since: AwareDatetime | None = Field(default=None, description="the customer has not written on that "
                                                 "number since this time")
    opted_in: bool = Field(default=False, strict=True, description="leave out customers who stopped marketing messages")


class BroadcastModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    template: BroadcastTemplateModel
    audience: AudienceModel = Field(default_factory=AudienceModel)
    channel_ids: list[Identifier] = Field(min_length=1, max_length=50, description="the sending channel, or a "
                                          "pool of numbers of one type (recipients spread over them)")
    start_at: AwareDatetime | None = Field(default=None, description="when to start; now when absent")

    @model_validator(mode="after")
    def _distinct_channels(self) -> Self:
        if len(set(self.channel_ids)) != len(self.channel_ids):
            raise ValueError("channel_ids has duplicates")
        return self


class PreviewModel(BroadcastModel):
    samples: int = Field(default=3, ge=0, le=20, description="rendered messages for the first sendable contacts")


def to_plan(body: BroadcastModel, tenant_id: str, channel_type: ChannelType) -> BroadcastPlan:
    template = body.template
    audience = body.audience
    extras: dict[str, Any] = {"media_id": template.media_id, "header_media": template.header_media,
                              "buttons": tuple(template.buttons)}
    return BroadcastPlan(
        tenant_id=tenant_id, pool=Pool(tuple(body.channel_ids), channel_type), template_name=template.name,
        language=template.language,
        variables={name: mapping.source() for name, mapping in template.variables.items()},
        header_variables={name: mapping.source() for name, mapping in template.header_variables.items()},
        extras=extras,
        query=AudienceQuery(tenant_id, tuple(audience.contact_ids), tuple(audience.labels),
                            tuple(sorted(audience.custom_fields.items())), tuple(audience.channel_ids)),
        activity=ActivityFilter(audience.active_since, audience.inactive_since, audience.opted_in))
