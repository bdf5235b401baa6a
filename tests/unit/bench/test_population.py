"""The synthetic population: reproducible, normalized truth, the promised noise, and journeys a
correct engine can stitch completely (every customer connected by allowed co-occurrences)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from svyaz.bench import Population, generate_population
from svyaz.domain.events import Event
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import Policy

POLICY = Policy.default()
Key = tuple[str, str]


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(600, seed=11)


@pytest.fixture(scope="module")
def clean() -> Population:
    return generate_population(300, seed=11, noise=False)


def unique_events(population: Population) -> list[Event]:
    seen: dict[str, Event] = {}
    for event in population.events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def observed(event: Event) -> tuple[list[Key], int]:
    """Normalized identifiers of one event, and how many raw values were rejected."""
    keys: list[Key] = []
    rejected = 0
    for kind, raw in event.identifier_pairs():
        try:
            keys.append((kind, normalize(POLICY, kind, raw)))
        except Rejected:
            rejected += 1
    return keys, rejected


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Key, Key] = {}

    def find(self, key: Key) -> Key:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            self.parent[key] = self.parent.setdefault(parent, parent)
            key, parent = parent, self.parent[parent]
        return key

    def union(self, a: Key, b: Key) -> None:
        self.parent[self.find(a)] = self.find(b)


def dump(population: Population) -> list[dict]:
    return [event.model_dump(mode="json") for event in population.events]


def test_same_seed_gives_identical_population() -> None:
    first, second = generate_population(150, seed=5), generate_population(150, seed=5)
    assert dump(first) == dump(second)
    assert first.truth == second.truth
    assert first.shared == second.shared
    assert first.refusable_links == second.refusable_links
    assert (first.unique_events, first.duplicates, first.garbage_values) == (
        second.unique_events,
        second.duplicates,
        second.garbage_values,
    )


def test_different_seed_gives_different_population() -> None:
    first, second = generate_population(150, seed=5), generate_population(150, seed=6)
    assert dump(first) != dump(second)
    assert set(first.truth) != set(second.truth)


def test_truth_and_shared_keys_are_normalized(population: Population) -> None:
    for kind, value in [*population.truth, *population.shared]:
        assert normalize(POLICY, kind, value) == value, (kind, value)
    assert not set(population.truth) & population.shared
    assert set(population.truth.values()) == set(range(population.customers))


def test_every_value_is_known_or_garbage(population: Population) -> None:
    """Each raw value normalizes to a truth or shared key, or is a deliberate garbage value."""
    known = set(population.truth) | population.shared
    rejected = 0
    for event in unique_events(population):
        keys, dropped = observed(event)
        assert keys, f"{event.event_id} carries no usable identifier"
        assert set(keys) <= known, set(keys) - known
        rejected += dropped
    assert rejected == population.garbage_values


def test_raw_values_vary_but_normalize_together(population: Population) -> None:
    raw_forms: defaultdict[Key, set[str]] = defaultdict(set)
    for event in unique_events(population):
        for kind, raw in event.identifier_pairs():
            try:
                raw_forms[(kind, normalize(POLICY, kind, raw))].add(str(raw))
            except Rejected:
                pass
    for kind, least in (("phone", 3), ("email", 3), ("ga_client_id", 2)):
        assert any(len(forms) >= least for key, forms in raw_forms.items() if key[0] == kind), kind
    phones = {raw for key, forms in raw_forms.items() if key[0] == "phone" for raw in forms}
    assert any(raw.startswith("8 (") for raw in phones) and any(raw.startswith("+7 ") for raw in phones)
    ga = {raw for key, forms in raw_forms.items() if key[0] == "ga_client_id" for raw in forms}
    assert any(raw.startswith("GA1.") for raw in ga) and any(not raw.startswith("GA") for raw in ga)


def test_identifier_shapes(population: Population) -> None:
    kinds = Counter(kind for kind, _ in population.truth)
    for kind in (
        "client_id",
        "ym_client_id",
        "ga_client_id",
        "session_id",
        "user_id",
        "phone",
        "email",
        "loyalty_card",
        "telegram_id",
        "user_pseudo_id",
        "device_id",
    ):
        assert kinds[kind] > 0, kind
    for kind, value in population.truth:
        if kind == "ym_client_id":
            assert value.isdigit() and 16 <= len(value) <= 20
        elif kind == "session_id":
            assert value.isdigit()
        elif kind == "phone":
            assert value.startswith("+79") and len(value) == 12


def test_journeys_cover_the_channels(population: Population) -> None:
    types = Counter((event.type, event.channel) for event in unique_events(population))
    for expected in [
        ("page", "web"),
        ("identify", "web"),
        ("lead", "web"),
        ("call", "call"),
        ("message", "whatsapp"),
        ("message", "telegram"),
        ("qr_scan", "store"),
        ("order", "store"),
        ("app_open", "app"),
        ("identify", "store"),
    ]:
        assert types[expected] > 0, expected
    sources = {(e.context.source, e.context.medium) for e in population.events}
    assert {("yandex", "cpc"), ("vk", "social"), ("google", "organic"), ("direct", "none")} <= sources
    orders = [e for e in population.events if e.type == "order"]
    assert all({"order_id", "amount"} <= set(e.properties) for e in orders)
    starts = [
        e for e in population.events if e.channel == "telegram" and e.properties["text"].startswith("/start")
    ]
    assert starts
    for event in starts:
        sessions = [value for kind, value in observed(event)[0] if kind == "session_id"]
        assert len(sessions) == 1
        session = sessions[0]
        assert event.properties["text"] == f"/start {session}"


def test_noise_is_present(population: Population) -> None:
    assert population.duplicates > 0
    assert population.garbage_values > 0
    assert population.shared
    assert population.refusable_links
    ids = Counter(event.event_id for event in population.events)
    assert len(ids) == population.unique_events
    assert len(population.events) == population.unique_events + population.duplicates
    assert sum(n - 1 for n in ids.values()) == population.duplicates
    stamps = [event.timestamp for event in population.events]
    assert stamps != sorted(stamps), "delivery should be out of order"
    shared_kinds = {kind for kind, _ in population.shared}
    assert {"phone", "device_id"} <= shared_kinds


def test_duplicates_are_the_same_event(population: Population) -> None:
    first: dict[str, Event] = {}
    for event in population.events:
        if event.event_id in first:
            assert event == first[event.event_id]
        first.setdefault(event.event_id, event)


def test_without_noise_stream_is_clean(clean: Population) -> None:
    assert clean.duplicates == 0 and clean.garbage_values == 0
    assert not clean.shared and not clean.refusable_links
    stamps = [event.timestamp for event in clean.events]
    assert stamps == sorted(stamps)
    for event in clean.events:
        assert observed(event)[1] == 0


def components(population: Population, *, with_shared: bool) -> tuple[UnionFind, dict[Key, set[Key]]]:
    """Union-find over co-occurrences of linking identifiers; device kinds (they move, never
    merge) are attached to the event's other identifiers but never bridge them. Returns the
    structure and, for each device value, the linking identifiers it was seen with."""
    uf = UnionFind()
    devices: defaultdict[Key, set[Key]] = defaultdict(set)
    for event in unique_events(population):
        keys = [k for k in observed(event)[0] if with_shared or k not in population.shared]
        linking = [k for k in keys if not POLICY.kind(k[0]).moves]
        for key in linking:
            uf.find(key)
        for a, b in zip(linking, linking[1:], strict=False):
            uf.union(a, b)
        for key in keys:
            if POLICY.kind(key[0]).moves:
                devices[key].update(linking)
    return uf, devices


@pytest.mark.parametrize("fixture", ["population", "clean"])
def test_every_customer_is_connected_by_allowed_links(fixture: str, request: pytest.FixtureRequest) -> None:
    population: Population = request.getfixturevalue(fixture)
    uf, devices = components(population, with_shared=False)
    by_customer = population.identifiers_by_customer()
    owner_of_root: dict[Key, int] = {}
    for customer, keys in enumerate(by_customer):
        linking = [k for k in keys if not POLICY.kind(k[0]).moves]
        assert linking, customer
        roots = {uf.find(k) for k in linking}
        assert len(roots) == 1, f"customer {customer} is split in {len(roots)} components"
        root = roots.pop()
        # No component mixes two customers once shared values are set aside.
        assert owner_of_root.setdefault(root, customer) == customer
        for device in (k for k in keys if POLICY.kind(k[0]).moves):
            seen_with = devices[device]
            assert seen_with and {uf.find(k) for k in seen_with} == {root}, device


def test_customers_respect_kind_limits(population: Population) -> None:
    for keys in population.identifiers_by_customer():
        per_kind = Counter(kind for kind, _ in keys)
        for kind, count in per_kind.items():
            assert count <= POLICY.kind(kind).limit, (kind, count)
        assert per_kind["user_id"] <= 1


def test_refusable_links_are_cross_customer_and_tempting(population: Population) -> None:
    """Each refusable link joins two customers, and only through a shared value."""
    uf_all, devices = components(population, with_shared=True)
    for left, right in population.refusable_links:
        assert population.truth[left] != population.truth[right]
        via_merge = uf_all.find(left) == uf_all.find(right)
        via_device = any(left in seen and right in seen for seen in devices.values())
        assert via_merge or via_device, (left, right)
    kinds = {(a[0], b[0]) for a, b in population.refusable_links}
    assert ("user_id", "user_id") in kinds and ("user_pseudo_id", "user_pseudo_id") in kinds


def test_small_populations_work() -> None:
    assert generate_population(0).events == []
    one = generate_population(1)
    assert one.customers == 1 and set(one.truth.values()) == {0}
    assert not one.refusable_links


def test_generation_at_bench_scale() -> None:
    # Speed is measured by `svyaz bench`, not asserted here (the machine is shared).
    population = generate_population(2_000, seed=3)
    assert population.unique_events > 10 * 2_000
