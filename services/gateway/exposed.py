"""The proto files whose services the gateway exposes. One line per service:
a service that declares (npanel.api.v1.backend) is then routed from its options."""

from __future__ import annotations

import importlib

from google.protobuf.descriptor import FileDescriptor

MODULES = (
    "npanel.gateway.v1.gateway_pb2",
    "npanel.flagd.v1.flagd_pb2",
    "npanel.watchdogd.v1.watchdogd_pb2",
    "npanel.cgroupd.v1.cgroupd_pb2",
)


def exposed_files() -> list[FileDescriptor]:
    files = []
    for name in MODULES:
        module = importlib.import_module(name)
        files.append(module.DESCRIPTOR)
    return files
