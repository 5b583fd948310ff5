"""WEAVIATE_URL / WEAVIATE_GRPC_URL parsing for remote deployments."""

from __future__ import annotations

import pytest

from data.weaviate_connection import parse_endpoint


def test_self_hosted_defaults_grpc_to_same_host_50051() -> None:
    endpoint = parse_endpoint("http://weaviate:8080", None)
    assert (endpoint.http_host, endpoint.http_port, endpoint.http_secure) == ("weaviate", 8080, False)
    assert (endpoint.grpc_host, endpoint.grpc_port, endpoint.grpc_secure) == ("weaviate", 50051, False)


def test_weaviate_cloud_uses_its_grpc_host() -> None:
    endpoint = parse_endpoint("https://abc123.c0.europe-west3.gcp.weaviate.cloud", None)
    assert endpoint.http_port == 443 and endpoint.http_secure
    assert endpoint.grpc_host == "grpc-abc123.c0.europe-west3.gcp.weaviate.cloud"
    assert (endpoint.grpc_port, endpoint.grpc_secure) == (443, True)


def test_explicit_grpc_url_wins() -> None:
    endpoint = parse_endpoint("https://search.example.com", "grpc.example.com:6000")
    assert (endpoint.grpc_host, endpoint.grpc_port, endpoint.grpc_secure) == ("grpc.example.com", 6000, True)


def test_bad_url_names_the_variable() -> None:
    with pytest.raises(ValueError, match="WEAVIATE_URL"):
        parse_endpoint("ftp://weaviate", None)


def test_same_port_for_http_and_grpc_is_explained() -> None:
    with pytest.raises(ValueError, match="WEAVIATE_GRPC_URL"):
        parse_endpoint("http://127.0.0.1:9", "127.0.0.1:9")
