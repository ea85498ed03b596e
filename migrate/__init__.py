"""Relocation of running clusters to another cloud, sending each distinct byte once (Shrinker's
approach: content digests, Redis ``SETNX`` to choose the one sender of each content, and a set per
digest naming the destination nodes that hold it).

Built so far: capturing a node's state set as a manifest (:mod:`.manifest`, :mod:`.capture`), the
move's content index in Redis (:mod:`.index`), the transfer plan (:mod:`.plan`) and the transfer
itself, node to node, zstd-compressed and verified on arrival (:mod:`.transfer`, with the programs
it runs on nodes in ``node/``).  The RelocateCluster operation that quiesces a cluster, moves it
with these and restarts it in the destination cloud comes next.
"""
