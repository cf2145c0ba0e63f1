"""The suite's promise to whoever points it at a server: it changes nothing but its own models.

People run conformance checks against servers that hold models they care about. These checks hold
the suite to its rules, using the audit of :mod:`conformance.suite.scratch`: the snapshot of
``/api/tags`` and ``/api/show`` taken before the first model-changing check of this group ran, and
the record of every create, copy, delete, pull and push the session client has sent since. They run
after the lifecycle, blob and registry modules (pytest runs modules in name order), and first make
a small lifecycle of their own (create, copy, delete a scratch model) so that they also judge
something when this module runs alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.client import Client
from conformance.suite import scratch
from conformance.suite.scratch import (
    Audit,
    ScratchModels,
    Sent,
    is_deliberately_unusable,
    normalize_name,
)
from conformance.target import Target
from conformance.verdict import assume, check


@pytest.fixture(autouse=True, scope="module")
def _audited(request: pytest.FixtureRequest, client: Client, target: Target) -> Audit:
    """Take the safety snapshot before this module can change anything (see scratch.audit)."""
    return scratch.audit(request.config, client, target)


@pytest.fixture(scope="module")
def exercised(
    request: pytest.FixtureRequest, client: Client, api_version: str, _audited: Audit
) -> Iterator[Audit]:
    """A create, a create from it, a copy and deletes, all of scratch models, then closed."""
    models = ScratchModels(client, request.config, api_version)
    try:
        base, exchange = models.create_files()
        if scratch.create_succeeded(exchange):
            models.create_from(base, system="safety")
            client.post("/api/copy", json={"source": base, "destination": models.name()})
    finally:
        models.close()
    yield _audited


def _current(client: Client, record: Audit) -> dict[str, str | None]:
    """Models listed now, outside this run's scratch prefix, by normalised name -> digest."""
    listed = scratch.tags_by_name(client.get("/api/tags"))
    assume(listed is not None, "/api/tags gives no model list now (models.tags.status)")
    return {
        name: entry.get("digest") if isinstance(entry.get("digest"), str) else None
        for name, entry in (listed or {}).items()
        if not record.is_scratch(name)
    }


def _allowed_pull() -> set[str]:
    model = scratch.allowed_pull_model()
    return {normalize_name(model)} if model else set()


def _names(sent: Sent) -> list[object]:
    """The model names a request creates, overwrites or deletes."""
    if sent.path in ("/api/create", "/api/delete"):
        return [sent.field("model", "name")]
    if sent.path == "/api/copy":
        return [sent.field("destination")]
    return []


@pytest.mark.requirement("safety.tags.unchanged")
def test_models_outside_the_prefix_are_unchanged(
    client: Client, target: Target, exercised: Audit
) -> None:
    assume(exercised.tags_ok, "/api/tags gave no model list when the snapshot was taken")
    now = _current(client, exercised)
    allowed = _allowed_pull()
    before = {k: v for k, v in exercised.tags.items() if k not in allowed}
    after = {k: v for k, v in now.items() if k not in allowed}
    discovered = {
        normalize_name(m.name) for m in target.models if not exercised.is_scratch(m.name)
    } - allowed
    removed = (set(before) | discovered) - set(after)
    added = set(after) - set(before) - discovered
    changed = {k for k in set(before) & set(after) if before[k] != after[k]}
    check(
        not removed and not added and not changed,
        expected="the same models outside the scratch prefix, with the same digests, as when "
        "the run started",
        actual=f"removed {scratch.names_in(removed)}; added {scratch.names_in(added)}; "
        f"digest changed {scratch.names_in(changed)}",
    )


@pytest.mark.requirement("safety.preexisting.show-unchanged")
def test_used_models_are_described_as_before(client: Client, exercised: Audit) -> None:
    assume(bool(exercised.shows), "the run uses no pre-existing model")
    changed: list[str] = []
    for name, before in exercised.shows.items():
        after = scratch.show_snapshot(client, name)
        if after is None:
            changed.append(f"{name}: /api/show no longer answers 200")
            continue
        keys = [k for k in scratch.SHOW_FIELDS if before.get(k) != after.get(k)]
        if keys:
            changed.append(f"{name}: {', '.join(keys)} changed")
    check(
        not changed,
        expected="the same " + ", ".join(scratch.SHOW_FIELDS) + " of every model the run used",
        actual="; ".join(changed[:3]),
    )


