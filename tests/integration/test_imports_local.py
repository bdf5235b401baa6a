"""`svyaz import` of local files: formats real exports come in (1C/till CSV with ';', cp1251,
gzip, Russian headers, quoted newlines), the rejects file next to the file, streaming, the
command line."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import shutil
from pathlib import Path

import pytest

from svyaz.cli import main
from svyaz.domain.model import Identifier
from svyaz.imports import ImportFailed, LocalSource, default_via, file_format, parse_columns, run_import
from svyaz.imports.rows import CHUNK, Lines, csv_rows, physical_lines
from tests.pipeline_support import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "calls_orders"


def rejects_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(Path(f"{path}.rejects.csv").read_text(encoding="utf-8"))))


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def revenue(rt, phone: str) -> float:
    profile = rt.store.lookup(Identifier("phone", phone))
    assert profile is not None
    return profile.counters["revenue"]


def test_rejects_file_is_written_next_to_the_file_and_a_rerun_changes_nothing(tmp_path, rt):
    path = tmp_path / "orders.csv"
    shutil.copy(FIXTURES / "orders_till_export.csv", path)
    first = run_import(LocalSource(path), rt, progress=False)
    assert (first.applied, first.rejected) == (4, 6)
    assert first.rejects_location == f"{path}.rejects.csv"
    assert rejects_of(path)[1] == ["4", "amount", "Input should be a valid decimal"]
    snapshot = {p.profile_id: p.to_doc() for p in rt.store.iter_profiles()}
    again = run_import(LocalSource(path), rt, progress=False)
    assert (again.applied, again.duplicates) == (0, 4)
    assert {p.profile_id: p.to_doc() for p in rt.store.iter_profiles()} == snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.csv", "orders.csv.rejects.csv"]


def test_a_copy_elsewhere_is_the_same_source_with_source_id(tmp_path, rt):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        shutil.copy(FIXTURES / "orders_till_export.csv", path)
    run_import(LocalSource(a), rt, source_id="till-2026-03", progress=False)
    again = run_import(LocalSource(b), rt, source_id="till-2026-03", progress=False)
    assert (again.applied, again.duplicates) == (0, 4)


def test_a_till_export_in_cp1251_with_russian_headers_tabs_and_gzip(tmp_path, rt):
    text = (
        "Номер чека\tДата\tСумма\tТелефон\tМагазин\n"
        "Ч-1\t05.03.2026 10:00\t1 990,50\t8 909 123-45-67\tspb-1\n"
        "Ч-2\t05.03.2026 11:00\t500\t8 909 123-45-68\tspb-1\n"
    )
    plain = write(tmp_path, "till.csv", text, "cp1251")
    columns = parse_columns(
        ["Номер чека=order_id", "Дата=time", "Сумма=amount", "Телефон=phone", "Магазин=store_id"]
    )
    stats = run_import(LocalSource(plain), rt, encoding="cp1251", columns=columns, progress=False)
    assert (stats.kind, stats.applied, stats.rejected) == ("orders", 2, 0)
    assert revenue(rt, "+79091234567") == 1990.5

    packed = tmp_path / "till.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    stats = run_import(LocalSource(packed), rt, encoding="cp1251", columns=columns, progress=False)
    assert (stats.applied, stats.rejected) == (2, 0)  # another source: other event ids...
    assert revenue(rt, "+79091234567") == 1990.5  # ...but the same orders: never counted twice
    assert Path(f"{packed}.rejects.csv").exists()


def test_undecodable_lines_are_rejected_and_the_rest_imported(tmp_path, rt):
    path = tmp_path / "customers.csv"
    path.write_bytes(
        b"phone,first_name\n+79091234567,\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0\n+79091234568,\xc0\xed\xed\xe0\n"
        b"+79091234569,Oleg\n"
    )
    stats = run_import(LocalSource(path), rt, progress=False)
    assert (stats.kind, stats.applied, stats.rejected) == ("customers", 2, 1)
    assert rejects_of(path)[1:] == [["3", "", "not valid utf-8 text (see --encoding)"]]
    assert rt.store.lookup(Identifier("phone", "+79091234567")).traits["first_name"].value == "Анна"


def test_line_numbers_follow_quoted_newlines_and_blank_lines(tmp_path, rt):
    text = (
        "email,name,note\n"
        'a@shop.ru,"Анна\nПетрова",ok\n'
        "\n"
        "not-an-email,Bad,x\n"
        'b@shop.ru,Boris,"two\nlines"\n'
        "c@shop.ru,Cyril\n"
    )
    path = write(tmp_path, "customers.csv", text)
    stats = run_import(LocalSource(path), rt, progress=False)
    assert (stats.rows, stats.applied, stats.rejected) == (4, 2, 2)
    assert rejects_of(path)[1:] == [
        ["5", "identifiers", "no usable identifier (email: not a valid email address)"],
        ["8", "", "expected 3 columns, found 2"],
    ]


def test_customer_rows_with_the_lead_source_give_the_orders_their_ad(tmp_path, rt):
    customers = write(
        tmp_path,
        "customers.csv",
        "phone;utm_source;utm_medium;utm_campaign;time\n+79091234567;yandex;cpc;sofas;2026-02-01T10:00:00Z\n",
    )
    orders = write(
        tmp_path,
        "orders.jsonl",
        '{"order_id": "S-1", "time": "2026-03-01T10:00:00Z", "amount": 100, "phone": "89091234567",'
        ' "store_id": "msk-1", "status": "paid"}\n',
    )
    run_import(LocalSource(customers), rt, progress=False)
    run_import(LocalSource(orders), rt, progress=False)
    profile = rt.store.lookup(Identifier("phone", "+79091234567"))
    [order] = [t for t in rt.store.touchpoints([profile.profile_id], 10) if t.type == "order"]
    assert order.credit["first_touch"] == {"source": "yandex", "medium": "cpc", "campaign": "sofas"}


def test_dry_run_validates_and_applies_nothing(tmp_path, rt):
    path = tmp_path / "orders.csv"
    shutil.copy(FIXTURES / "orders_till_export.csv", path)
    stats = run_import(LocalSource(path), rt, dry_run=True, progress=False)
    assert (stats.valid, stats.applied, stats.rejected) == (4, 0, 6)
    assert list(rt.store.iter_profiles()) == []
    assert len(rejects_of(path)) == 8


def test_the_file_is_streamed_not_loaded():
    """The first rows come out after reading at most two chunks of a 200 MB stream."""
    header = b"phone,first_name\n"
    row = b"+79091234567,Anna\n"
    reads = []

    def read(n: int) -> bytes:
        reads.append(n)
        return (header if len(reads) == 1 else b"") + row * (n // len(row))

    rows = csv_rows(Lines(physical_lines(read), "utf-8"))
    first = list(itertools.islice(rows, 1000))
    assert len(first) == 1000 and first[0].values == {"phone": "+79091234567", "first_name": "Anna"}
    assert len(reads) <= 2 and all(n == CHUNK for n in reads)


def test_unsupported_and_missing_sources(tmp_path):
    assert file_format("s3://b/customers.JSONL") == "jsonl"
    assert file_format("orders.csv.gz") == "csv"
    with pytest.raises(ImportFailed, match="must end in"):
        file_format("orders.xlsx")
    with pytest.raises(ImportFailed, match="cannot read"):
        LocalSource(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="HEADER=column"):
        parse_columns(["order_id"])


def test_default_mode_is_queue_in_production_or_next_to_the_pubsub_emulator(monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    assert default_via("development") == "direct"
    assert default_via("production") == "queue"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "localhost:8085")
    assert default_via("development") == "queue"


def test_the_command_imports_several_files_and_reports_the_run(tmp_path, capsys, monkeypatch):
    for name in ("SVYAZ_ENV", "PUBSUB_EMULATOR_HOST", "SVYAZ_STORE"):
        monkeypatch.delenv(name, raising=False)
    customers, orders = tmp_path / "customers.jsonl", tmp_path / "orders.csv"
    shutil.copy(FIXTURES / "customers.jsonl", customers)
    shutil.copy(FIXTURES / "orders_till_export.csv", orders)
    argv = ["import", str(customers), str(orders), "--tz", "Europe/Moscow", "--report", "--no-progress"]
    assert main(argv) == 1  # both files have bad rows: imported without them, and the exit says so
    out, err = capsys.readouterr()
    assert "3 of 7 rows of" in err and "6 of 10 rows of" in err
    assert "(customers, via direct)" in out and "(orders, via direct)" in out
    report = out.split("Revenue by first touch")[1].splitlines()
    assert report[2].split() == ["(none)", "/", "(none)", "RUB", "3", "136490.50", "0", "0.00"]
    assert report[3].split() == ["yandex", "/", "cpc", "/", "sofas", "RUB", "1", "45990.00", "0", "0.00"]
    assert main(["import", str(orders), "--dry-run", "--no-progress", "--report"]) == 1
    assert "valid: 4 (dry run: nothing applied)" in capsys.readouterr().out


def test_a_corrupt_gzip_stops_the_import_with_a_clear_error_and_no_rejects_file(tmp_path, rt):
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress((FIXTURES / "orders_till_export.csv").read_bytes())[:200])
    with pytest.raises(ImportFailed, match=r"cannot read .*orders\.csv\.gz after line \d+: EOFError"):
        run_import(LocalSource(path), rt, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv.gz"]
