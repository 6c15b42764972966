"""Member models: the member contract and zoo at the top, and subpackages by concern.

Top level, the contract and the zoo: ``base`` (``Member``: the train and load halves), ``configs`` (each
member's config, declared with help and limits), ``registry`` (``MEMBERS``, ``create_member``), ``heads``
(task heads and losses), and the members ``cnn``, ``temporal`` (cnn_rnn, cnn_transformer), ``committee``
and ``keras``. Subpackages: ``training`` (the loop, run folders, datasets, sequences, torchrun, prediction),
``keras_import`` (the Keras to torch converter), ``pretrained`` (face-pretrained backbone weights), ``face`` (the face and video pipeline), ``synthetic``
(synthetic Aff-Wild2 data).

May import: ``ensemble``'s core (tasks, contract, frames, labels, metrics, outputs, registry, errors, io,
align, voting, params), never its fusion, pipeline, member check, report or CLI, nor ``submissions``.
Importing the package loads no network code: ``load_members()`` registers the built-in members.
"""

from members.base import Member
from members.configs import MemberConfig
from members.registry import MEMBERS, create_member, load_members

__all__ = ["MEMBERS", "Member", "MemberConfig", "create_member", "load_members"]