@pytest.mark.requirement("safety.scratch.removed")
def test_finished_tests_left_no_scratch_models(client: Client, exercised: Audit) -> None:
    assume(bool(exercised.released), "no scratch model was made and released before this check")
    listed = scratch.tags_by_name(client.get("/api/tags"))
    assume(listed is not None, "/api/tags gives no model list now (models.tags.status)")
    left = {normalize_name(n) for n in exercised.released} & set(listed or {})
    check(
        not left,
        expected="no scratch model of a finished test still listed by /api/tags",
        actual=f"still listed: {scratch.names_in(left)}",
    )


@pytest.mark.requirement("safety.scratch.prefix")
def test_only_scratch_names_are_created_or_deleted(exercised: Audit) -> None:
    relevant = [s for s in exercised.sent if s.path in ("/api/create", "/api/copy", "/api/delete")]
    assume(bool(relevant), "no create, copy or delete was sent")
    bad = [
        s.describe()
        for s in relevant
        for name in _names(s)
        if not exercised.is_scratch(name) and not is_deliberately_unusable(name)
    ]
    check(
        not bad,
        expected=f"every create target, copy destination and delete under {exercised.prefix}- "
        "(or an invalid or absent name)",
        actual="; ".join(bad[:3]),
    )


def _from_names(sent: Sent, api_version: str) -> list[str]:
    """The models a create request builds on: ``from``, or a Modelfile's FROM on old servers."""
    names: list[str] = []
    source = sent.field("from")
    if isinstance(source, str) and source.strip():
        names.append(source)
    modelfile = sent.field("modelfile")
    if isinstance(modelfile, str) and not scratch.uses_new_create_form(api_version):
        for line in modelfile.splitlines():
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0].upper() == "FROM" and not parts[1].startswith("@"):
                names.append(parts[1].strip())
    return names


@pytest.mark.requirement("safety.create.from-local-only")
def test_create_builds_only_on_local_models(exercised: Audit, api_version: str) -> None:
    installed = set(exercised.tags)
    bad: list[str] = []
    seen = 0
    for sent in exercised.sent:
        if sent.path == "/api/create":
            for source in _from_names(sent, api_version):
                seen += 1
                if normalize_name(source) not in installed:
                    bad.append(f"from {source!r}: {sent.describe()}")
        if sent.status == 200:
            # Models this run made count as local from then on.
            installed.update(
                normalize_name(n) for n in _names(sent) if isinstance(n, str) and n.strip()
            )
    assume(seen > 0, "no create built on another model")
    check(
        not bad,
        expected="every create from names a model installed on the target at that moment",
        actual="; ".join(bad[:3]),
    )


@pytest.mark.requirement("safety.network.opt-in")
def test_no_registry_traffic_without_allow_network(
    request: pytest.FixtureRequest, exercised: Audit
) -> None:
    assume(
        not request.config.getoption("--allow-network"),
        "--allow-network is given: registry traffic is allowed",
    )
    transfers = [s for s in exercised.sent if s.path in ("/api/pull", "/api/push")]
    assume(bool(transfers), "no pull or push was sent")
    installed = set(exercised.tags) | exercised.created_names()
    bad: list[str] = []
    for sent in transfers:
        name = sent.field("model", "name")
        if not isinstance(name, str) or not name.strip():
            continue  # no name: refused before anything could be looked up
        well_formed = not any(c.isspace() for c in name.strip())
        if sent.path == "/api/pull" and well_formed:
            bad.append(f"pull of the well-formed name {name!r}")
        if sent.path == "/api/push" and normalize_name(name) in installed:
            bad.append(f"push of the installed model {name!r}")
    check(
        not bad,
        expected="pulls only of invalid names and pushes only of names that are not installed",
        actual="; ".join(bad[:3]),
    )
