"""Every checkpoint format loads the same tensors with the same report as when the record was made.

The record (``tests/fixtures/checkpoint_format_records.json``, written by
``tests/helpers/checkpoint_records.py`` before the formats moved into
``vitdet_bench/checkpoint/formats/``) holds, for each format's fixture and each loader that reads
it, the load report (loaded, resized, converted, dropped, missing as expected and unexpectedly,
unused, the summary), the model's tensors after the load, and the error a wrong file or format gets.
"""

import json

from helpers.checkpoint_records import RECORD_FILE, compare_records, make_records


def test_every_format_loads_as_recorded():
    with open(RECORD_FILE, encoding="utf-8") as f:
        expected = json.load(f)
    actual = make_records()
    assert sorted(actual) == sorted(expected)
    differences = compare_records(expected, actual)
    assert not differences, "\n".join(differences[:40])
