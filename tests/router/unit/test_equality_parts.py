"""The inbox query split into equality-only queries (one index each) matches exactly what the query matches."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from parley_router.adapters.conversations import equality_parts

FIELDS = ("tenant_id", "team_id", "assignee_agent", "status")
values = st.sampled_from(["a", "b", "c"])
docs = st.fixed_dictionaries({field: values for field in FIELDS})
conditions = st.one_of(values, st.builds(lambda listed: {"$in": listed}, st.lists(values, max_size=3)))
branches = st.builds(lambda field, condition: {field: condition}, st.sampled_from(FIELDS), conditions)
queries = st.builds(lambda rest, ors: {**rest, "$or": ors} if ors else rest,
                    st.dictionaries(st.sampled_from(FIELDS), conditions, max_size=2),
                    st.one_of(st.none(), st.lists(branches, min_size=1, max_size=3)))


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for field, condition in query.items():
        if field == "$or":
            if not any(matches(doc, branch) for branch in condition):
                return False
        elif isinstance(condition, dict):
            if doc[field] not in condition["$in"]:
                return False
        elif doc[field] != condition:
            return False
    return True


@given(queries, st.lists(docs, min_size=1, max_size=8))
def test_the_parts_match_exactly_what_the_query_matches(query: dict[str, Any], some: list[dict[str, Any]]) -> None:
    parts = equality_parts(query)
    for doc in some:
        assert matches(doc, query) == any(matches(doc, part) for part in parts)
    assert parts == [query] or all("$or" not in part for part in parts)


def test_an_agents_scope_becomes_one_query_per_team_and_one_for_their_own() -> None:
    scope = {"tenant_id": "acme", "status": "queued",
             "$or": [{"team_id": {"$in": ["billing", "sales"]}}, {"assignee_agent": "ann"}]}
    assert equality_parts(scope) == [{"tenant_id": "acme", "status": "queued", "team_id": "billing"},
                                     {"tenant_id": "acme", "status": "queued", "team_id": "sales"},
                                     {"tenant_id": "acme", "status": "queued", "assignee_agent": "ann"}]


def test_a_team_filter_keeps_only_the_matching_branch_and_a_contradiction_matches_nothing() -> None:
    scope = {"$or": [{"team_id": {"$in": ["billing", "sales"]}}, {"assignee_agent": "ann"}]}
    assert equality_parts({**scope, "team_id": "sales"}) == [{"team_id": "sales"},
                                                             {"team_id": "sales", "assignee_agent": "ann"}]
    assert equality_parts({"team_id": "x", "$or": [{"team_id": {"$in": ["billing"]}}]}) == []


def test_what_cannot_be_split_exactly_stays_one_query() -> None:
    for query in ({"$or": [{"team_id": "a", "status": "b"}]}, {"$or": [{"opened_at": {"$gte": 1}}]},
                  {"channel_id": {"$in": ["c1", "c2"]}, "$or": [{"channel_id": "c1"}]}):
        assert equality_parts(query) == [query]
