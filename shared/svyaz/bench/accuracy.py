"""Accuracy of a stitching result against a generated population's truth.

``measure(store, population, deliveries)`` reads the store's final partition (each identifier
record followed to its active profile), scores it, counts the graph's inconsistencies and, when
customers were split or joined, names the deliveries that should have linked them (or did).

``score(assignment, population)`` compares the profile each identifier ended in with the true
customer that owns it. Pairwise precision / recall / F1 are computed from contingency counts
(sum of n*(n-1)/2 over profile x customer cells), never by enumerating pairs, so scoring a
population of millions of identifiers is linear.

Only identifiers in ``population.truth`` are scored; shared identifiers (family phone, store
tablet, moved device) are ignored. A scored identifier missing from ``assignment`` counts as a
profile of its own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from svyaz.adapters.store.base import PROFILES, Store
from svyaz.bench.population import Key, Population
from svyaz.domain.merge import InvalidEvent, follow_chain, observe
from svyaz.domain.model import Profile
from svyaz.identity.policy import Policy

if TYPE_CHECKING:
    from svyaz.bench.replay import Delivery


@dataclass(frozen=True)
class Accuracy:
    precision: float  # of identifier pairs the system put together, the share that are one customer
    recall: float  # of identifier pairs of one customer, the share the system put together
    f1: float
    over_merges: int  # profiles holding scored identifiers of more than one true customer
    under_merges: int  # true customers whose scored identifiers span more than one profile
    profiles: int  # distinct profiles holding scored identifiers (missing identifiers count as one each)
    customers: int  # true customers in the population
    refused_links_violated: int  # refusable links whose two sides ended in the same profile
    true_pairs: int = 0  # pairs of scored identifiers owned by one customer
    predicted_pairs: int = 0  # pairs of scored identifiers in one profile
    correct_pairs: int = 0  # pairs in both

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Mismerge:
    """An under-merged customer (its identifiers by profile) or an over-merged profile (its
    identifiers by true customer), with the deliveries that carried more than one part."""

    kind: str  # "under_merged_customer" or "over_merged_profile"
    name: str  # the customer's number or the profile's id
    parts: Mapping[str, list[str]]
    bridging_deliveries: list[str]  # "index:event_id status path", at most 10


@dataclass(frozen=True)
class GraphAccuracy:
    """The report's accuracy section: the scores and the graph's own consistency."""

    scores: Accuracy
    inconsistent_records: int  # identifier records that resolve to no active profile (must be 0)
    stale_listings: int  # (profile, kind) identifier counts unlike the records (must be 0)
    examples: tuple[Mismerge, ...] | None = None  # only when customers were split or joined

    def to_json(self) -> dict[str, Any]:
        section: dict[str, Any] = self.scores.as_dict()
        section |= {"inconsistent_records": self.inconsistent_records, "stale_listings": self.stale_listings}
        if self.examples is not None:
            section["examples"] = [asdict(example) for example in self.examples]
        return section


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(assignment: Mapping[Key, str], population: Population) -> Accuracy:
    cells: Counter[tuple[Hashable, int]] = Counter()
    profile_sizes: Counter[Hashable] = Counter()
    customer_sizes: Counter[int] = Counter()
    customers_in_profile: defaultdict[Hashable, set[int]] = defaultdict(set)
    profiles_of_customer: defaultdict[int, set[Hashable]] = defaultdict(set)
    for key, owner in population.truth.items():
        profile: Hashable = assignment.get(key)
        if profile is None:
            profile = ("singleton", key)  # cannot collide with a str profile id
        cells[(profile, owner)] += 1
        profile_sizes[profile] += 1
        customer_sizes[owner] += 1
        customers_in_profile[profile].add(owner)
        profiles_of_customer[owner].add(profile)

    correct = sum(_pairs(n) for n in cells.values())
    predicted = sum(_pairs(n) for n in profile_sizes.values())
    true = sum(_pairs(n) for n in customer_sizes.values())
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    violated = 0
    for left, right in population.refusable_links:
        left_profile, right_profile = assignment.get(left), assignment.get(right)
        if left_profile is not None and left_profile == right_profile:
            violated += 1

    return Accuracy(
        precision=precision,
        recall=recall,
        f1=f1,
        over_merges=sum(1 for owners in customers_in_profile.values() if len(owners) > 1),
        under_merges=sum(1 for profiles in profiles_of_customer.values() if len(profiles) > 1),
        profiles=len(profile_sizes),
        customers=population.customers,
        refused_links_violated=violated,
        true_pairs=true,
        predicted_pairs=predicted,
        correct_pairs=correct,
    )


def assignment(store: Store) -> tuple[dict[Key, str], int, int]:
    """Each identifier's active profile (following ``merged_into``); how many identifier records
    resolve to no active profile (invariant 1; must be 0); and how many (profile, kind) identifier
    counts differ from the records that resolve to the profile (the limits would be checked
    against a wrong count; must be 0)."""
    profiles = {key: Profile.from_doc(key, doc) for key, doc in store._scan(PROFILES)}
    result: dict[Key, str] = {}
    counted: Counter[tuple[str, str]] = Counter()
    broken = 0
    for record in store.iter_records():
        owner = follow_chain(record.profile_id, profiles.get)
        if owner is None:
            broken += 1
            continue
        result[(record.identifier.kind, record.identifier.value)] = owner.profile_id
        counted[(owner.profile_id, record.identifier.kind)] += 1
    stored = Counter(
        {
            (p.profile_id, kind): n
            for p in profiles.values()
            if p.status == "active"
            for kind, n in p.identifier_counts.items()
        }
    )
    stale = sum(1 for key in counted.keys() | stored.keys() if counted[key] != stored[key])
    return result, broken, stale


def _mismerged_parts(
    placed: Mapping[Key, str], population: Population
) -> dict[tuple[str, Any], dict[str, set[str]]]:
    """Under-merged customers (their identifiers by profile) and over-merged profiles (theirs by
    true customer)."""
    by_customer: dict[int, dict[str, set[str]]] = {}
    by_profile: dict[str, dict[int, set[str]]] = {}
    for key, owner in population.truth.items():
        profile = placed.get(key, "-")
        by_customer.setdefault(owner, {}).setdefault(profile, set()).add(f"{key[0]}:{key[1]}")
        by_profile.setdefault(profile, {}).setdefault(owner, set()).add(f"{key[0]}:{key[1]}")
    parts: dict[tuple[str, Any], dict[str, set[str]]] = {}
    for customer, groups in by_customer.items():
        if len(groups) > 1:
            parts[("under_merged_customer", customer)] = groups
    for profile, owners in by_profile.items():
        if len(owners) > 1 and profile != "-":
            parts[("over_merged_profile", profile)] = {str(o): ids for o, ids in owners.items()}
    return parts


def _bridging(deliveries: Iterable[Delivery], part_of: Mapping[str, str], policy: Policy) -> list[str]:
    """The deliveries that carried identifiers of more than one part."""
    bridging = []
    for delivery in deliveries:
        if delivery.event is None:
            continue
        try:
            observed = observe(delivery.event, policy).all_linking
        except InvalidEvent:
            continue
        touched = {part_of[str(i)] for i in observed if str(i) in part_of}
        if len(touched) > 1:
            path = delivery.trace.path if delivery.trace else ""
            bridging.append(f"{delivery.index}:{delivery.event.event_id} {delivery.status} {path}")
    return bridging


def mismerges(
    placed: Mapping[Key, str], population: Population, deliveries: Sequence[Delivery], limit: int = 3
) -> list[Mismerge]:
    """Up to ``limit`` under-merged customers and over-merged profiles, each with the deliveries
    that carried identifiers of more than one of its parts (what should have linked them)."""
    policy = Policy.default()
    examples = []
    for (kind, name), groups in list(_mismerged_parts(placed, population).items())[:limit]:
        part_of = {identifier: part for part, ids in groups.items() for identifier in ids}
        bridging = _bridging(deliveries, part_of, policy)
        parts = {p: sorted(ids) for p, ids in groups.items()}
        examples.append(Mismerge(kind, str(name), parts, bridging[:10]))
    return examples


def measure(store: Store, population: Population, deliveries: Sequence[Delivery]) -> GraphAccuracy:
    """The store's final partition scored against the population's truth, its inconsistencies,
    and examples of what was split or joined (when anything was)."""
    placed, broken, stale = assignment(store)
    scores = score(placed, population)
    examples = None
    if scores.under_merges or scores.over_merges:
        examples = tuple(mismerges(placed, population, deliveries))
    return GraphAccuracy(scores, inconsistent_records=broken, stale_listings=stale, examples=examples)
