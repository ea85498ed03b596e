"""Resilin's additions to botocore's EMR model (RelocateCluster, DescribeClusterRelocation).

botocore merges ``<data dir>/emr/2009-03-31/service-2.sdk-extras.json`` into the EMR model it
ships, for every data directory on its search path.  This package is such a directory: the
API adds it to its own botocore session, and clients add it with ``AWS_DATA_PATH`` (printed
by ``resilin models-path``) or, in Python, with :func:`emr_session`.
"""

from __future__ import annotations

from pathlib import Path

import botocore.session

from resilin.aws.model import with_data_paths

_HERE = Path(__file__).resolve().parent


def data_path() -> str:
    """The directory to put on botocore's data path (``AWS_DATA_PATH``)."""
    return str(_HERE)


def extras_file() -> Path:
    """The EMR extras file itself."""
    return _HERE / "emr" / "2009-03-31" / "service-2.sdk-extras.json"


def emr_session() -> botocore.session.Session:
    """A new botocore session whose EMR model has Resilin's operations (for ``boto3.Session``)."""
    return with_data_paths(botocore.session.get_session(), [data_path()])
