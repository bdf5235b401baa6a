"""Accuracy metrics on hand-made partitions whose numbers are counted by hand below."""

from __future__ import annotations

import pytest

from svyaz.bench import Accuracy, Population, generate_population, score

# Three true customers: A owns a1 a2 a3, B owns b1 b2, C owns c1.
# True pairs: A 3 + B 1 + C 0 = 4.
A = [("user_id", "a1"), ("client_id", "a2"), ("session_id", "a3")]
B = [("user_id", "b1"), ("phone", "+79091234567")]
C = [("user_id", "c1")]
SHARED = ("device_id", "tablet")


def small() -> Population:
    truth = {key: 0 for key in A} | {key: 1 for key in B} | {key: 2 for key in C}
    return Population(
        events=[],
        truth=truth,
        shared={SHARED},
        refusable_links=[(("user_id", "a1"), ("user_id", "b1")), (("user_id", "b1"), ("user_id", "c1"))],
        customers=3,
    )


def perfect() -> dict[tuple[str, str], str]:
    return {key: "PA" for key in A} | {key: "PB" for key in B} | {key: "PC" for key in C}


def test_perfect_partition() -> None:
    result = score(perfect(), small())
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)
    assert (result.over_merges, result.under_merges) == (0, 0)
    assert (result.profiles, result.customers, result.refused_links_violated) == (3, 3, 0)
    assert (result.true_pairs, result.predicted_pairs, result.correct_pairs) == (4, 4, 4)


def test_one_over_merge() -> None:
    # B and C in one profile: predicted pairs A 3 + {b1,b2,c1} 3 = 6, correct 3 + 1 = 4.
    assignment = perfect() | {key: "PB" for key in C}
    result = score(assignment, small())
    assert result.precision == pytest.approx(4 / 6)
    assert result.recall == 1.0
    assert result.f1 == pytest.approx(2 * (4 / 6) / (4 / 6 + 1))
    assert (result.over_merges, result.under_merges, result.profiles) == (1, 0, 2)
    assert result.refused_links_violated == 1  # b1-c1 joined, a1-b1 not


def test_one_split() -> None:
    # A split into {a1,a2} and {a3}: predicted pairs 1 + 1 = 2, all correct; recall 2 / 4.
    assignment = perfect() | {("session_id", "a3"): "PA2"}
    result = score(assignment, small())
    assert result.precision == 1.0
    assert result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(2 * 0.5 / 1.5)
    assert (result.over_merges, result.under_merges, result.profiles) == (0, 1, 4)
    assert result.refused_links_violated == 0


def test_missing_identifiers_are_singletons() -> None:
    assignment = perfect()
    del assignment[("session_id", "a3")]
    assert score(assignment, small()) == score(perfect() | {("session_id", "a3"): "PA2"}, small())
    nothing = score({}, small())
    assert (nothing.precision, nothing.recall, nothing.profiles, nothing.under_merges) == (1.0, 0.0, 6, 2)
    assert nothing.refused_links_violated == 0


def test_shared_and_unknown_identifiers_are_not_scored() -> None:
    assignment = perfect() | {SHARED: "PA", ("client_id", "stranger"): "PB"}
    assert score(assignment, small()) == score(perfect(), small())


def test_everything_in_one_profile() -> None:
    result = score(dict.fromkeys([*A, *B, *C], "P"), small())
    # 6 identifiers: 15 predicted pairs, 4 correct.
    assert result.precision == pytest.approx(4 / 15)
    assert result.recall == 1.0
    assert (result.over_merges, result.under_merges, result.profiles) == (1, 0, 1)
    assert result.refused_links_violated == 2


def test_as_dict() -> None:
    data = score(perfect(), small()).as_dict()
    assert data["precision"] == 1.0 and data["over_merges"] == 0 and data["customers"] == 3
    assert set(data) >= {
        "precision",
        "recall",
        "f1",
        "over_merges",
        "under_merges",
        "profiles",
        "customers",
        "refused_links_violated",
    }
    assert isinstance(score(perfect(), small()), Accuracy)


def test_generated_population_scores() -> None:
    population = generate_population(300, seed=2)
    truth_assignment = {key: f"P{owner}" for key, owner in population.truth.items()}
    exact = score(truth_assignment, population)
    assert (exact.precision, exact.recall, exact.over_merges, exact.under_merges) == (1.0, 1.0, 0, 0)
    assert exact.profiles == exact.customers == 300
    assert exact.refused_links_violated == 0
    merged = score(dict.fromkeys(population.truth, "ONE"), population)
    assert merged.precision < 0.05 and merged.over_merges == 1
    assert merged.refused_links_violated == len(population.refusable_links) > 0


def test_scoring_is_linear_not_pairwise() -> None:
    # 200k identifiers in one profile: enumerating pairs would take forever.
    truth = {("client_id", str(i)): i % 1000 for i in range(200_000)}
    result = score(dict.fromkeys(truth, "ONE"), Population(events=[], truth=truth, customers=1000))
    assert result.predicted_pairs == 200_000 * 199_999 // 2
    assert result.true_pairs == 1000 * (200 * 199 // 2)
