"""Training infrastructure shared by every member: the one training loop (``loop``), run folders and their
checkpoints (``runs``), face-image datasets (``data``), cached-feature sequences (``sequences``), several
processes under torchrun (``distributed``), prediction tables and feature caches (``prediction``), and the
temporal members' windows and losses (``temporal``).

May import: ``ensemble``'s core and the member contract (``members.base``, ``configs``, ``registry``,
``heads``); never a concrete member (cnn, temporal, committee, keras): they import it.
"""
