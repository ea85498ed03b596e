"""Relocation of running clusters to another cloud, sending each distinct byte once (Shrinker's
approach: content digests, Redis ``SETNX`` to choose the one sender of each content, and a set per
digest naming the destination nodes that hold it).

Built so far: capturing a node's state set as a manifest (:mod:`.manifest`, :mod:`.capture`), the
move's content index in Redis (:mod:`.index`) and the transfer plan (:mod:`.plan`).  The transfer
itself and the RelocateCluster operation that quiesces, moves and restarts a cluster come next.
"""
