"""Accuracy of a stitching result against a generated population's truth.

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
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass

from svyaz.bench.population import Key, Population


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
