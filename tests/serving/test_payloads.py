"""Request parsing: the four formats give the same frame; every malformed body names its problem."""

import json

import pandas as pd
import pytest

from workloads.serving.payloads import PayloadError, parse_request, parse_response, predictions_list
from workloads.traffic import request_body


@pytest.fixture(scope="module")
def rows(holdout, spec):
    return holdout[spec.feature_names].head(3)


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_every_format_parses_to_the_same_frame(fmt, rows, spec):
    body = json.dumps(request_body(rows, fmt, "req-1"))
    parsed = parse_request(body, spec)
    assert parsed.format == fmt
    assert parsed.client_request_id == "req-1"
    assert list(parsed.frame.columns) == spec.feature_names
    assert parsed.frame.astype(str).values.tolist() == rows.astype(str).values.tolist()
    assert str(parsed.frame["unitPrice"].dtype) == "int64"


def test_positional_instances_follow_the_feature_order(rows, spec):
    body = {"instances": json.loads(rows.to_json(orient="values"))}
    parsed = parse_request(json.dumps(body), spec)
    assert parsed.frame["product"].tolist() == rows["product"].tolist()


def test_columns_in_any_order_are_reordered(rows, spec):
    shuffled = rows[list(reversed(spec.feature_names))]
    parsed = parse_request(json.dumps(request_body(shuffled, "dataframe_split", None)), spec)
    assert list(parsed.frame.columns) == spec.feature_names
    assert parsed.client_request_id is None


def _split(rows, **changes):
    body = request_body(rows, "dataframe_split", None)
    body.update(changes)
    return body


@pytest.mark.parametrize("make_body, code, fragment", [
    (lambda rows: b"", "MALFORMED_REQUEST", "empty"),
    (lambda rows: b"   ", "MALFORMED_REQUEST", "empty"),
    (lambda rows: b"{not json", "MALFORMED_REQUEST", "not valid JSON"),
    (lambda rows: b"[1, 2]", "MALFORMED_REQUEST", "JSON object"),
    (lambda rows: {"rows": []}, "BAD_REQUEST", "none of the input keys"),
    (lambda rows: {"dataframe_records": [], "instances": []}, "BAD_REQUEST", "exactly one input format"),
    (lambda rows: {"dataframe_records": []}, "BAD_REQUEST", "no rows"),
    (lambda rows: {"dataframe_split": {"columns": ["a"]}}, "BAD_REQUEST", "'columns' and 'data'"),
    (lambda rows: {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "BAD_REQUEST", "row 0 has 1 values"),
    (lambda rows: {"inputs": {"product": ["a"], "hour": [1, 2]}}, "BAD_REQUEST", "different lengths"),
    (lambda rows: {"instances": [[1, 2]]}, "BAD_REQUEST", "positional rows need 14"),
    (lambda rows: _split(rows.drop(columns=["hour"])), "BAD_REQUEST", "missing columns ['hour']"),
    (lambda rows: _split(rows.assign(colour="red")), "BAD_REQUEST", "unexpected columns ['colour']"),
    (lambda rows: _split(rows.assign(unitPrice="cheap")), "BAD_REQUEST", "column 'unitPrice' expects bigint"),
    (lambda rows: _split(rows.assign(hour=7.5)), "BAD_REQUEST", "non-integer 7.5"),
    (lambda rows: _split(rows.assign(product=3)), "BAD_REQUEST", "column 'product' expects string"),
    (lambda rows: _split(rows, client_request_id=12), "BAD_REQUEST", "client_request_id"),
    (lambda rows: _split(rows, extra_key=1), "BAD_REQUEST", "unknown top-level keys ['extra_key']"),
])
def test_bad_bodies_name_their_problem(make_body, code, fragment, rows, spec):
    body = make_body(rows)
    raw = body if isinstance(body, bytes) else json.dumps(body)
    with pytest.raises(PayloadError) as info:
        parse_request(raw, spec)
    assert info.value.error_code == code
    assert info.value.status_code == 400
    assert fragment in str(info.value)


def test_nulls_are_accepted_as_missing_values(rows, spec):
    body = request_body(rows, "dataframe_records", None)
    body["dataframe_records"][0]["product"] = None
    body["dataframe_records"][0]["unitPrice"] = None
    parsed = parse_request(json.dumps(body), spec)
    assert pd.isna(parsed.frame["product"].iloc[0])
    assert parsed.frame["unitPrice"].isna().iloc[0]


def test_response_round_trip():
    import numpy as np

    assert predictions_list(np.array([1.5, 2.0])) == [1.5, 2.0]
    assert parse_response(json.dumps({"predictions": [1, 2]})) == [1, 2]
    assert parse_response('{"error_code": "BAD_REQUEST"}') is None
    assert parse_response("garbage") is None
    assert parse_response(None) is None
