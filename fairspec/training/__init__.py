"""Joint student training: the eq. 7 loss and completion-only tokenisation.

Importing this package loads neither torch nor transformers; its functions do, when called.
"""

from fairspec.training.loss import (
    IGNORE_INDEX,
    JointLoss,
    count_completion_tokens,
    joint_loss,
    joint_loss_parts,
)
from fairspec.training.tokenize import KINDS, CompletionCollator, encode_example

__all__ = [
    "IGNORE_INDEX",
    "KINDS",
    "CompletionCollator",
    "JointLoss",
    "count_completion_tokens",
    "encode_example",
    "joint_loss",
    "joint_loss_parts",
]
