"""A batch's input readers (JSONL, CSV, text, stdin, templates, bad lines) and its output file."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from council.app.batch.items import BadLine, BatchItem, count_items, read_items
from council.app.batch.output import OutputFile, item_line
from council.errors import EXIT_USAGE, UsageError


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _read(source: str, **options: object) -> tuple[list[BatchItem], list[BadLine]]:
    bad: list[BadLine] = []
    items = list(read_items(source, on_bad_line=bad.append, **options))  # type: ignore[arg-type]
    return items, bad


# -- JSONL ---------------------------------------------------------------------------------


def test_jsonl_items_keep_their_fields_and_line_numbers(tmp_path):
    source = _write(
        tmp_path,
        "t.jsonl",
        '{"id": "a", "query": "Is it?", "body": "x", "n": 3}\n\n{"id": 7, "query": "Why?"}\n',
    )
    items, bad = _read(source)
    assert bad == []
    assert items == [
        BatchItem("a", "Is it?", {"body": "x", "n": 3}, 1),
        BatchItem("7", "Why?", {}, 3),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"query": "q"}', 'no "id"'),
        ('{"id": "x"}', 'no "query"'),
        ('{"id": "x", "query": 5}', '"query" must be text'),
        ('{"id": "x", "query": "   "}', "the query is empty"),
        ('{"id": true, "query": "q"}', '"id" must be text or a number'),
        ('{"id": {"a": 1}, "query": "q"}', '"id" must be text or a number'),
        ('{"id": "", "query": "q"}', '"id" is empty'),
        ('{"id": "first", "query": "again"}', 'duplicate id "first"'),
    ],
)
def test_a_bad_jsonl_line_is_reported_with_its_number_and_skipped(tmp_path, line, reason):
    source = _write(
        tmp_path,
        "t.jsonl",
        f'{{"id": "first", "query": "q1"}}\n{line}\n{{"id": "last", "query": "q3"}}\n',
    )
    items, bad = _read(source)
    assert [i.id for i in items] == ["first", "last"]
    assert len(bad) == 1
    assert bad[0].line == 2
    assert reason in bad[0].reason


def test_strict_makes_a_bad_line_fatal_naming_file_and_line(tmp_path):
    source = _write(tmp_path, "t.jsonl", '{"id": "a", "query": "q"}\n{"id": "b"}\n')
    items = read_items(source, strict=True)
    assert next(items).id == "a"
    with pytest.raises(UsageError) as caught:
        next(items)
    assert caught.value.exit_code == EXIT_USAGE
    assert (
        caught.value.message
        == f'{source}:2: no "query" (give one, or a --template built from the fields)'
    )


def test_bad_lines_warn_on_stderr_by_default(tmp_path, capsys):
    source = _write(tmp_path, "t.jsonl", '{"id": "a", "query": "q"}\nnope\n')
    assert [i.id for i in read_items(source)] == ["a"]
    err = capsys.readouterr().err
    assert f"{source}:2: not JSON" in err
    assert "skipped" in err


def test_a_missing_file_is_a_one_line_usage_error_before_any_item(tmp_path):
    with pytest.raises(UsageError) as caught:
        read_items(str(tmp_path / "nope.jsonl"))
    assert "cannot read the batch input" in caught.value.message
    with pytest.raises(UsageError):
        read_items(str(tmp_path))  # a directory


# -- templates --------------------------------------------------------------------------------


def test_a_template_builds_the_query_from_fields_and_makes_query_optional(tmp_path):
    source = _write(
        tmp_path,
        "t.jsonl",
        '{"id": 1, "body": "Printer on fire", "tags": ["hw"]}\n'
        '{"id": 2, "title": "no body"}\n'
        '{"id": 3, "body": "Braces {stay} as {{they}} are"}\n',
    )
    items, bad = _read(source, template="Review this ticket: {body} ({tags})")
    assert [(i.id, i.query) for i in items] == [
        ("1", 'Review this ticket: Printer on fire (["hw"])')
    ]
    assert {b.line for b in bad} == {2, 3}
    items, bad = _read(source, template="Review this ticket: {body}")
    assert [(i.id, i.query) for i in items] == [
        ("1", "Review this ticket: Printer on fire"),
        ("3", "Review this ticket: Braces {stay} as {{they}} are"),
    ]
    assert items[0].fields == {"body": "Printer on fire", "tags": ["hw"]}
    assert bad == [BadLine(2, 'no field "body" for the template')]


def test_template_values_that_are_not_text_go_in_as_json(tmp_path):
    source = _write(tmp_path, "t.jsonl", '{"id": 1, "tags": ["hw", "ü"], "n": 2}\n')
    items, _ = _read(source, template="{tags} x{n}")
    assert items[0].query == '["hw", "ü"] x2'


@pytest.mark.parametrize(
    "template",
    ["{body.__class__}", "{body[0]}", "{0}", "{}", "{body!r}", "{body:>10}", "{unclosed"],
)
def test_a_template_that_reaches_into_objects_or_does_not_parse_is_refused(tmp_path, template):
    source = _write(tmp_path, "t.jsonl", '{"id": 1, "body": "x"}\n')
    with pytest.raises(UsageError) as caught:
        read_items(source, template=template)
    assert "--template" in caught.value.message


# -- CSV and text ------------------------------------------------------------------------------


def test_csv_with_a_header_streams_records_with_their_line_numbers(tmp_path):
    source = _write(
        tmp_path,
        "t.csv",
        'id,query,team\r\nA1,"Is it, really?",core\r\nA2,"two\nlines",web\r\n,,\r\nA3,q3\r\n',
    )
    items, bad = _read(source)
    assert items == [
        BatchItem("A1", "Is it, really?", {"team": "core"}, 2),
        BatchItem("A2", "two\nlines", {"team": "web"}, 3),
    ]
    assert bad == [BadLine(6, "2 fields where the header has 3")]


def test_csv_without_an_id_column_numbers_its_records_and_templates_use_columns(tmp_path):
    source = _write(tmp_path, "t.csv", "body,who\nfire,ann\nflood,bob\n")
    items, bad = _read(source, template="{who}: {body}")
    assert bad == []
    assert [(i.id, i.query, i.fields) for i in items] == [
        ("2", "ann: fire", {"body": "fire", "who": "ann"}),
        ("3", "bob: flood", {"body": "flood", "who": "bob"}),
    ]


def test_csv_without_a_query_column_or_template_is_a_usage_error(tmp_path):
    source = _write(tmp_path, "t.csv", "body,who\nfire,ann\n")
    with pytest.raises(UsageError) as caught:
        list(read_items(source))
    assert 'no "query" column' in caught.value.message
    assert "body, who" in caught.value.message


def test_text_is_one_query_a_line_and_the_id_is_the_line_number(tmp_path):
    source = _write(tmp_path, "questions.txt", "First?\r\n\n   \nThird {x}?\n")
    items, bad = _read(source)
    assert bad == []
    assert items == [BatchItem("1", "First?", {}, 1), BatchItem("4", "Third {x}?", {}, 4)]
    items, _ = _read(source, template="Answer: {query}")
    assert items[0].query == "Answer: First?"


def test_a_file_of_any_name_starting_with_a_brace_is_jsonl(tmp_path):
    source = _write(tmp_path, "items.json", '\n{"id": "a", "query": "q"}\n')
    assert [i.id for i in _read(source)[0]] == ["a"]
    assert [i.query for i in _read(source, format="text")[0]] == ['{"id": "a", "query": "q"}']


def test_stdin_is_read_with_a_dash_and_sniffed(tmp_path):
    items, _ = _read("-", stdin=io.StringIO('{"id": "s", "query": "from stdin"}\n'))
    assert items == [BatchItem("s", "from stdin", {}, 1)]
    items, _ = _read("-", stdin=io.StringIO("plain one\nplain two\n"))
    assert [i.query for i in items] == ["plain one", "plain two"]
    items, _ = _read("-", stdin=io.StringIO("id,query\nz,zed\n"), format="csv")
    assert [(i.id, i.query) for i in items] == [("z", "zed")]


def test_stdin_bytes_are_read_as_utf8_and_stdin_stays_open(tmp_path):
    class Stdin(io.TextIOWrapper):
        pass

    raw = io.BytesIO('{"id": "u", "query": "Grüße \xff"}\n'.encode("utf-8", "surrogatepass"))
    stdin = Stdin(raw, encoding="utf-8")
    items, _ = _read("-", stdin=stdin)
    assert items[0].query == "Grüße \xff"
    assert not raw.closed


def test_a_terminal_on_stdin_is_refused_not_waited_on():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with pytest.raises(UsageError, match="it is a terminal"):
        read_items("-", stdin=Terminal())


def test_bytes_that_are_not_utf8_become_replacement_characters(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"caf\xe9 ok\n")
    items, _ = _read(str(path))
    assert items[0].query == "caf\ufffd ok"


def test_reading_is_lazy_a_huge_input_costs_one_line(tmp_path):
    """The reader pulls lines as items are asked for: never the whole input."""
    pulled = 0

    class Endless(io.TextIOBase):
        def readable(self) -> bool:
            return True

        def __iter__(self):
            return self

        def __next__(self) -> str:
            nonlocal pulled
            pulled += 1
            return json.dumps({"id": pulled, "query": "q"}) + "\n"

    items = read_items("-", stdin=Endless())  # type: ignore[arg-type]
    first = [next(items) for _ in range(3)]
    assert [i.id for i in first] == ["1", "2", "3"]
    assert pulled <= 4  # at most one line read ahead (the format sniff)


def test_count_items_counts_good_items_only(tmp_path):
    source = _write(tmp_path, "t.jsonl", '{"id": 1, "query": "a"}\nbad\n{"id": 2, "query": "b"}\n')
    assert count_items(source) == 2


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.text().filter(lambda k: k not in ("id", "query")), _json_values, max_size=4
    ),
    query=st.text(min_size=1).filter(str.strip),
)
def test_passthrough_fields_round_trip_to_the_output_line(tmp_path, fields, query):
    source = tmp_path / "p.jsonl"
    source.write_text(
        json.dumps({"id": "x", "query": query, **fields}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (item,) = read_items(str(source), strict=True)
    assert item.query == query
    assert item.fields == fields
    out = tmp_path / "o.jsonl"
    out.unlink(missing_ok=True)
    with OutputFile(out) as writer:
        writer.write(0, _line(item))
    written = json.loads(out.read_text(encoding="utf-8"))
    kept = {
        k: v
        for k, v in fields.items()
        if k not in ("status", "answers", "answer", "errors", "metrics")
    }
    assert {k: written[k] for k in kept} == kept
    assert written["id"] == "x" and written["status"] == "ok"


_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cell.filter(str.strip), _cell), min_size=1, max_size=5))
def test_csv_cells_of_any_text_round_trip(tmp_path, rows):
    import csv

    source = tmp_path / "p.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "query", "note"])
        writer.writerows((str(n), query, note) for n, (query, note) in enumerate(rows))
    items = list(read_items(str(source), strict=True))
    assert [(i.id, i.query, i.fields) for i in items] == [
        (str(n), query, {"note": note}) for n, (query, note) in enumerate(rows)
    ]


# -- output ----------------------------------------------------------------------------------


def _item(item_id: str, **fields: object) -> BatchItem:
    return BatchItem(item_id, "q", dict(fields), 1)


def _line(item: BatchItem, status: str = "ok", text: str = "yes") -> dict:
    answers = [{"persona": "judge", "text": text}] if status == "ok" else []
    errors = [] if status == "ok" else [{"persona": "judge", "error_kind": "timeout"}]
    return item_line(item, status=status, answers=answers, answer=None, errors=errors, metrics={})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_item_line_puts_fields_after_the_id_and_never_over_council_keys():
    line = _line(_item("a", body="b", status="spoofed", answers="x", query="spoofed"))
    # The question as asked follows the id (issue 27): a line reads on its own.
    assert list(line) == ["id", "query", "body", "status", "answers", "answer", "errors", "metrics"]
    assert line["query"] == "q"
    assert line["status"] == "ok"
    assert line["answers"] == [{"persona": "judge", "text": "yes"}]


def test_each_line_is_one_write_of_a_whole_line_flushed(tmp_path):
    out = tmp_path / "o.jsonl"
    writer = OutputFile(out)
    writes: list[str] = []
    real = writer._handle.write

    def spy(text: str) -> int:
        writes.append(text)
        return real(text)

    writer._handle.write = spy  # type: ignore[method-assign]
    writer.write(0, _line(_item("a"), text="two\nlines"))
    assert len(writes) == 1 and writes[0].endswith("\n") and writes[0].count("\n") == 1
    assert out.read_text(encoding="utf-8") == writes[0]  # flushed before close
    writer.close()


def test_control_characters_are_escaped_and_unicode_kept(tmp_path):
    out = tmp_path / "o.jsonl"
    with OutputFile(out) as writer:
        writer.write(0, _line(_item("a"), text="héllo \x1b]52;c;x\x07 \x9b2J"))
    raw = out.read_text(encoding="utf-8")
    assert "héllo" in raw
    assert "\x1b" not in raw and "\x07" not in raw and "\x9b" not in raw
    assert _lines(out)[0]["answers"][0]["text"] == "héllo \x1b]52;c;x\x07 \x9b2J"


def test_a_torn_last_line_is_dropped_on_open_and_resume_sets_are_read(tmp_path):
    out = tmp_path / "o.jsonl"
    with OutputFile(out) as writer:
        writer.write(0, _line(_item("a")))
        writer.write(1, _line(_item("b"), status="failed"))
    with open(out, "a", encoding="utf-8") as handle:
        handle.write('{"id": "c", "status": "ok", "answ')  # a crash mid-write
    writer = OutputFile(out)
    assert writer.ok_ids == {"a"} and writer.failed_ids == {"b"}
    writer.write(2, _line(_item("c")))
    writer.close()
    assert [line["id"] for line in _lines(out)] == ["a", "b", "c"]


def test_a_redone_item_replaces_its_line_and_the_last_line_wins(tmp_path):
    out = tmp_path / "o.jsonl"
    with OutputFile(out) as writer:
        writer.write(0, _line(_item("a")))
        writer.write(1, _line(_item("b"), status="failed"))
    inode = out.stat().st_ino
    writer = OutputFile(out)
    assert writer.failed_ids == {"b"}
    writer.write(0, _line(_item("b"), text="second try"))
    # Until close both lines are there, and the last one is what a reader must believe.
    assert [line["id"] for line in _lines(out)] == ["a", "b", "b"]
    assert OutputFile(out).ok_ids == {"a", "b"}
    writer.close()
    lines = _lines(out)
    assert [(line["id"], line["status"]) for line in lines] == [("a", "ok"), ("b", "ok")]
    assert lines[1]["answers"][0]["text"] == "second try"
    assert out.stat().st_ino != inode  # replaced whole, by rename
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # none left


def test_a_file_with_duplicates_from_a_crash_is_compacted_on_the_next_close(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text(
        json.dumps({"id": "a", "status": "failed", "metrics": {}})
        + "\n"
        + json.dumps({"id": "a", "status": "ok", "metrics": {}})
        + "\n"
    )
    writer = OutputFile(out)
    assert writer.ok_ids == {"a"} and writer.failed_ids == set()
    writer.close()
    assert _lines(out) == [{"id": "a", "status": "ok", "metrics": {}}]


def test_ordered_output_keeps_input_order_with_a_bounded_buffer(tmp_path):
    out = tmp_path / "o.jsonl"
    writer = OutputFile(out, ordered=True, reorder_limit=3)
    assert writer.can_accept(2) and not writer.can_accept(3)
    writer.write(2, _line(_item("c")))
    writer.write(1, _line(_item("b")))
    assert out.read_text() == ""  # item 0 holds them
    assert writer.buffered == 2
    writer.skip(0)  # a bad or skipped item releases the buffer
    assert [line["id"] for line in _lines(out)] == ["b", "c"]
    assert writer.can_accept(5)
    writer.write(4, _line(_item("e")))
    writer.write(3, _line(_item("d")))
    writer.close()
    assert [line["id"] for line in _lines(out)] == ["b", "c", "d", "e"]


def test_ordered_past_the_bound_writes_ahead_instead_of_growing(tmp_path, capsys):
    """An engine that does not wait (can_accept) gets order broken, never memory."""
    out = tmp_path / "o.jsonl"
    writer = OutputFile(out, ordered=True, reorder_limit=3)
    writer.write(2, _line(_item("c")))
    writer.write(1, _line(_item("b")))
    assert writer.buffered == 2 and out.read_text() == ""  # item 0 is still running
    writer.write(3, _line(_item("d")))  # past the bound: the engine did not wait
    assert [line["id"] for line in _lines(out)] == ["b", "c", "d"]
    assert writer.buffered == 0
    assert "--ordered: item 1 is still running after 3 later ones" in capsys.readouterr().err
    writer.write(0, _line(_item("a")))  # late: written as it comes
    writer.write(4, _line(_item("e")))
    writer.close()
    assert [line["id"] for line in _lines(out)] == ["b", "c", "d", "a", "e"]


def test_ordered_lines_still_held_at_close_are_written_not_lost(tmp_path):
    out = tmp_path / "o.jsonl"
    writer = OutputFile(out, ordered=True)
    writer.write(1, _line(_item("b")))
    writer.close()  # item 0 never came (interrupted)
    assert [line["id"] for line in _lines(out)] == ["b"]


def test_dash_writes_to_stdout(capsys):
    with OutputFile("-") as writer:
        writer.write(0, _line(_item("a")))
    assert json.loads(capsys.readouterr().out)["id"] == "a"


def test_an_output_file_that_cannot_be_written_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as caught:
        OutputFile(tmp_path / "missing-dir" / "o.jsonl")
    assert "cannot use" in caught.value.message
    if os.geteuid() != 0:
        locked = tmp_path / "locked.jsonl"
        locked.write_text("")
        locked.chmod(0o400)
        with pytest.raises(UsageError):
            OutputFile(locked)
