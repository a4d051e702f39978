"""Peer review between teachers (paper section 3.3, eq. 4): read review scores, decide acceptance.

Public API::

    from fairspec.review import ReviewPolicy, ScoredReview, parse_score

    policy = ReviewPolicy()                          # paper: mean >= 4 on a 1-5 scale
    authors = ReviewPolicy(accept=">", threshold=3)  # the authors' released code: mean > 3
    score = parse_score("The steps are sound. Score: [5]")   # -> 5; None when invalid
    policy.accepts([score, None])                    # None (invalid review) is left out
    policy.decision([2], pending=1)                  # False: (2 + 5) / 2 < 4 whatever comes
    policy.calls_needed([2, 5])                      # 1: the second review was not needed
"""

from fairspec.review.policy import ACCEPT_OPS, AGGREGATES, ReviewPolicy
from fairspec.review.score import ScoredReview, parse_score

__all__ = ["ACCEPT_OPS", "AGGREGATES", "ReviewPolicy", "ScoredReview", "parse_score"]
