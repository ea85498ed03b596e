"""The AWS protocol kernel shared by Resilin's services (the EMR API, the local cloud's EC2, storage's S3).

- ``model``: botocore's service models, loaded once; ``shapes``: the one walk over their shapes;
- ``query``: the Query protocol decoder, and EC2's dialect of it; ``query_xml``: the Query XML
  writer, and EC2's dialect of it; ``timestamps``: AWS's ISO 8601 form of a moment;
- ``errors``: ``AwsError``, the base of ``EmrError``, ``EC2Error`` and ``S3Error``;
- ``skeleton``: the Twisted request skeleton (request id, head, answer, send); ``httputil``: the
  body cap and header helpers; ``httplimits``: deadlines and connection caps;
- ``sigv4``, ``sigv2``: request signatures; ``replay``: the ledger of signatures already used.
"""
